//! OffsetFetch v1-v9: committed offsets of one group (v1-v7) or several (v8+); a topic
//! list of null means every committed offset (v2+). A partition without a committed
//! offset answers -1 with empty metadata, as Kafka does. With require_stable (v7+), a
//! partition whose offset is pending in an open transaction answers UNSTABLE_OFFSET_COMMIT
//! so the client asks again once the transaction ends. v9 naming a member of a consumer
//! group (KIP-848) is checked as Kafka does: UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH.

use std::collections::HashSet;

use futures::future::join_all;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;

use super::groups::group;
use super::{text, topic_name};
use crate::actors::group::GroupMsg;
use crate::coordinator::group_store::{CommittedOffset, TopicPartition};
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

type Found = Vec<(TopicPartition, Option<CommittedOffset>)>;
/// Offsets of one topic: (partition, committed offset if any).
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// Partitions whose offsets are pending in a transaction (only asked for require_stable).
type Unstable = Option<crate::actors::Reply<Vec<TopicPartition>>>;

async fn unstable_set(unstable: Unstable) -> HashSet<TopicPartition> {
    match unstable {
        Some(rx) => rx.await.unwrap_or_default().into_iter().collect(),
        None => HashSet::new(),
    }
}

async fn ask_group(
    ctx: &BrokerContext,
    group_id: &str,
    partitions: Option<Vec<TopicPartition>>,
    require_stable: bool,
) -> (Result<crate::actors::Reply<Found>, i16>, Unstable) {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    // Not the coordinator now (cluster mode): NOT_COORDINATOR or
    // COORDINATOR_LOAD_IN_PROGRESS, never "nothing committed".
    let actor = match group(ctx, group_id, false).await {
        Ok(actor) => actor,
        Err(error) => return (Err(error), None),
    };
    match actor {
        Some(actor) => {
            let unstable = if require_stable {
                ask(&actor, |reply| GroupMsg::UnstablePartitions { reply })
            } else {
                None
            };
            let found = ask(&actor, |reply| GroupMsg::FetchOffsets { partitions, reply });
            (found.ok_or(unavailable), unstable)
        }
        // No such group: nothing committed; answer every asked partition with -1.
        None => {
            let nothing = partitions
                .unwrap_or_default()
                .into_iter()
                .map(|tp| (tp, None))
                .collect();
            (Ok(crate::actors::Reply::ready(nothing)), None)
        }
    }
}

/// A consumer group's check of the member an OffsetFetch v9 names (KIP-848).
type MemberCheck = Option<crate::actors::Reply<i16>>;

async fn member_check(
    ctx: &BrokerContext,
    group_id: &str,
    member_id: String,
    member_epoch: i32,
) -> MemberCheck {
    let actor = group(ctx, group_id, false).await.ok().flatten()?;
    ask(&actor, |reply| GroupMsg::ConsumerFetchCheck {
        member_id,
        member_epoch,
        reply,
    })
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

/// A partition's answer: its offset, or UNSTABLE_OFFSET_COMMIT while a transaction holds
/// a newer one pending.
fn checked(offset: Option<CommittedOffset>, pending: bool) -> (CommittedOffset, i16) {
    if pending {
        (or_unset(None), ResponseError::UnstableOffsetCommit.code())
    } else {
        (or_unset(offset), 0)
    }
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
            let check = match (version >= 9, g.member_id) {
                (true, Some(member)) => {
                    member_check(
                        ctx,
                        g.group_id.0.as_str(),
                        member.to_string(),
                        g.member_epoch,
                    )
                    .await
                }
                _ => None,
            };
            let rx = ask_group(ctx, g.group_id.0.as_str(), partitions, req.require_stable).await;
            asks.push((g.group_id, rx, check));
        }
        return Box::pin(async move {
            let groups = join_all(asks.into_iter().map(
                |(id, (rx, unstable), check): (GroupId, _, MemberCheck)| async move {
                    let unstable = unstable_set(unstable).await;
                    let refused = match check {
                        Some(check) => check.await.unwrap_or(0),
                        None => 0,
                    };
                    if refused != 0 {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(id)
                            .with_error_code(refused);
                    }
                    match rx {
                        Ok(rx) => match rx.await {
                            Ok(found) => OffsetFetchResponseGroup::default()
                                .with_group_id(id)
                                .with_topics(
                                    by_topic(found)
                                        .into_iter()
                                        .map(|(t, parts)| {
                                            let unstable = &unstable;
                                            OffsetFetchResponseTopics::default()
                                                .with_name(topic_name(&t))
                                                .with_partitions(
                                                    parts
                                                        .into_iter()
                                                        .map(|(p, o)| {
                                                            let pending =
                                                                unstable.contains(&(t.clone(), p));
                                                            let (o, error) = checked(o, pending);
                                                            OffsetFetchResponsePartitions::default()
                                                                .with_partition_index(p)
                                                                .with_error_code(error)
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
                        Err(error) => OffsetFetchResponseGroup::default()
                            .with_group_id(id)
                            .with_error_code(error),
                    }
                },
            ))
            .await;
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(groups))
        });
    }
    let partitions = req
        .topics
        .map(|ts| flatten(ts.into_iter().map(|t| (t.name, t.partition_indexes))));
    let require_stable = version >= 7 && req.require_stable;
    let (rx, unstable) = ask_group(ctx, req.group_id.0.as_str(), partitions, require_stable).await;
    Box::pin(async move {
        let unstable = unstable_set(unstable).await;
        let found = match rx {
            Ok(rx) => rx
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable.code()),
            Err(error) => Err(error),
        };
        let found = match found {
            Ok(found) => found,
            Err(error) => {
                return ResponseKind::OffsetFetch(
                    OffsetFetchResponse::default().with_error_code(error),
                )
            }
        };
        let topics = by_topic(found)
            .into_iter()
            .map(|(t, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|(p, o)| {
                        let (o, error) = checked(o, unstable.contains(&(t.clone(), p)));
                        let entry = OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(error)
                            .with_committed_offset(o.offset)
                            .with_metadata(Some(text(o.metadata.unwrap_or_default())));
                        if version >= 5 {
                            entry.with_committed_leader_epoch(o.leader_epoch)
                        } else {
                            entry
                        }
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(text(t)))
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_topics(topics))
    })
}
