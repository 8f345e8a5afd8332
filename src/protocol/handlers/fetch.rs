//! Fetch v4-v18, with topic ids from v13. A long poll: the partitions are read at once; if
//! fewer than `min_bytes` came back, the request parks a waiter in each partition actor and
//! sleeps until one of them reports new data past its offset or `max_wait_ms` runs out, then
//! reads again. No polling loop: appends wake the waiters.
//!
//! Limits, applied before any partition reads a byte: the response holds at most
//! `max_bytes` (a negative one counts as 0), capped by the broker's `fetch_max_bytes`, and
//! each partition at most `partition_max_bytes`. Partitions take their share in request
//! order, as Kafka's ReplicaManager does; reads whose shares fit together run at once. The
//! first partition with data gets one whole batch even past those limits (KIP-74), so a
//! consumer never stalls on a large batch. Every byte read is held against the broker-wide
//! fetch memory budget (`fetch_memory_budget_bytes`, see `fetch_memory`).
//!
//! A partition listed more than once is answered once, where it was first listed, with the
//! last listing's offset and limit: Kafka keys a fetch by topic-partition (a LinkedHashMap
//! in FetchRequest.fetchData). Consecutive listings of one topic share a response topic.
//!
//! A follower's fetch (replica_id >= 0 before v15, replica_state.replica_id from v15) is
//! served by the partition's leader role up to its log end, not the high watermark, and
//! tells the leader how far that follower has come (see `partition::replication`); it waits
//! for appends rather than for the high watermark.
//!
//! isolation_level=1 (read_committed) reads up to the last stable offset and answers the
//! aborted transactions in the returned range, so clients drop aborted records.
//! Cluster mode: followers, closer replicas (KIP-392) and leader hints (KIP-951) are in
//! `fetch_replicas`. Fetch sessions (KIP-227) from v7: see `fetch_sessions` and
//! `fetch_context`. A session's fetch reads every
//! partition the session holds and answers only those with records or changed metadata.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, select_all};
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::debug;
use uuid::Uuid;

use crate::actors::partition::{LeaderCheck, PartitionMsg, ReadOutcome};
use crate::actors::routing::{RoutingTable, TopicRoute};
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::fetch_memory::{FetchMemory, Held};
use crate::protocol::fetch_sessions::{
    as_fetch_topics, forgotten, requested, Context, FINAL_EPOCH,
};
use crate::protocol::BrokerContext;
use crate::storage::batch::{any_batch_compressed_with, ZSTD};

use super::fetch_context::in_session;
use super::fetch_replicas::{
    add_leader_hints, preferred_read_replica, read_for_follower, FOLLOWER_FETCH_VERSION,
    RACK_AWARE_SELECTOR,
};
use super::topic_name;

/// One requested partition.
pub(super) struct Wanted {
    pub(super) index: i32,
    pub(super) offset: i64,
    pub(super) max_bytes: usize,
    /// The requester's leader epoch (v9+; -1: not checked).
    pub(super) current_leader_epoch: i32,
    /// KIP-392: the closer replica this leader sends the consumer to.
    preferred_read_replica: Option<i32>,
}

pub(super) struct Topic {
    pub(super) name: TopicName,
    pub(super) id: Uuid,
    route: Result<Arc<TopicRoute>, i16>,
    pub(super) partitions: Vec<Wanted>,
}

pub(super) struct Fetch {
    pub(super) topics: Vec<Topic>,
    /// The request's version: below 10 a zstd batch is not returned (Kafka 2.1+).
    pub(super) version: i16,
    read_committed: bool,
    /// The request's max_bytes, capped by the broker's fetch_max_bytes.
    max_bytes: usize,
    /// How long one partition's read may take (fetch_partition_read_timeout_ms).
    read_timeout: Duration,
    /// Cluster mode: who leads what.
    cluster: Option<std::sync::Arc<crate::actors::routing::ClusterView>>,
    /// The follower's broker id for a follower's fetch; None for a consumer.
    replica_id: Option<i32>,
}

type Read = Result<ReadOutcome, i16>;

/// `listener`: the one the request came in on (KIP-951 endpoints are that listener's).
pub fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: FetchRequest,
    listener: &str,
) -> ResponseFuture {
    let listener = listener.to_string();
    let routes = ctx.routes();
    let config = ctx.config.clone();
    let memory = ctx.fetch_memory.clone();
    let sessions = ctx.fetch_sessions.clone();
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let rack_aware = config.replica_selector_class == RACK_AWARE_SELECTOR;
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    Box::pin(async move {
        let uses_ids = version >= 13;
        let limit = routes.partition_count();
        // Sessions came with v7; an old request decodes as session 0, FINAL_EPOCH.
        let context = if version < 7 || (req.session_id == 0 && req.session_epoch == FINAL_EPOCH) {
            Context::Sessionless
        } else {
            let changes = requested(&req.topics, uses_ids);
            let forgotten = forgotten(&req, uses_ids);
            sessions
                .begin(
                    req.session_id,
                    req.session_epoch,
                    uses_ids,
                    changes,
                    forgotten,
                    limit,
                )
                .await
        };
        let topics = match &context {
            Context::Error(code) => {
                return ResponseKind::Fetch(
                    FetchResponse::default()
                        .with_error_code(*code)
                        .with_session_id(0),
                );
            }
            Context::Incremental { partitions, .. } => {
                resolve(&routes, version, as_fetch_topics(partitions, uses_ids))
            }
            Context::Sessionless | Context::Full => resolve(&routes, version, req.topics),
        };
        let consumer = replica_id < 0;
        let mut topics = topics;
        if let (Some(cluster), true) = (&routes.cluster, consumer && rack_aware) {
            send_to_closer_replicas(&mut topics, cluster, version, req.rack_id.as_str());
        }
        let fetch = Fetch {
            topics,
            version,
            read_committed: req.isolation_level == 1,
            max_bytes: (req.max_bytes.max(0) as usize).min(config.fetch_max_bytes),
            read_timeout: Duration::from_millis(config.fetch_partition_read_timeout_ms),
            cluster: routes.cluster.clone(),
            replica_id: Some(replica_id).filter(|id| *id >= 0),
        };
        let mut response = long_poll(&fetch, &memory, max_wait, min_bytes).await;
        if let Some(cluster) = &fetch.cluster {
            let routes = fetch.topics.iter().map(|t| t.route.as_deref().ok());
            add_leader_hints(&mut response, routes, cluster, version, &listener);
        }
        ResponseKind::Fetch(in_session(&fetch, &sessions, context, response, limit).await)
    })
}

/// Reads until `min_bytes` came back, an error, or `max_wait` passed.
async fn long_poll(
    fetch: &Fetch,
    memory: &FetchMemory,
    max_wait: Duration,
    min_bytes: usize,
) -> FetchResponse {
    let deadline = Instant::now() + max_wait;
    loop {
        // The budget is held until the response is built, and not while waiting.
        let (results, _held, appended) = read_all(fetch, memory, deadline).await;
        let total: usize = results
            .iter()
            .flatten()
            .map(|r| r.as_ref().map_or(0, |read| read.records.len()))
            .sum();
        let any_error = results.iter().flatten().any(|r| r.is_err());
        // A partition sent to a closer replica is answered at once, as Kafka does.
        let redirected = fetch
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|w| w.preferred_read_replica.is_some());
        if total >= min_bytes || any_error || redirected || Instant::now() >= deadline {
            return respond(&fetch.topics, results);
        }
        if fetch.replica_id.is_some() && total == 0 {
            // A follower's fetch holds no bytes here, and its waiters fire on any append
            // past its offsets: if none fired by the deadline, this read still holds (a
            // newer high watermark reaches the follower on its next fetch, as in Kafka,
            // whose follower fetches wait for bytes only). No second read of every
            // partition: that was a third of an idle follower's cost on its leader. Each
            // read already parked its wait (one message per partition and round).
            if !first_before(appended, deadline).await {
                return respond(&fetch.topics, results);
            }
            continue;
        }
        drop(results);
        drop(_held);
        if !wait_for_data(fetch, deadline).await {
            let (results, _held, _) = read_all(fetch, memory, deadline).await;
            return respond(&fetch.topics, results);
        }
    }
}

/// KIP-392: each partition this broker leads whose consumer (`rack_id`, v11+) has an
/// in-sync replica in its rack is sent there.
fn send_to_closer_replicas(
    topics: &mut [Topic],
    cluster: &crate::actors::routing::ClusterView,
    version: i16,
    rack: &str,
) {
    if version < FOLLOWER_FETCH_VERSION || rack.is_empty() {
        return;
    }
    for topic in topics {
        let Ok(route) = &topic.route else { continue };
        for w in &mut topic.partitions {
            w.preferred_read_replica = route
                .placement(w.index)
                .and_then(|p| preferred_read_replica(cluster, p, rack));
        }
    }
}

/// The requested topics resolved to their routes, each partition once (the last listing
/// wins, in the first listing's place), consecutive listings of one topic joined.
fn resolve(routes: &RoutingTable, version: i16, requested: Vec<FetchTopic>) -> Vec<Topic> {
    let mut topics: Vec<Topic> = Vec::new();
    let mut last_key: Option<(Uuid, TopicName)> = None;
    let mut seen: HashMap<(Uuid, TopicName, i32), (usize, usize)> = HashMap::new();
    for t in requested {
        // v13+ names a topic by id only; before, by name only.
        let key = if version >= 13 {
            (t.topic_id, TopicName::default())
        } else {
            (Uuid::nil(), t.topic.clone())
        };
        if last_key.as_ref() != Some(&key) {
            let route = if version >= 13 {
                routes
                    .topic_by_id(&t.topic_id)
                    .cloned()
                    .ok_or(ResponseError::UnknownTopicId.code())
            } else {
                routes
                    .topic(t.topic.0.as_str())
                    .cloned()
                    .ok_or(ResponseError::UnknownTopicOrPartition.code())
            };
            let name = match &route {
                Ok(r) => topic_name(&r.name),
                Err(_) => t.topic.clone(),
            };
            topics.push(Topic {
                name,
                id: t.topic_id,
                route,
                partitions: Vec::new(),
            });
            last_key = Some(key.clone());
        }
        let at = topics.len() - 1;
        for p in t.partitions {
            let wanted = Wanted {
                index: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                preferred_read_replica: None,
            };
            match seen.entry((key.0, key.1.clone(), p.partition)) {
                Entry::Occupied(e) => {
                    let (topic, slot) = *e.get();
                    topics[topic].partitions[slot] = wanted;
                }
                Entry::Vacant(e) => {
                    e.insert((at, topics[at].partitions.len()));
                    topics[at].partitions.push(wanted);
                }
            }
        }
    }
    topics.retain(|t| !t.partitions.is_empty());
    topics
}

/// Reads every requested partition within the budget it takes: each partition's share is
/// min(partition_max_bytes, what is left), in request order, so no read allocates past
/// what the request holds. Reads whose shares fit together run at once (fan out, join),
/// then the next ones get what those left. The first partition with data whose first
/// batch did not fit is read once more for that one batch, with budget taken for it
/// (KIP-74). A follower's fetch also gets the long-poll waits its reads parked.
async fn read_all(
    fetch: &Fetch,
    memory: &FetchMemory,
    deadline: Instant,
) -> (Vec<Vec<Read>>, Held, Vec<oneshot::Receiver<()>>) {
    let wanted: Vec<(&Topic, &Wanted)> = fetch
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |w| (t, w)))
        .collect();
    let shares: Vec<usize> = wanted.iter().map(|(_, w)| w.max_bytes).collect();
    let mut held = memory.take(fetch.max_bytes, deadline).await;
    let mut room = held.bytes();
    let mut results: Vec<Option<Read>> = wanted.iter().map(|_| None).collect();
    let mut appended = Vec::new();
    let mut next = 0;
    while next < wanted.len() {
        let round = plan_round(&shares, next, room);
        next += round.len();
        let reads = round
            .iter()
            .map(|&(i, share)| read_one(fetch, wanted[i].0, wanted[i].1, share));
        for (&(i, _), (read, wait)) in round.iter().zip(join_all(reads).await) {
            if let Ok(read) = &read {
                room = room.saturating_sub(read.records.len());
            }
            results[i] = Some(read);
            appended.extend(wait);
        }
    }
    if let Some((i, size)) = first_starved(&results) {
        if let Some(extra) = memory.take_all(size, deadline).await {
            held.merge(extra);
            let (topic, w) = wanted[i];
            let (read, wait) = read_one(fetch, topic, w, size).await;
            results[i] = Some(read);
            appended.extend(wait);
        }
    }
    let used = results
        .iter()
        .flatten()
        .map(|r| r.as_ref().map_or(0, |read| read.records.len()))
        .sum();
    held.shrink_to(used);
    let mut results = results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ResponseError::UnknownServerError.code())));
    let nested = fetch
        .topics
        .iter()
        .map(|t| results.by_ref().take(t.partitions.len()).collect())
        .collect();
    (nested, held, appended)
}

/// The partitions read together next, from `next`, with their shares: while `room` is
/// left, as many as fit in it (at least one); when none is left, all the rest with
/// nothing (they still answer their offsets).
fn plan_round(shares: &[usize], next: usize, room: usize) -> Vec<(usize, usize)> {
    if room == 0 {
        return (next..shares.len()).map(|i| (i, 0)).collect();
    }
    let mut left = room;
    let mut round = Vec::new();
    for (i, &max) in shares.iter().enumerate().skip(next) {
        if left == 0 {
            break;
        }
        let share = max.min(left);
        round.push((i, share));
        left -= share;
    }
    round
}

/// KIP-74: the partition that gets one batch past the limits, with that batch's size:
/// the first one that has data but returned none because its first batch did not fit,
/// when no partition before it returned data.
fn first_starved(results: &[Option<Read>]) -> Option<(usize, usize)> {
    for (i, read) in results.iter().enumerate() {
        if let Some(Ok(read)) = read {
            if !read.records.is_empty() {
                return None;
            }
            if read.next_batch_bytes > 0 {
                return Some((i, read.next_batch_bytes));
            }
        }
    }
    None
}

/// One partition, at most `max_bytes`; for a follower's fetch, with the wait its read
/// parked in the partition.
async fn read_one(
    fetch: &Fetch,
    topic: &Topic,
    w: &Wanted,
    max_bytes: usize,
) -> (Read, Option<oneshot::Receiver<()>>) {
    let Some(replica_id) = fetch.replica_id else {
        return (read_for_consumer(fetch, topic, w, max_bytes).await, None);
    };
    let route = match topic.route.as_ref() {
        Ok(route) => route,
        Err(code) => return (Err(*code), None),
    };
    let Some(actor) = route.partition(w.index) else {
        return (Err(ResponseError::UnknownTopicOrPartition.code()), None);
    };
    // A follower's fetch: the partition's leader role answers (or refuses) it.
    let (on_append, appended) = oneshot::channel();
    let read = read_for_follower(
        actor,
        fetch.read_timeout,
        (w.offset, w.current_leader_epoch, max_bytes),
        replica_id,
        on_append,
    )
    .await;
    (read, Some(appended))
}

/// One partition for a consumer, at most `max_bytes`.
async fn read_for_consumer(fetch: &Fetch, topic: &Topic, w: &Wanted, max_bytes: usize) -> Read {
    let route = topic.route.as_ref().map_err(|code| *code)?;
    let actor = route
        .partition(w.index)
        .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    // Sent elsewhere: the offsets, no records.
    let max_bytes = if w.preferred_read_replica.is_some() {
        0
    } else {
        max_bytes
    };
    let rx = ask(actor, |reply| PartitionMsg::Read {
        offset: w.offset,
        max_bytes,
        min_one: false,
        read_committed: fetch.read_committed,
        // The consumer's leader epoch is checked first (KIP-320); the leader serves
        // consumers, and from v11 a follower too (KIP-392), up to its high watermark.
        check: LeaderCheck {
            current_leader_epoch: w.current_leader_epoch,
            leader_only: fetch.version < FOLLOWER_FETCH_VERSION,
        },
        reply,
    })
    .ok_or(ResponseError::NotLeaderOrFollower.code())?;
    // A partition whose disk stopped answering holds up only its own entry.
    match tokio::time::timeout(fetch.read_timeout, rx).await {
        // A client older than Fetch v10 cannot decode zstd: the partition's error, no records.
        Ok(Ok(Ok(read)))
            if fetch.version < 10 && any_batch_compressed_with(&read.records, ZSTD) =>
        {
            debug!(
                partition = w.index,
                version = fetch.version,
                "Withheld zstd from a Fetch below v10."
            );
            Err(ResponseError::UnsupportedCompressionType.code())
        }
        Ok(Ok(Ok(read))) => Ok(read),
        Ok(Ok(Err(err))) => Err(err.code()),
        Ok(Err(_)) => Err(ResponseError::NotLeaderOrFollower.code()),
        Err(_) => {
            debug!(partition = w.index, "A partition read passed its timeout.");
            Err(ResponseError::RequestTimedOut.code())
        }
    }
}

/// A consumer's fetch parks a waiter in every partition; true when one reported data
/// before the deadline.
async fn wait_for_data(fetch: &Fetch, deadline: Instant) -> bool {
    let mut waits = Vec::new();
    for t in &fetch.topics {
        let Ok(route) = &t.route else { continue };
        for w in &t.partitions {
            let Some(actor) = route.partition(w.index) else {
                continue;
            };
            let waiter = ask(actor, |notify| PartitionMsg::WaitForData {
                offset: w.offset,
                read_committed: fetch.read_committed,
                notify,
            });
            waits.extend(waiter);
        }
    }
    first_before(waits, deadline).await
}

/// True when one of `waits` resolved before the deadline. A waiter whose partition stopped
/// (or dropped it) resolves with an error: that too is worth a re-read.
async fn first_before<W: std::future::Future + Unpin>(waits: Vec<W>, deadline: Instant) -> bool {
    if waits.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    tokio::time::timeout_at(deadline, select_all(waits))
        .await
        .is_ok()
}

fn respond(topics: &[Topic], results: Vec<Vec<Read>>) -> FetchResponse {
    let responses = topics
        .iter()
        .zip(results)
        .map(|(topic, reads)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(reads)
                .map(|(w, read)| match read {
                    Ok(read) => {
                        let aborted = read
                            .aborted
                            .iter()
                            .map(|t| {
                                AbortedTransaction::default()
                                    .with_producer_id(kafka_protocol::messages::ProducerId(
                                        t.producer_id,
                                    ))
                                    .with_first_offset(t.first_offset)
                            })
                            .collect();
                        PartitionData::default()
                            .with_partition_index(w.index)
                            .with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(read.last_stable_offset)
                            .with_log_start_offset(read.log_start_offset)
                            .with_aborted_transactions(Some(aborted))
                            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(
                                w.preferred_read_replica.unwrap_or(-1),
                            ))
                            .with_records(Some(read.records))
                    }
                    Err(code) => error_entry(w.index, code),
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.name.clone())
                .with_topic_id(topic.id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

fn error_entry(index: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
        .with_records(Some(bytes::Bytes::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_share_the_room_in_request_order() {
        // Everything fits: one round.
        assert_eq!(
            plan_round(&[10, 10, 10], 0, 100),
            vec![(0, 10), (1, 10), (2, 10)]
        );
        // A huge partition limit takes all the room: the others wait for what it leaves.
        assert_eq!(plan_round(&[usize::MAX, 10], 0, 100), vec![(0, 100)]);
        assert_eq!(plan_round(&[usize::MAX, 10], 1, 60), vec![(1, 10)]);
        // The last share is cut to what is left.
        assert_eq!(plan_round(&[60, 60, 60], 0, 100), vec![(0, 60), (1, 40)]);
        // No room: the rest in one round, reading nothing.
        assert_eq!(plan_round(&[60, 60, 60], 1, 0), vec![(1, 0), (2, 0)]);
    }

    fn outcome(records: usize, next_batch_bytes: usize) -> Option<Read> {
        Some(Ok(ReadOutcome {
            records: bytes::Bytes::from(vec![0u8; records]),
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            aborted: Vec::new(),
            next_batch_bytes,
        }))
    }

    #[test]
    fn one_batch_past_the_limits_only_before_any_data() {
        let error = Some(Err(3));
        assert_eq!(
            first_starved(&[outcome(0, 0), error.clone(), outcome(0, 500), outcome(0, 9)]),
            Some((2, 500))
        );
        assert_eq!(first_starved(&[outcome(10, 500), outcome(0, 500)]), None);
        assert_eq!(first_starved(&[outcome(0, 0), outcome(0, 0)]), None);
    }
}
