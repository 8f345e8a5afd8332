//! OffsetForLeaderEpoch v2-v4 on one node: there is one leader epoch, 0, and it ends at
//! the log end offset. A newer current epoch than ours gets UNKNOWN_LEADER_EPOCH; an epoch
//! after ours answers -1 as Kafka does.
//!
//! A follower's request (replica_id >= 0) is answered by the partition's leader role from
//! its leader-epoch cache (KIP-101/KIP-279: where the follower's epoch ended).

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use ractor::RpcReplyPort;

use crate::actors::partition::{PartitionMsg, ReplicationMsg};
use crate::actors::Reply;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

const EPOCH: i32 = 0;

pub fn prepare(ctx: &BrokerContext, req: OffsetForLeaderEpochRequest) -> ResponseFuture {
    if req.replica_id.0 >= 0 {
        return for_follower(ctx, req);
    }
    let topics = ask_each(ctx, req, |_| move |reply| PartitionMsg::Offsets { reply });
    Box::pin(async move {
        let mut results = Vec::with_capacity(topics.len());
        for (name, parts) in topics {
            let mut partitions = Vec::with_capacity(parts.len());
            for (p, rx) in parts {
                let entry = EpochEndOffset::default().with_partition(p.partition);
                let Some(rx) = rx else {
                    partitions
                        .push(entry.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                    continue;
                };
                if p.current_leader_epoch > EPOCH {
                    partitions
                        .push(entry.with_error_code(ResponseError::UnknownLeaderEpoch.code()));
                    continue;
                }
                partitions.push(match rx.await {
                    Ok(o) if p.leader_epoch >= 0 && p.leader_epoch <= EPOCH => entry
                        .with_leader_epoch(EPOCH)
                        .with_end_offset(o.log_end_offset),
                    Ok(_) => entry.with_leader_epoch(-1).with_end_offset(-1),
                    Err(_) => entry.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                });
            }
            results.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(name)
                    .with_partitions(partitions),
            );
        }
        ResponseKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochResponse::default().with_topics(results),
        )
    })
}

/// A follower's question, answered by each partition's epoch cache.
fn for_follower(ctx: &BrokerContext, req: OffsetForLeaderEpochRequest) -> ResponseFuture {
    let topics = ask_each(ctx, req, |p| {
        let (current_leader_epoch, leader_epoch) = (p.current_leader_epoch, p.leader_epoch);
        move |reply| {
            PartitionMsg::Replication(ReplicationMsg::EndOffsetForEpoch {
                current_leader_epoch,
                leader_epoch,
                reply,
            })
        }
    });
    Box::pin(async move {
        let mut results = Vec::with_capacity(topics.len());
        for (name, parts) in topics {
            let mut partitions = Vec::with_capacity(parts.len());
            for (p, rx) in parts {
                let entry = EpochEndOffset::default().with_partition(p.partition);
                let Some(rx) = rx else {
                    partitions
                        .push(entry.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                    continue;
                };
                partitions.push(match rx.await {
                    Ok(Ok((epoch, end))) => entry.with_leader_epoch(epoch).with_end_offset(end),
                    Ok(Err(err)) => entry
                        .with_error_code(err.code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                    Err(_) => entry.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                });
            }
            results.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(name)
                    .with_partitions(partitions),
            );
        }
        ResponseKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochResponse::default().with_topics(results),
        )
    })
}

/// A requested partition and the reply its actor will send (None: not here).
type Asked<T> = (OffsetForLeaderPartition, Option<Reply<T>>);

/// Each requested partition with the question `message` builds for it sent to its actor
/// (None: no such topic or partition here), grouped by topic in request order.
fn ask_each<T, B>(
    ctx: &BrokerContext,
    req: OffsetForLeaderEpochRequest,
    message: impl Fn(&OffsetForLeaderPartition) -> B,
) -> Vec<(TopicName, Vec<Asked<T>>)>
where
    T: Send + 'static,
    B: FnOnce(RpcReplyPort<T>) -> PartitionMsg,
{
    let routes = ctx.routes();
    req.topics
        .into_iter()
        .map(|t| {
            let route = routes.topic(t.topic.0.as_str()).cloned();
            let parts = t
                .partitions
                .into_iter()
                .map(|p| {
                    let rx = route
                        .as_ref()
                        .and_then(|r| r.partition(p.partition))
                        .and_then(|a| ask(a, message(&p)));
                    (p, rx)
                })
                .collect();
            (t.topic, parts)
        })
        .collect()
}
