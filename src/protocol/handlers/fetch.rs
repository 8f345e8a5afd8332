//! Fetch v4-v16, with topic ids from v13. A long poll: the partitions are read at once; if
//! fewer than `min_bytes` came back, the request parks a waiter in each partition actor and
//! sleeps until one of them reports new data past its offset or `max_wait_ms` runs out, then
//! reads again. No polling loop: appends wake the waiters.
//!
//! Limits: each partition returns at most `partition_max_bytes`, the whole response at most
//! `max_bytes`, except that the first partition with data always gets at least one whole
//! batch (KIP-74), so a consumer never stalls on a batch larger than its limits.
//! isolation_level=1 (read_committed) reads up to the last stable offset and answers the
//! aborted transactions in the returned range, so clients drop aborted records.
//! Fetch sessions (KIP-227) are declined with session id 0, so clients send full fetches.

use std::time::Duration;

use bytes::Bytes;
use futures::future::{join_all, select_all};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use crate::actors::partition::{PartitionMsg, ReadOutcome};
use crate::actors::routing::TopicRoute;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::storage::batch::LOG_OVERHEAD;

use super::topic_name;
use std::sync::Arc;

/// One requested partition, resolved to its owner.
struct Wanted {
    index: i32,
    offset: i64,
    max_bytes: usize,
    route: Result<Arc<TopicRoute>, i16>,
}

struct Fetch {
    topics: Vec<Topic>,
    read_committed: bool,
}

struct Topic {
    name: TopicName,
    id: Uuid,
    partitions: Vec<Wanted>,
}

pub fn prepare(ctx: &BrokerContext, version: i16, req: FetchRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let topics: Vec<Topic> = req
        .topics
        .into_iter()
        .map(|t| {
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
            Topic {
                name,
                id: t.topic_id,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| Wanted {
                        index: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        route: route.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let fetch = Fetch {
        topics,
        read_committed: req.isolation_level == 1,
    };
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    Box::pin(async move {
        let deadline = Instant::now() + max_wait;
        loop {
            let results = read_all(&fetch).await;
            let total: usize = results
                .iter()
                .flatten()
                .map(|r| match r {
                    Ok(read) => read.records.len(),
                    Err(_) => 0,
                })
                .sum();
            let any_error = results.iter().flatten().any(|r| r.is_err());
            if total >= min_bytes || any_error || Instant::now() >= deadline {
                return ResponseKind::Fetch(respond(&fetch.topics, results, max_bytes));
            }
            if !wait_for_data(&fetch, deadline).await {
                let results = read_all(&fetch).await;
                return ResponseKind::Fetch(respond(&fetch.topics, results, max_bytes));
            }
        }
    })
}

/// Reads every requested partition at once (fan out, then join).
async fn read_all(fetch: &Fetch) -> Vec<Vec<Result<ReadOutcome, i16>>> {
    let read_committed = fetch.read_committed;
    let mut out = Vec::with_capacity(fetch.topics.len());
    for topic in &fetch.topics {
        let reads = topic.partitions.iter().map(|w| async move {
            let route = w.route.as_ref().map_err(|code| *code)?;
            let actor = route
                .partition(w.index)
                .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
            let rx = ask(actor, |reply| PartitionMsg::Read {
                offset: w.offset,
                max_bytes: w.max_bytes,
                min_one: true,
                read_committed,
                reply,
            })
            .ok_or(ResponseError::NotLeaderOrFollower.code())?;
            match rx.await {
                Ok(Ok(read)) => Ok(read),
                Ok(Err(err)) => Err(err.code()),
                Err(_) => Err(ResponseError::NotLeaderOrFollower.code()),
            }
        });
        out.push(join_all(reads).await);
    }
    out
}

/// Parks a waiter in every partition; true when one reported data before the deadline.
async fn wait_for_data(fetch: &Fetch, deadline: Instant) -> bool {
    let mut waits = Vec::new();
    for w in fetch.topics.iter().flat_map(|t| t.partitions.iter()) {
        let Ok(route) = &w.route else { continue };
        let Some(actor) = route.partition(w.index) else {
            continue;
        };
        if let Some(rx) = ask(actor, |notify| PartitionMsg::WaitForData {
            offset: w.offset,
            read_committed: fetch.read_committed,
            notify,
        }) {
            waits.push(rx);
        }
    }
    if waits.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    // A waiter whose partition stopped resolves with an error: that too is worth a re-read.
    tokio::time::timeout_at(deadline, select_all(waits))
        .await
        .is_ok()
}

fn respond(
    topics: &[Topic],
    results: Vec<Vec<Result<ReadOutcome, i16>>>,
    max_bytes: usize,
) -> FetchResponse {
    let mut used = 0usize;
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
                        let records = fit(read.records, max_bytes.saturating_sub(used), used == 0);
                        used += records.len();
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
                            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                            .with_records(Some(records))
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
        .with_records(Some(Bytes::new()))
}

/// Keeps the whole batches of `records` that fit in `room`; when `first` is true and not
/// even one fits, keeps the first batch anyway (KIP-74).
fn fit(records: Bytes, room: usize, first: bool) -> Bytes {
    if records.len() <= room {
        return records;
    }
    let mut end = 0usize;
    while end + LOG_OVERHEAD <= records.len() {
        let length = i32::from_be_bytes([
            records[end + 8],
            records[end + 9],
            records[end + 10],
            records[end + 11],
        ]);
        let next = end + LOG_OVERHEAD + length.max(0) as usize;
        if next > records.len() || (next > room && !(first && end == 0)) {
            break;
        }
        end = next;
        if end > room {
            break;
        }
    }
    records.slice(..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[8..12].copy_from_slice(&((len - LOG_OVERHEAD) as i32).to_be_bytes());
        b
    }

    #[test]
    fn fit_keeps_whole_batches_and_at_least_one_first() {
        let mut all = batch(100);
        all.extend(batch(100));
        all.extend(batch(100));
        let records = Bytes::from(all);
        assert_eq!(fit(records.clone(), 1000, false).len(), 300);
        assert_eq!(fit(records.clone(), 250, false).len(), 200);
        assert_eq!(fit(records.clone(), 50, false).len(), 0);
        assert_eq!(fit(records.clone(), 50, true).len(), 100);
        assert_eq!(fit(records, 0, true).len(), 100);
    }
}
