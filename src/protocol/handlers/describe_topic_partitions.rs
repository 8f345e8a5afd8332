//! DescribeTopicPartitions v0 (KIP-966; Kafka 3.8+ admin clients describe topics with it):
//! the requested topics (every topic for an empty list) sorted by name, their partitions
//! paged by `response_partition_limit` (at most Kafka's `max.request.partition.size.limit`,
//! 2000) with a cursor to resume from. This broker leads every partition at epoch 0 with
//! itself as the only replica; there are no eligible leader replicas (ELR).

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseKind,
};
use kafka_protocol::ResponseError;

use super::topic_name;
use crate::coordinator::offsets_topic::OFFSETS_TOPIC;
use crate::coordinator::transaction_state_topic::TRANSACTION_STATE_TOPIC;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

/// Kafka's `max.request.partition.size.limit` default: the most partitions in one response.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

pub fn prepare(ctx: &BrokerContext, req: DescribeTopicPartitionsRequest) -> ResponseFuture {
    let response = build(ctx, req);
    Box::pin(async move { ResponseKind::DescribeTopicPartitions(response) })
}

fn build(
    ctx: &BrokerContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let routes = ctx.routes();
    let node = BrokerId(ctx.config.node_id);
    // Sorted and deduplicated, as Kafka answers them.
    let names: BTreeSet<String> = if req.topics.is_empty() {
        routes.topics().iter().map(|r| r.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(topic) = &start_topic {
        if !req.topics.is_empty() && !names.contains(topic) {
            // Kafka refuses a cursor that points outside the request.
            return DescribeTopicPartitionsResponse::default().with_topics(vec![
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name(topic)))
                    .with_error_code(ResponseError::InvalidRequest.code()),
            ]);
        }
    }
    let mut budget = req
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .iter()
        .filter(|n| start_topic.as_ref().is_none_or(|s| *n >= s))
    {
        let Some(route) = routes.topic(name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name(name)));
            break;
        }
        let first = if start_topic.as_deref() == Some(name.as_str()) {
            start_partition
        } else {
            0
        };
        let count = route.partitions.len() as i32;
        let last = count.min(first.saturating_add(budget));
        let partitions: Vec<_> = (first..last)
            .map(|index| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        budget -= (last - first).max(0);
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(name)))
                .with_topic_id(route.id)
                .with_is_internal(
                    name.as_str() == OFFSETS_TOPIC || name.as_str() == TRANSACTION_STATE_TOPIC,
                )
                .with_partitions(partitions)
                .with_topic_authorized_operations(i32::MIN),
        );
        if last < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(last),
            );
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
