//! FindCoordinator v0-v4. v4 answers a batch of keys. Any key type but 0 (group) and 1
//! (transactional id) is an INVALID_REQUEST, as in Kafka.
//!
//! Single node: this broker coordinates everything. Cluster mode: a group's coordinator is
//! the leader of its `__consumer_offsets` partition, a transactional id's the leader of
//! its `__transaction_state` partition (COORDINATOR_NOT_AVAILABLE while it has none; each
//! topic is created through the quorum when first needed, as Kafka does).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info};

use super::text;
use crate::actors::metadata::{MetadataMsg, NewTopic};
use crate::coordinator::offsets_topic::{partition_for, OFFSETS_TOPIC};
use crate::coordinator::transaction_state_topic::TRANSACTION_STATE_TOPIC;
use crate::protocol::context::{ask, ClientInfo};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

/// Where a key's coordinator is: (node, host, port), or an error code.
type Found = Result<(i32, String, i32), i16>;

pub fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: FindCoordinatorRequest,
    client: &ClientInfo,
) -> ResponseFuture {
    let ctx = ctx.clone();
    let (host, port) = ctx.advertised_for(&client.listener);
    let here: Found = Ok((ctx.config.node_id, host, port));
    let listener = client.listener.clone();
    Box::pin(async move {
        let keys: Vec<StrBytes> = if version >= 4 {
            req.coordinator_keys.clone()
        } else {
            vec![req.key.clone()]
        };
        let mut found = Vec::with_capacity(keys.len());
        for key in &keys {
            found.push(match req.key_type {
                0 if ctx.config.cluster_mode() => {
                    leader_of(&ctx, &OFFSETS, key.as_str(), &listener).await
                }
                1 if ctx.config.cluster_mode() => {
                    leader_of(&ctx, &TRANSACTION_STATE, key.as_str(), &listener).await
                }
                0 | 1 => here.clone(),
                _ => Err(ResponseError::InvalidRequest.code()),
            });
        }
        let response = if version >= 4 {
            let coordinators = keys
                .into_iter()
                .zip(found)
                .map(|(key, found)| {
                    let c = Coordinator::default().with_key(key);
                    match found {
                        Ok((node, host, port)) => c
                            .with_node_id(BrokerId(node))
                            .with_host(text(host))
                            .with_port(port),
                        Err(error) => c
                            .with_error_code(error)
                            .with_node_id(BrokerId(-1))
                            .with_port(-1),
                    }
                })
                .collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            match found.into_iter().next().unwrap_or(Err(0)) {
                Ok((node, host, port)) => FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(node))
                    .with_host(text(host))
                    .with_port(port),
                Err(error) => FindCoordinatorResponse::default()
                    .with_error_code(error)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        };
        ResponseKind::FindCoordinator(response)
    })
}

/// An internal topic whose partitions' leaders coordinate the keys hashed to them.
struct InternalTopic {
    name: &'static str,
    /// (partitions, replication factor, min.insync.replicas) from the config.
    settings: fn(&crate::config::Config) -> (i32, i16, Option<i16>),
}

const OFFSETS: InternalTopic = InternalTopic {
    name: OFFSETS_TOPIC,
    settings: |c| {
        let (partitions, replicas) = (
            c.offsets_topic_num_partitions,
            c.offsets_topic_replication_factor,
        );
        (partitions, replicas, None)
    },
};

const TRANSACTION_STATE: InternalTopic = InternalTopic {
    name: TRANSACTION_STATE_TOPIC,
    settings: |c| {
        (
            c.transaction_state_log_num_partitions,
            c.transaction_state_log_replication_factor,
            Some(c.transaction_state_log_min_isr),
        )
    },
};

/// Cluster mode: the leader of the key's partition of `topic` (a group's
/// `__consumer_offsets` partition, a transactional id's `__transaction_state` one).
/// `listener`: the one the request came in on (the leader is named at that listener).
async fn leader_of(ctx: &BrokerContext, topic: &InternalTopic, key: &str, listener: &str) -> Found {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let routes = ctx.routes();
    let Some(route) = routes.topic(topic.name) else {
        create_internal_topic(ctx, topic).await;
        return Err(unavailable);
    };
    let index = partition_for(key, route.partitions.len() as i32);
    let leader = route.placement(index).map_or(-1, |p| p.leader);
    let endpoint = routes
        .cluster
        .as_ref()
        .and_then(|c| c.endpoint(leader))
        .map(|b| b.endpoint_for(listener))
        .map(|(host, port)| (host.to_string(), port));
    match endpoint {
        Some((host, port)) => Ok((leader, host, port)),
        None => {
            debug!(
                key,
                topic = topic.name,
                partition = index,
                leader,
                "FindCoordinator: the key's partition has no live leader."
            );
            Err(unavailable)
        }
    }
}

/// Creates an internal topic through the quorum as Kafka creates it: `__consumer_offsets`
/// with offsets_topic_num_partitions partitions and offsets_topic_replication_factor
/// replicas, `__transaction_state` with the transaction_state_log_* settings (its
/// min.insync.replicas no more than its replicas); replicas capped at the live brokers,
/// compacted. Another broker creating it first is fine.
async fn create_internal_topic(ctx: &BrokerContext, internal: &InternalTopic) {
    let (partitions, replicas, min_isr) = (internal.settings)(&ctx.config);
    let live = ctx
        .routes()
        .cluster
        .as_ref()
        .map_or(1, |c| c.brokers.values().filter(|b| !b.fenced).count());
    let replication_factor = replicas.min(live.clamp(1, i16::MAX as usize) as i16);
    let mut configs: std::collections::BTreeMap<String, String> =
        [("cleanup.policy".to_string(), "compact".to_string())].into();
    if let Some(min_isr) = min_isr {
        let min_isr = min_isr.min(replication_factor);
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
    }
    let topic = NewTopic {
        name: internal.name.to_string(),
        num_partitions: partitions,
        replication_factor,
        configs,
        assignments: None,
    };
    let Some(rx) = ask(&ctx.metadata, |reply| MetadataMsg::CreateTopics {
        topics: vec![topic],
        validate_only: false,
        reply,
    }) else {
        return;
    };
    match rx.await.ok().and_then(|r| r.into_iter().next()) {
        Some(Ok(_)) => info!(
            topic = internal.name,
            partitions, replication_factor, "Created an internal topic."
        ),
        Some(Err(err)) => debug!(topic = internal.name, %err, "Internal topic not created here."),
        None => {}
    }
}
