//! DescribeQuorum v0-v1: the metadata quorum (`__cluster_metadata` partition 0) as its
//! leader sees it: voters and observers (non-voting brokers, Raft learners) with their log
//! end offsets, from which clients compute the lag (see `cluster::quorum_description`).
//! Any broker answers, asking the leader. Single-node mode has no quorum, so no such
//! partition: UNKNOWN_TOPIC_OR_PARTITION, as for any other name.

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;

use super::{text, topic_name};
use crate::cluster::quorum_description::{QuorumDescription, ReplicaProgress};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

/// Kafka's name for the metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn prepare(ctx: &BrokerContext, req: DescribeQuorumRequest) -> ResponseFuture {
    let quorum = ctx.quorum.clone();
    Box::pin(async move {
        let metadata = topic_name(METADATA_TOPIC);
        let asked_for_it = req.topics.len() == 1
            && req.topics[0].topic_name == metadata
            && req.topics[0].partitions.len() == 1
            && req.topics[0].partitions[0].partition_index == 0;
        let partition = PartitionData::default().with_partition_index(0);
        let described = match (&quorum, asked_for_it) {
            (Some(quorum), true) => match quorum.describe_quorum().await {
                Ok(description) => described(partition, &description),
                Err(err) => partition
                    .with_error_code(ResponseError::NotLeaderOrFollower.code())
                    .with_error_message(Some(text(err.to_string()))),
            },
            _ => partition
                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                .with_error_message(Some(text(
                    "only partition 0 of __cluster_metadata, which exists in cluster mode",
                ))),
        };
        let topic = TopicData::default()
            .with_topic_name(TopicName(metadata.0))
            .with_partitions(vec![described]);
        ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_topics(vec![topic]))
    })
}

fn described(partition: PartitionData, d: &QuorumDescription) -> PartitionData {
    let states = |members: &[ReplicaProgress]| {
        members
            .iter()
            .map(|m| {
                ReplicaState::default()
                    .with_replica_id(BrokerId(i32::try_from(m.id).unwrap_or(-1)))
                    .with_log_end_offset(m.log_end_offset)
                    .with_last_fetch_timestamp(-1)
                    .with_last_caught_up_timestamp(-1)
            })
            .collect()
    };
    partition
        .with_leader_id(BrokerId(i32::try_from(d.leader).unwrap_or(-1)))
        .with_leader_epoch(i32::try_from(d.term).unwrap_or(i32::MAX))
        .with_high_watermark(d.high_watermark)
        .with_current_voters(states(&d.voters))
        .with_observers(states(&d.observers))
}
