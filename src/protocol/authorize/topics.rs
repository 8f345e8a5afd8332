//! Topic-level checks: Produce needs WRITE (and WRITE on its transactional id), Fetch READ
//! (a follower's fetch CLUSTER_ACTION on the cluster), ListOffsets, OffsetForLeaderEpoch
//! and DescribeTopicPartitions DESCRIBE, CreateTopics CREATE on the cluster or the topic,
//! DeleteTopics and DeleteRecords DELETE, CreatePartitions ALTER, DescribeProducers READ,
//! and the config APIs DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic or the cluster.

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{serve, serve_then, split, Checked, CLUSTER_DENIED, TOPIC_DENIED, TXN_ID_DENIED};
use crate::protocol::BrokerContext;
use crate::security::acl::{AclOperation as Op, ResourceType};
use crate::security::authorizer_view::AuthorizerView;

/// A topic named by id (Produce v13, Fetch v13+) is checked under the name it has now.
fn named(ctx: &BrokerContext, name: &TopicName, id: &uuid::Uuid) -> Option<String> {
    if !name.0.is_empty() {
        return Some(name.0.to_string());
    }
    ctx.routes().topic_by_id(id).map(|r| r.name.clone())
}

pub fn produce(ctx: &BrokerContext, mut req: ProduceRequest, view: &AuthorizerView) -> Checked {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !view.allows_transactional_id(Op::Write, id));
    let routes = ctx.routes();
    let mut kept = Vec::with_capacity(req.topic_data.len());
    let mut denied = Vec::new();
    for topic in std::mem::take(&mut req.topic_data) {
        let code = match named(ctx, &topic.name, &topic.topic_id) {
            _ if txn_denied => Some(TXN_ID_DENIED),
            Some(name) if !view.allows_topic(Op::Write, &name) => Some(TOPIC_DENIED),
            // Produce auto-creates a missing topic: only for a principal that may create it.
            Some(name)
                if routes.topic(&name).is_none()
                    && ctx.config.auto_create_topics
                    && !view.allows_create_topic(&name) =>
            {
                Some(ResponseError::UnknownTopicOrPartition.code())
            }
            _ => None,
        };
        match code {
            Some(code) => denied.push((topic, code)),
            None => kept.push(topic),
        }
    }
    req.topic_data = kept;
    serve(RequestKind::Produce(req), denied, |resp, denied| {
        let ResponseKind::Produce(r) = resp else {
            return;
        };
        for (topic, code) in denied {
            let partitions = topic.partition_data.iter().map(|p| {
                PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_error_code(code)
                    .with_base_offset(-1)
                    .with_log_start_offset(-1)
            });
            r.responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_topic_id(topic.topic_id)
                    .with_partition_responses(partitions.collect()),
            );
        }
    })
}

fn denied_fetch_partition(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(TOPIC_DENIED)
        .with_high_watermark(-1)
}

pub fn fetch(ctx: &BrokerContext, mut req: FetchRequest, view: &AuthorizerView) -> Checked {
    if req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0 {
        if view.allows_cluster(Op::ClusterAction) {
            return Checked::Serve(RequestKind::Fetch(req), None);
        }
        return Checked::Refuse(ResponseKind::Fetch(
            FetchResponse::default().with_error_code(CLUSTER_DENIED),
        ));
    }
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        named(ctx, &t.topic, &t.topic_id).is_none_or(|n| view.allows_topic(Op::Read, &n))
    });
    req.topics = kept;
    let ctx = ctx.clone();
    let view = view.clone();
    serve_then(RequestKind::Fetch(req), move |resp| {
        let ResponseKind::Fetch(r) = resp else {
            return;
        };
        // A fetch session may still hold a topic whose ACL was removed since it was added.
        for topic in &mut r.responses {
            let allowed = named(&ctx, &topic.topic, &topic.topic_id)
                .is_none_or(|n| view.allows_topic(Op::Read, &n));
            if !allowed {
                for p in &mut topic.partitions {
                    *p = denied_fetch_partition(p.partition_index);
                }
            }
        }
        for topic in denied {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| denied_fetch_partition(p.partition));
            r.responses.push(
                FetchableTopicResponse::default()
                    .with_topic(topic.topic)
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions.collect()),
            );
        }
    })
}

pub fn list_offsets(mut req: ListOffsetsRequest, view: &AuthorizerView) -> Checked {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        view.allows_topic(Op::Describe, &t.name)
    });
    req.topics = kept;
    serve(RequestKind::ListOffsets(req), denied, |resp, denied| {
        let ResponseKind::ListOffsets(r) = resp else {
            return;
        };
        for topic in denied {
            let partitions = topic.partitions.iter().map(|p| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(TOPIC_DENIED)
                    .with_timestamp(-1)
                    .with_offset(-1)
            });
            r.topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions.collect()),
            );
        }
    })
}

pub fn offset_for_leader_epoch(
    mut req: OffsetForLeaderEpochRequest,
    view: &AuthorizerView,
) -> Checked {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let (kept, denied) = if req.replica_id.0 >= 0 {
        // A follower's request: CLUSTER_ACTION, or every partition is refused.
        let code = (!view.allows_cluster(Op::ClusterAction)).then_some(CLUSTER_DENIED);
        match code {
            Some(code) => (Vec::new(), tag(std::mem::take(&mut req.topics), code)),
            None => (std::mem::take(&mut req.topics), Vec::new()),
        }
    } else {
        let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
            view.allows_topic(Op::Describe, &t.topic)
        });
        (kept, tag(denied, TOPIC_DENIED))
    };
    req.topics = kept;
    serve(
        RequestKind::OffsetForLeaderEpoch(req),
        denied,
        |resp, denied| {
            let ResponseKind::OffsetForLeaderEpoch(r) = resp else {
                return;
            };
            for (topic, code) in denied {
                let partitions = topic.partitions.iter().map(|p| {
                    EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_error_code(code)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1)
                });
                r.topics.push(
                    OffsetForLeaderTopicResult::default()
                        .with_topic(topic.topic)
                        .with_partitions(partitions.collect()),
                );
            }
        },
    )
}

fn tag<T>(items: Vec<T>, code: i16) -> Vec<(T, i16)> {
    items.into_iter().map(|t| (t, code)).collect()
}

pub fn create_topics(mut req: CreateTopicsRequest, view: &AuthorizerView) -> Checked {
    use create_topics_response::CreatableTopicResult;
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        view.allows_create_topic(&t.name)
    });
    req.topics = kept;
    serve(RequestKind::CreateTopics(req), denied, |resp, denied| {
        let ResponseKind::CreateTopics(r) = resp else {
            return;
        };
        for topic in denied {
            r.topics.push(
                CreatableTopicResult::default()
                    .with_name(topic.name)
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(crate::protocol::handlers::text(
                        "Authorization failed.",
                    )))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
        }
    })
}

pub fn delete_topics(
    ctx: &BrokerContext,
    mut req: DeleteTopicsRequest,
    view: &AuthorizerView,
) -> Checked {
    use delete_topics_response::DeletableTopicResult;
    let allowed = |name: &str| view.allows_topic(Op::Delete, name);
    let (names, denied_names) = split(std::mem::take(&mut req.topic_names), |n| allowed(n));
    let (topics, denied_topics) = split(std::mem::take(&mut req.topics), |t| {
        let name = t.name.clone().unwrap_or_default();
        named(ctx, &name, &t.topic_id).is_none_or(|n| allowed(&n))
    });
    req.topic_names = names;
    req.topics = topics;
    let denied: Vec<_> = denied_names
        .into_iter()
        .map(|n| (Some(n), uuid::Uuid::nil()))
        .chain(denied_topics.into_iter().map(|t| (t.name, t.topic_id)))
        .collect();
    serve(RequestKind::DeleteTopics(req), denied, |resp, denied| {
        let ResponseKind::DeleteTopics(r) = resp else {
            return;
        };
        for (name, id) in denied {
            r.responses.push(
                DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(TOPIC_DENIED),
            );
        }
    })
}

pub fn create_partitions(mut req: CreatePartitionsRequest, view: &AuthorizerView) -> Checked {
    use create_partitions_response::CreatePartitionsTopicResult;
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        view.allows_topic(Op::Alter, &t.name)
    });
    req.topics = kept;
    serve(
        RequestKind::CreatePartitions(req),
        denied,
        |resp, denied| {
            let ResponseKind::CreatePartitions(r) = resp else {
                return;
            };
            for topic in denied {
                r.results.push(
                    CreatePartitionsTopicResult::default()
                        .with_name(topic.name)
                        .with_error_code(TOPIC_DENIED),
                );
            }
        },
    )
}

pub fn delete_records(mut req: DeleteRecordsRequest, view: &AuthorizerView) -> Checked {
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        view.allows_topic(Op::Delete, &t.name)
    });
    req.topics = kept;
    serve(RequestKind::DeleteRecords(req), denied, |resp, denied| {
        let ResponseKind::DeleteRecords(r) = resp else {
            return;
        };
        for topic in denied {
            let partitions = topic.partitions.iter().map(|p| {
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(-1)
                    .with_error_code(TOPIC_DENIED)
            });
            r.topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions.collect()),
            );
        }
    })
}

pub fn describe_producers(mut req: DescribeProducersRequest, view: &AuthorizerView) -> Checked {
    use describe_producers_response::{PartitionResponse, TopicResponse};
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        view.allows_topic(Op::Read, &t.name)
    });
    req.topics = kept;
    serve(
        RequestKind::DescribeProducers(req),
        denied,
        |resp, denied| {
            let ResponseKind::DescribeProducers(r) = resp else {
                return;
            };
            for topic in denied {
                let partitions = topic.partition_indexes.iter().map(|i| {
                    PartitionResponse::default()
                        .with_partition_index(*i)
                        .with_error_code(TOPIC_DENIED)
                });
                r.topics.push(
                    TopicResponse::default()
                        .with_name(topic.name)
                        .with_partitions(partitions.collect()),
                );
            }
        },
    )
}

/// Listing every topic drops the ones the principal may not describe; a named one it
/// may not describe is TOPIC_AUTHORIZATION_FAILED without partitions.
pub fn describe_topic_partitions(
    req: DescribeTopicPartitionsRequest,
    view: &AuthorizerView,
) -> Checked {
    let listing = req.topics.is_empty();
    let view = view.clone();
    serve_then(RequestKind::DescribeTopicPartitions(req), move |resp| {
        let ResponseKind::DescribeTopicPartitions(r) = resp else {
            return;
        };
        let name =
            |t: &describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic| {
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default()
            };
        if listing {
            r.topics
                .retain(|t| view.allows_topic(Op::Describe, &name(t)));
        }
        for topic in &mut r.topics {
            let n = name(topic);
            if view.allows_topic(Op::Describe, &n) {
                topic.topic_authorized_operations =
                    view.authorized_operations(ResourceType::Topic, &n);
            } else {
                topic.error_code = TOPIC_DENIED;
                topic.partitions.clear();
                topic.topic_id = uuid::Uuid::nil();
            }
        }
    })
}

/// A config resource's check: a topic needs `op` on the topic, a broker or broker
/// logger `op` on the cluster. Other types are left to the handler.
fn config_refusal(view: &AuthorizerView, op: Op, resource_type: i8, name: &str) -> Option<i16> {
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const BROKER_LOGGER: i8 = 8;
    match resource_type {
        TOPIC if !view.allows_topic(op, name) => Some(TOPIC_DENIED),
        BROKER | BROKER_LOGGER if !view.allows_cluster(op) => Some(CLUSTER_DENIED),
        _ => None,
    }
}

/// Splits config resources into those to serve and those refused, each with its code.
fn split_configs<R>(
    resources: Vec<R>,
    view: &AuthorizerView,
    op: Op,
    key: impl Fn(&R) -> (i8, &str),
) -> (Vec<R>, Vec<(R, i16)>) {
    let mut kept = Vec::with_capacity(resources.len());
    let mut denied = Vec::new();
    for r in resources {
        let (resource_type, name) = key(&r);
        match config_refusal(view, op, resource_type, name) {
            Some(code) => denied.push((r, code)),
            None => kept.push(r),
        }
    }
    (kept, denied)
}

pub fn describe_configs(mut req: DescribeConfigsRequest, view: &AuthorizerView) -> Checked {
    use describe_configs_response::DescribeConfigsResult;
    let (kept, denied) = split_configs(
        std::mem::take(&mut req.resources),
        view,
        Op::DescribeConfigs,
        |r| (r.resource_type, &r.resource_name),
    );
    req.resources = kept;
    serve(RequestKind::DescribeConfigs(req), denied, |resp, denied| {
        let ResponseKind::DescribeConfigs(r) = resp else {
            return;
        };
        for (resource, code) in denied {
            r.results.push(
                DescribeConfigsResult::default()
                    .with_error_code(code)
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name),
            );
        }
    })
}

pub fn alter_configs(mut req: AlterConfigsRequest, view: &AuthorizerView) -> Checked {
    use alter_configs_response::AlterConfigsResourceResponse;
    let (kept, denied) = split_configs(
        std::mem::take(&mut req.resources),
        view,
        Op::AlterConfigs,
        |r| (r.resource_type, &r.resource_name),
    );
    req.resources = kept;
    serve(RequestKind::AlterConfigs(req), denied, |resp, denied| {
        let ResponseKind::AlterConfigs(r) = resp else {
            return;
        };
        for (resource, code) in denied {
            r.responses.push(
                AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name),
            );
        }
    })
}

pub fn incremental_alter_configs(
    mut req: IncrementalAlterConfigsRequest,
    view: &AuthorizerView,
) -> Checked {
    use incremental_alter_configs_response::AlterConfigsResourceResponse;
    let (kept, denied) = split_configs(
        std::mem::take(&mut req.resources),
        view,
        Op::AlterConfigs,
        |r| (r.resource_type, &r.resource_name),
    );
    req.resources = kept;
    serve(
        RequestKind::IncrementalAlterConfigs(req),
        denied,
        |resp, denied| {
            let ResponseKind::IncrementalAlterConfigs(r) = resp else {
                return;
            };
            for (resource, code) in denied {
                r.responses.push(
                    AlterConfigsResourceResponse::default()
                        .with_error_code(code)
                        .with_resource_type(resource.resource_type)
                        .with_resource_name(resource.resource_name),
                );
            }
        },
    )
}
