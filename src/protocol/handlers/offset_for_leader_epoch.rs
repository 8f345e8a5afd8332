//! OffsetForLeaderEpoch v2-v4: where a leader epoch ended, for a follower (replica_id >= 0,
//! KIP-101/KIP-279) and for a consumer (replica_id -1, KIP-320) alike. A replicated
//! partition's leader answers from its leader-epoch cache, after checking the current
//! leader epoch (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH); a follower answers
//! NOT_LEADER_OR_FOLLOWER. A single-node partition has one epoch, 0, ending at the log end.

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

/// Each requested partition asks its actor: the leader answers from its leader-epoch cache,
/// for a consumer (replica_id -1, KIP-320) as for a follower.
pub fn prepare(ctx: &BrokerContext, req: OffsetForLeaderEpochRequest) -> ResponseFuture {
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
