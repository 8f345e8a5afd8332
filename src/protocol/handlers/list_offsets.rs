//! ListOffsets v1-v9: earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local
//! (-4, v8+), latest tiered (-5, v9+) and by timestamp, exact to the record (Kafka 3.8+).
//! Every answer comes from the partition actor, the one owner of the log start offset and
//! high watermark. A timestamp after the last record answers -1. A special timestamp older
//! than its version, or unknown, is UNSUPPORTED_VERSION for its partition, as in Kafka.
//!
//! Cluster mode, as Kafka's: the partition's current_leader_epoch (v4+) is checked first
//! (FENCED_LEADER_EPOCH when older than the replica's, UNKNOWN_LEADER_EPOCH when newer, -1
//! unchecked, KIP-320), then only the leader answers (NOT_LEADER_OR_FOLLOWER elsewhere)
//! unless the request is a debugging one (replica_id -2). Each offset carries the leader
//! epoch it was written in (the current one for the latest offset).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use crate::actors::partition::{
    LeaderCheck, PartitionMsg, EARLIEST_LOCAL_TIMESTAMP, EARLIEST_TIMESTAMP,
    LATEST_TIERED_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP,
};
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

/// Kafka's ReplicaManager.isListOffsetsTimestampUnsupported: each special timestamp needs
/// the version that introduced it; other negative ones are unknown.
fn unsupported(timestamp: i64, version: i16) -> bool {
    let since = match timestamp {
        t if t >= 0 => return false,
        LATEST_TIMESTAMP | EARLIEST_TIMESTAMP => 1,
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL_TIMESTAMP => 8,
        LATEST_TIERED_TIMESTAMP => 9,
        _ => return true,
    };
    version < since
}

/// Kafka's ListOffsetsRequest.DEBUGGING_REPLICA_ID: may be answered by a follower.
const DEBUGGING_REPLICA_ID: i32 = -2;

type Listed = Result<(i64, i64, i32), crate::error::PartitionError>;

enum Pending {
    Asked(Option<crate::actors::Reply<Listed>>),
    Failed(i16),
}

pub fn prepare(ctx: &BrokerContext, version: i16, req: ListOffsetsRequest) -> ResponseFuture {
    let routes = ctx.routes();
    // Kafka's IsolationLevel: 1 is READ_COMMITTED (latest = the last stable offset).
    let read_committed = req.isolation_level == 1;
    let leader_only = req.replica_id.0 != DEBUGGING_REPLICA_ID;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let route = routes.topic(topic.name.0.as_str()).cloned();
        let mut pending = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            if unsupported(p.timestamp, version) {
                let code = ResponseError::UnsupportedVersion.code();
                pending.push((p.partition_index, Pending::Failed(code)));
                continue;
            }
            let rx = route
                .as_ref()
                .and_then(|r| r.partition(p.partition_index))
                .and_then(|actor| {
                    ask(actor, |reply| PartitionMsg::ListOffset {
                        timestamp: p.timestamp,
                        read_committed,
                        check: LeaderCheck {
                            current_leader_epoch: p.current_leader_epoch,
                            leader_only,
                        },
                        reply,
                    })
                });
            pending.push((p.partition_index, Pending::Asked(rx)));
        }
        topics.push((topic.name, pending));
    }
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, pending) in topics {
            let mut partitions = Vec::with_capacity(pending.len());
            for (index, rx) in pending {
                let entry = ListOffsetsPartitionResponse::default().with_partition_index(index);
                partitions.push(match rx {
                    Pending::Failed(code) => entry
                        .with_error_code(code)
                        .with_timestamp(-1)
                        .with_offset(-1),
                    Pending::Asked(None) => entry
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_timestamp(-1)
                        .with_offset(-1),
                    Pending::Asked(Some(rx)) => match rx.await {
                        Ok(Ok((offset, timestamp, epoch))) => {
                            let entry = entry.with_offset(offset).with_timestamp(timestamp);
                            // The leader epoch exists from v4 on; the codec refuses it before.
                            if version >= 4 && offset >= 0 {
                                entry.with_leader_epoch(epoch)
                            } else {
                                entry
                            }
                        }
                        Ok(Err(err)) => entry
                            .with_error_code(err.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                        Err(_) => entry
                            .with_error_code(ResponseError::NotLeaderOrFollower.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                    },
                });
            }
            responses.push(
                ListOffsetsTopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
        ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(responses))
    })
}
