//! Produce v3-v13 (acks 0, 1 and all; v13 names topics by id, KIP-516). Appends are sent to the partition actors in request
//! order before anything is awaited, so batches from one connection reach each partition
//! in the order the client sent them; the replies of all partitions are then joined.
//! An acks=0 request gets no response, as in Kafka.
//!
//! A batch with refused records (a keyless record on a compacted topic, a timestamp outside
//! KIP-937's window) is answered, from v8, with each refused record's index and message
//! (KIP-467's `record_errors`) and `error_message`, so a client fails only those records.
//!
//! Each append takes a share of its partition's queue budget (`max_partition_queued_bytes`)
//! before it is sent; a partition with that much queued answers REQUEST_TIMED_OUT at once
//! (retriable: the client backs off and retries, as after a Kafka request timeout; the
//! quota error THROTTLING_QUOTA_EXCEEDED is for admin requests only). `timeout_ms` is one
//! deadline for the whole request, and an append the partition takes after it is not
//! written (its client was told it failed). One taken before the deadline but answered
//! after it (an acks=all fsync) is written and reported REQUEST_TIMED_OUT, as in Kafka:
//! a timed-out produce's outcome is unknown, and the idempotent producer's retry dedupes.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::actors::metadata::MetadataMsg;
use crate::actors::partition::{AppendOutcome, PartitionMsg};
use crate::error::PartitionError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::Prepared;
use crate::protocol::recompression_slots::recompressed;
use crate::protocol::BrokerContext;
use crate::storage::batch::{any_batch_compressed_with, ZSTD};
use crate::storage::recompression::any_batch_needs_recompression;
use crate::storage::record_validator::RecordErrors;
use crate::topic_config::validate_topic_name;

type AppendReply = crate::actors::Reply<Result<AppendOutcome, PartitionError>>;

enum Pending {
    Waiting(i32, AppendReply),
    Failed(i32, i16),
    /// Cluster mode: another broker leads (index, leader, leader epoch).
    NotLeader(i32, i32, i32),
}

/// Produce v8 added `record_errors` and `error_message` (KIP-467).
const RECORD_ERRORS_VERSION: i16 = 8;

/// The most record errors one Produce response lists over all its partitions, beyond the
/// per-batch cap (`MAX_RECORD_ERRORS`): a request naming many partitions cannot make the
/// response grow past this many messages (each under 350 bytes, the topic name in it).
const MAX_RESPONSE_RECORD_ERRORS: usize = 10_000;

/// `listener`: the one the request came in on (KIP-951 endpoints are that listener's).
pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: ProduceRequest,
    listener: &str,
) -> Prepared {
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
        warn!(
            acks,
            "Refusing a Produce with invalid acks: INVALID_REQUIRED_ACKS."
        );
        return refuse_all(req, ResponseError::InvalidRequiredAcks.code());
    }
    if ctx.config.auto_create_topics {
        let routes = ctx.routes();
        let missing: BTreeSet<String> = req
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| routes.topic(n).is_none() && validate_topic_name(n).is_ok())
            .collect();
        if !missing.is_empty() {
            if let Some(rx) = ask(&ctx.metadata, |reply| MetadataMsg::EnsureTopics {
                names: missing.into_iter().collect(),
                reply,
            }) {
                let _ = rx.await;
            }
        }
    }
    // One deadline for the whole request, from when its appends are sent; acks=0 has none (nobody
    // waits for an answer, and Kafka applies timeout_ms to waiting only).
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let deadline = (acks != 0).then(|| Instant::now() + timeout);
    let routes = ctx.routes();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        // v13 (KIP-516) names topics by id only.
        let (name, route, unknown) = if version >= 13 {
            let route = routes.topic_by_id(&topic.topic_id);
            let name = route.map(|r| r.name.clone()).unwrap_or_default();
            (name, route, ResponseError::UnknownTopicId.code())
        } else {
            let name = topic.name.0.to_string();
            let unknown = if validate_topic_name(&name).is_err() {
                ResponseError::InvalidTopicException.code()
            } else {
                ResponseError::UnknownTopicOrPartition.code()
            };
            (name.clone(), routes.topic(&name), unknown)
        };
        let compression = route.and_then(|r| r.produce.compression);
        let mut pending = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let Some(actor) = route.and_then(|r| r.partition(index)) else {
                pending.push(Pending::Failed(index, unknown));
                continue;
            };
            let elsewhere = routes.cluster.as_ref().zip(route);
            if let Some(leader) = elsewhere.and_then(|(c, r)| c.not_leader(r, index)) {
                let epoch = route
                    .and_then(|r| r.placement(index))
                    .map_or(-1, |p| p.leader_epoch);
                debug!(topic = %name, partition = index, leader, "Produce to a partition led elsewhere: NOT_LEADER_OR_FOLLOWER.");
                pending.push(Pending::NotLeader(index, leader, epoch));
                continue;
            }
            // min.insync.replicas: a single node is the only in-sync replica, so acks=all
            // needs the setting at 1; above it Kafka answers NOT_ENOUGH_REPLICAS and appends
            // nothing. In a cluster the partition's leader role checks its ISR itself.
            let too_few_replicas = routes.cluster.is_none()
                && acks == -1
                && route.is_some_and(|r| r.produce.min_insync_replicas > 1);
            let Some(records) = data.records else {
                pending.push(Pending::Failed(index, ResponseError::InvalidRecord.code()));
                continue;
            };
            if too_few_replicas {
                debug!(topic = %name, partition = index, "acks=all with min.insync.replicas above 1: NOT_ENOUGH_REPLICAS.");
                pending.push(Pending::Failed(
                    index,
                    ResponseError::NotEnoughReplicas.code(),
                ));
                continue;
            }
            // zstd needs Produce v7 (Kafka 2.1+): older clients get an error, not zstd.
            if version < 7 && any_batch_compressed_with(&records, ZSTD) {
                debug!(topic = %name, partition = index, version, "Refused zstd below Produce v7.");
                pending.push(Pending::Failed(
                    index,
                    ResponseError::UnsupportedCompressionType.code(),
                ));
                continue;
            }
            let records = match compression {
                Some((codec, max)) if any_batch_needs_recompression(&records, codec) => {
                    match recompressed(records, codec, max, deadline).await {
                        Ok(records) => records,
                        Err(code) => {
                            pending.push(Pending::Failed(index, code));
                            continue;
                        }
                    }
                }
                _ => records,
            };
            let queue = route.and_then(|r| r.queue(index));
            let Some(admission) = queue.and_then(|q| q.try_admit(records.len(), deadline)) else {
                metrics::counter!(crate::metrics::PARTITION_QUEUE_FULL).increment(1);
                debug!(topic = %name, partition = index, "Partition queue full; answering REQUEST_TIMED_OUT.");
                pending.push(Pending::Failed(
                    index,
                    ResponseError::RequestTimedOut.code(),
                ));
                continue;
            };
            match ask(actor, |reply| PartitionMsg::QueuedAppend {
                records,
                acks,
                reply,
                admission,
            }) {
                Some(rx) => pending.push(Pending::Waiting(index, rx)),
                None => pending.push(Pending::Failed(
                    index,
                    ResponseError::NotLeaderOrFollower.code(),
                )),
            }
        }
        topics.push((topic.name, topic.topic_id, pending));
    }
    let deadline = deadline.unwrap_or_else(|| Instant::now() + timeout);
    let cluster = routes.cluster.clone();
    let listener = listener.to_string();
    let response = Box::pin(async move {
        let mut leaders = BTreeSet::new();
        let mut responses = Vec::with_capacity(topics.len());
        let mut record_error_budget = if version >= RECORD_ERRORS_VERSION {
            MAX_RESPONSE_RECORD_ERRORS
        } else {
            0
        };
        for (name, topic_id, pending) in topics {
            let mut partitions = Vec::with_capacity(pending.len());
            for p in pending {
                partitions.push(match p {
                    Pending::Failed(index, code) => error_entry(index, code),
                    // KIP-951: the current leader, so the client need not ask Metadata.
                    Pending::NotLeader(index, leader, epoch) => {
                        leaders.insert(leader);
                        let current = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(epoch);
                        error_entry(index, ResponseError::NotLeaderOrFollower.code())
                            .with_current_leader(current)
                    }
                    Pending::Waiting(index, rx) => {
                        match tokio::time::timeout_at(deadline, rx).await {
                            Ok(Ok(Ok(outcome))) => PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(outcome.base_offset)
                                .with_log_append_time_ms(outcome.log_append_time_ms)
                                .with_log_start_offset(outcome.log_start_offset),
                            Ok(Ok(Err(err))) => match &err {
                                PartitionError::InvalidRecords(errors)
                                    if version >= RECORD_ERRORS_VERSION =>
                                {
                                    record_errors_entry(
                                        index,
                                        err.code(),
                                        errors,
                                        &mut record_error_budget,
                                    )
                                }
                                _ => error_entry(index, err.code()),
                            },
                            Ok(Err(_)) => {
                                error_entry(index, ResponseError::NotLeaderOrFollower.code())
                            }
                            Err(_) => error_entry(index, ResponseError::RequestTimedOut.code()),
                        }
                    }
                });
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(topic_id)
                    .with_partition_responses(partitions),
            );
        }
        let endpoints = leaders
            .into_iter()
            .filter_map(|id| {
                let broker = cluster.as_ref()?.endpoint(id)?;
                let (host, port) = broker.endpoint_for(&listener);
                Some(
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port)
                        .with_rack(broker.rack.clone().map(StrBytes::from_string)),
                )
            })
            .collect();
        ResponseKind::Produce(
            ProduceResponse::default()
                .with_responses(responses)
                .with_node_endpoints(endpoints),
        )
    });
    Prepared {
        response,
        expects_response: acks != 0,
    }
}

/// Every partition of `req` answered with `code`, nothing appended or created (Kafka's
/// answer to acks outside -1, 0 and 1).
fn refuse_all(req: ProduceRequest, code: i16) -> Prepared {
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| error_entry(p.index, code))
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    let response = ProduceResponse::default().with_responses(responses);
    Prepared {
        response: Box::pin(async move { ResponseKind::Produce(response) }),
        expects_response: true,
    }
}

/// A partition whose batch had refused records: their indexes and messages (KIP-467), up
/// to what is left of the response's `budget`, and the summary as `error_message`.
fn record_errors_entry(
    index: i32,
    code: i16,
    errors: &RecordErrors,
    budget: &mut usize,
) -> PartitionProduceResponse {
    let listed: Vec<BatchIndexAndErrorMessage> = errors
        .listed
        .iter()
        .take(*budget)
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(errors.message(e))))
        })
        .collect();
    *budget -= listed.len();
    error_entry(index, code)
        .with_record_errors(listed)
        .with_error_message(Some(StrBytes::from_string(errors.summary())))
}

fn error_entry(index: i32, code: i16) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}
