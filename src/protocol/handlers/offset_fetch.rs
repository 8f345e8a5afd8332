//! OffsetFetch v1-v9: committed offsets of one group (v1-v7) or several (v8+); a topic
//! list of null means every committed offset (v2+). A partition without a committed
//! offset answers -1 with empty metadata, as Kafka does.

use futures::future::join_all;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::groups::group;
use super::{text, topic_name};
use crate::actors::group::GroupMsg;
use crate::actors::group_store::{CommittedOffset, TopicPartition};
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

type Found = Vec<(TopicPartition, Option<CommittedOffset>)>;
/// Offsets of one topic: (partition, committed offset if any).
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

async fn ask_group(
    ctx: &BrokerContext,
    group_id: &str,
    partitions: Option<Vec<TopicPartition>>,
) -> Option<oneshot::Receiver<Found>> {
    let actor = group(ctx, group_id, false).await;
    match actor {
        Some(actor) => ask(&actor, |reply| GroupMsg::FetchOffsets { partitions, reply }),
        // No such group: nothing committed; answer every asked partition with -1.
        None => {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(
                partitions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|tp| (tp, None))
                    .collect(),
            );
            Some(rx)
        }
    }
}

/// The asked partitions as (topic, partition) pairs.
fn flatten(topics: impl Iterator<Item = (TopicName, Vec<i32>)>) -> Vec<TopicPartition> {
    topics
        .flat_map(|(name, partitions)| {
            let name = name.0.to_string();
            partitions.into_iter().map(move |p| (name.clone(), p))
        })
        .collect()
}

/// What Kafka answers for a partition without a committed offset.
fn or_unset(offset: Option<CommittedOffset>) -> CommittedOffset {
    offset.unwrap_or(CommittedOffset {
        offset: -1,
        leader_epoch: -1,
        metadata: Some(String::new()),
    })
}

/// Groups the found offsets by topic, in the order first seen.
fn by_topic(found: Found) -> Vec<TopicOffsets> {
    let mut out: Vec<TopicOffsets> = Vec::new();
    for ((topic, partition), offset) in found {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, parts)) => parts.push((partition, offset)),
            None => out.push((topic, vec![(partition, offset)])),
        }
    }
    out
}

pub async fn prepare(ctx: &BrokerContext, version: i16, req: OffsetFetchRequest) -> ResponseFuture {
    if version >= 8 {
        let mut asks = Vec::new();
        for g in req.groups {
            let partitions = g
                .topics
                .map(|ts| flatten(ts.into_iter().map(|t| (t.name, t.partition_indexes))));
            let rx = ask_group(ctx, g.group_id.0.as_str(), partitions).await;
            asks.push((g.group_id, rx));
        }
        return Box::pin(async move {
            let groups = join_all(asks.into_iter().map(|(id, rx): (GroupId, _)| async move {
                match rx {
                    Some(rx) => match rx.await {
                        Ok(found) => OffsetFetchResponseGroup::default()
                            .with_group_id(id)
                            .with_topics(
                                by_topic(found)
                                    .into_iter()
                                    .map(|(t, parts)| {
                                        OffsetFetchResponseTopics::default()
                                            .with_name(topic_name(&t))
                                            .with_partitions(
                                                parts
                                                    .into_iter()
                                                    .map(|(p, o)| {
                                                        let o = or_unset(o);
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(o.offset)
                                                            .with_committed_leader_epoch(
                                                                o.leader_epoch,
                                                            )
                                                            .with_metadata(Some(text(
                                                                o.metadata.unwrap_or_default(),
                                                            )))
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            ),
                        Err(_) => OffsetFetchResponseGroup::default()
                            .with_group_id(id)
                            .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                    },
                    None => OffsetFetchResponseGroup::default()
                        .with_group_id(id)
                        .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                }
            }))
            .await;
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(groups))
        });
    }
    let partitions = req
        .topics
        .map(|ts| flatten(ts.into_iter().map(|t| (t.name, t.partition_indexes))));
    let rx = ask_group(ctx, req.group_id.0.as_str(), partitions).await;
    Box::pin(async move {
        let found = match rx {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        let Some(found) = found else {
            return ResponseKind::OffsetFetch(
                OffsetFetchResponse::default()
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            );
        };
        let topics = by_topic(found)
            .into_iter()
            .map(|(t, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(text(t)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, o)| {
                                let o = or_unset(o);
                                let entry = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o.offset)
                                    .with_metadata(Some(text(o.metadata.unwrap_or_default())));
                                if version >= 5 {
                                    entry.with_committed_leader_epoch(o.leader_epoch)
                                } else {
                                    entry
                                }
                            })
                            .collect(),
                    )
            })
            .collect();
        ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_topics(topics))
    })
}
