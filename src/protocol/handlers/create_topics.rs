//! CreateTopics v2-v7, including `validate_only`, configs and manual assignments (each
//! partition's replicas, checked by the metadata actor as Kafka's controller does). v5+ responses carry the partition count, replication
//! factor and the topic's configs; v7 the topic id.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};

use super::text;
use crate::actors::metadata::{MetadataMsg, NewTopic};
use crate::broker_config::BrokerDefaults;
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::topic_config;

pub fn prepare(ctx: &BrokerContext, version: i16, req: CreateTopicsRequest) -> ResponseFuture {
    let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
    let mut precheck: Vec<Option<MetadataError>> = Vec::with_capacity(req.topics.len());
    let mut new_topics = Vec::new();
    for topic in req.topics {
        let mut configs = BTreeMap::new();
        let mut bad = None;
        for c in topic.configs {
            match c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => {
                    bad = Some(MetadataError::InvalidConfig(format!(
                        "null value for {}",
                        c.name.as_str()
                    )))
                }
            }
        }
        let assignments = if topic.assignments.is_empty() {
            None
        } else {
            let listed = topic.assignments.iter().map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            });
            match in_partition_order(listed) {
                Ok(replicas) => Some(replicas),
                Err(err) => {
                    bad.get_or_insert(err);
                    None
                }
            }
        };
        if bad.is_none() {
            new_topics.push(NewTopic {
                name: topic.name.0.to_string(),
                num_partitions: topic.num_partitions,
                replication_factor: topic.replication_factor,
                configs,
                assignments,
            });
        }
        precheck.push(bad);
    }
    let rx = ask(&ctx.metadata, |reply| MetadataMsg::CreateTopics {
        topics: new_topics,
        validate_only: req.validate_only,
        reply,
    });
    let config = ctx.config.clone();
    let routes = ctx.routes();
    // As Kafka: timeout_ms bounds the wait for the new partitions (creation continues
    // past it); 0 or less, no bound beyond the metadata actor's answer.
    let timeout = (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms as u64));
    Box::pin(async move {
        // The dynamic broker configs as of the request.
        let broker_configs = routes.broker_configs.clone();
        let mut timed_out = false;
        let mut created = match (rx, timeout) {
            (Some(rx), Some(timeout)) => match tokio::time::timeout(timeout, rx).await {
                Ok(answer) => answer.unwrap_or_default(),
                Err(_) => {
                    timed_out = true;
                    Vec::new()
                }
            },
            (Some(rx), None) => rx.await.unwrap_or_default(),
            (None, _) => Vec::new(),
        }
        .into_iter();
        let missing = if timed_out {
            MetadataError::TimedOut
        } else {
            MetadataError::Unavailable
        };
        let topics = names
            .into_iter()
            .zip(precheck)
            .map(|(name, bad)| {
                let result = match bad {
                    Some(err) => Err(err),
                    None => created.next().unwrap_or_else(|| Err(missing.clone())),
                };
                let entry = CreatableTopicResult::default().with_name(name);
                match result {
                    Ok(route) => {
                        let defaults = BrokerDefaults {
                            config: &config,
                            dynamic: &broker_configs,
                        };
                        let configs = topic_config::describe(&route.configs, defaults)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(text(c.name))
                                    .with_value(Some(text(c.value)))
                                    .with_read_only(c.read_only)
                                    .with_config_source(c.source)
                                    .with_is_sensitive(c.sensitive)
                            })
                            .collect();
                        let partitions = if route.partitions.is_empty() {
                            // validate_only: nothing was spawned.
                            -1
                        } else {
                            route.partitions.len() as i32
                        };
                        let mut entry = entry
                            .with_topic_id(route.id)
                            .with_num_partitions(partitions)
                            .with_replication_factor(route.replication_factor());
                        if version >= 5 {
                            entry = entry.with_configs(Some(configs));
                        }
                        entry
                    }
                    Err(err) => entry
                        .with_error_code(err.code())
                        .with_error_message(Some(text(err.to_string())))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect();
        ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(topics))
    })
}

/// Manual assignments as `(partition index, replicas)` in request order, turned into the
/// replicas of partitions 0, 1, ... : as Kafka's, an index given twice or a gap in the
/// indexes is INVALID_REPLICA_ASSIGNMENT.
pub(super) fn in_partition_order(
    listed: impl ExactSizeIterator<Item = (i32, Vec<i32>)>,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let mut slots: Vec<Option<Vec<i32>>> = vec![None; listed.len()];
    for (index, replicas) in listed {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| slots.get_mut(i))
            .ok_or_else(|| {
                MetadataError::InvalidReplicaAssignment(
                    "partitions should be a consecutive 0-based integer sequence".into(),
                )
            })?;
        if slot.replace(replicas).is_some() {
            return Err(MetadataError::InvalidReplicaAssignment(format!(
                "found multiple manual partition assignments for partition {index}"
            )));
        }
    }
    // Every slot is filled: as many distinct indexes as slots, each below the count.
    Ok(slots.into_iter().flatten().collect())
}
