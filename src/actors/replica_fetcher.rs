//! The replica fetcher: ONE actor per source broker (as Kafka's ReplicaFetcherThread),
//! copying every partition this broker follows from that leader over one TCP connection
//! with the Kafka protocol: Fetch with replica_id, one request for all its partitions.
//!
//! A round: partitions that took a new leader epoch first ask the leader where their
//! latest epoch ends (OffsetForLeaderEpoch, KIP-279) and truncate there; then one Fetch
//! from each partition's log end, long-polled (`replica.fetch.wait.max.ms`) so idle
//! partitions cost one parked request, not a poll storm. Fetched batches are appended as
//! follower to the local partition actors, which take the leader's high watermark. A
//! follower below the leader's log start (OFFSET_OUT_OF_RANGE) restarts at it.
//!
//! The round runs on a task so the actor's mailbox stays free for partition changes; the
//! connection travels with it and comes back. Every length read off the wire is bounded.
//!
//! Spawn with `ReplicaFetcherArgs`, then send `AddPartition` for each partition made a
//! follower of that broker (after its `BecomeFollower`) and `RemovePartition` when it stops.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::sockets::{Network, Stream};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::partition::{PartitionMsg, ReplicationMsg};
use crate::actors::call;
use crate::cluster::broker_client::{self, BrokerCallError as RoundError, CallSpec};

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 1;
/// Pause after a failed round (Kafka's replica.fetch.backoff.ms).
const BACKOFF: Duration = Duration::from_millis(1000);
/// Longest wait for one local partition actor.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Framing and headers a response may add to the records it carries.
const RESPONSE_OVERHEAD: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ReplicaFetcherArgs {
    /// This broker's id, sent as the Fetch's replica_id.
    pub broker_id: i32,
    /// The broker fetched from, and its inter-broker listener (host:port).
    pub source_broker: i32,
    pub address: String,
    /// Per partition (replica.fetch.max.bytes).
    pub max_bytes: usize,
    /// Per response (replica.fetch.response.max.bytes).
    pub response_max_bytes: usize,
    /// replica.fetch.wait.max.ms and replica.fetch.min.bytes.
    pub max_wait: Duration,
    pub min_bytes: i32,
    /// The sockets to reach the source broker with.
    pub network: Network,
}

/// Kafka's replica.fetch.response.max.bytes default.
pub const RESPONSE_MAX_BYTES: usize = 10 * 1024 * 1024;

impl ReplicaFetcherArgs {
    /// The fetcher of `broker_id` for the partitions led by `source_broker` at `address`,
    /// with the replica.fetch.* settings of `config`.
    pub fn from_config(
        config: &crate::config::Config,
        broker_id: i32,
        source_broker: i32,
        address: String,
    ) -> ReplicaFetcherArgs {
        ReplicaFetcherArgs {
            broker_id,
            source_broker,
            address,
            max_bytes: config.replica_fetch_max_bytes,
            response_max_bytes: RESPONSE_MAX_BYTES.max(config.replica_fetch_max_bytes),
            max_wait: Duration::from_millis(config.replica_fetch_wait_max_ms),
            min_bytes: config.replica_fetch_min_bytes,
            network: config.network.clone(),
        }
    }
}

pub enum ReplicaFetcherMsg {
    /// Follow `topic`/`partition` from the source broker at `leader_epoch`; the local
    /// partition was told `BecomeFollower` first. Truncates before its first fetch.
    AddPartition {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        local: ActorRef<PartitionMsg>,
    },
    RemovePartition {
        topic: String,
        partition: i32,
    },
    /// Rounds done so far (tests: an idle fetcher does not spin).
    Rounds {
        reply: ractor::RpcReplyPort<u64>,
    },
    /// Internal: start a round.
    Round,
    /// Internal: a round finished, with the connection when it is still good.
    RoundDone {
        connection: Option<Stream>,
        truncated: Vec<(String, i32, i32)>,
        /// Partitions the leader refused (not its leader, another epoch): paused a while.
        refused: Vec<(String, i32)>,
        failed: bool,
    },
}

impl crate::metrics::ActorKind for ReplicaFetcherMsg {
    const KIND: &'static str = "replica_fetcher";
}

#[derive(Debug, Clone)]
struct Followed {
    leader_epoch: i32,
    local: ActorRef<PartitionMsg>,
    /// The leader epoch changed since the last truncation check.
    needs_truncation: bool,
    /// Refused by the leader: not fetched again before this (replica.fetch.backoff.ms), so
    /// one refused partition does not turn the long poll into a busy loop.
    paused_until: Option<tokio::time::Instant>,
}

pub struct ReplicaFetcherState {
    args: ReplicaFetcherArgs,
    partitions: BTreeMap<(String, i32), Followed>,
    connection: Option<Stream>,
    round_in_flight: bool,
    rounds: u64,
}

pub struct ReplicaFetcher;

impl Actor for ReplicaFetcher {
    type Msg = ReplicaFetcherMsg;
    type State = ReplicaFetcherState;
    type Arguments = ReplicaFetcherArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ReplicaFetcherArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        info!(source_broker = args.source_broker, address = %args.address, "Replica fetcher started.");
        Ok(ReplicaFetcherState {
            args,
            partitions: BTreeMap::new(),
            connection: None,
            round_in_flight: false,
            rounds: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ReplicaFetcherMsg::AddPartition {
                topic,
                partition,
                leader_epoch,
                local,
            } => {
                let followed = Followed {
                    leader_epoch,
                    local,
                    needs_truncation: true,
                    paused_until: None,
                };
                state.partitions.insert((topic, partition), followed);
                state.start_round(&myself);
            }
            ReplicaFetcherMsg::RemovePartition { topic, partition } => {
                state.partitions.remove(&(topic, partition));
            }
            ReplicaFetcherMsg::Rounds { reply } => {
                let _ = reply.send(state.rounds);
            }
            ReplicaFetcherMsg::Round => state.start_round(&myself),
            ReplicaFetcherMsg::RoundDone {
                connection,
                truncated,
                refused,
                failed,
            } => {
                let until = tokio::time::Instant::now() + BACKOFF;
                for key in refused {
                    if let Some(f) = state.partitions.get_mut(&key) {
                        f.paused_until = Some(until);
                    }
                }
                state.round_in_flight = false;
                state.rounds += 1;
                state.connection = connection;
                for (topic, partition, epoch) in truncated {
                    if let Some(f) = state.partitions.get_mut(&(topic, partition)) {
                        // Only if no newer epoch came meanwhile.
                        if f.leader_epoch == epoch {
                            f.needs_truncation = false;
                        }
                    }
                }
                if failed {
                    myself.send_after(BACKOFF, || ReplicaFetcherMsg::Round);
                } else {
                    state.start_round(&myself);
                }
            }
        }
        Ok(())
    }
}

impl ReplicaFetcherState {
    fn start_round(&mut self, myself: &ActorRef<ReplicaFetcherMsg>) {
        if self.round_in_flight || self.partitions.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let ready: Vec<_> = self
            .partitions
            .iter()
            .filter(|(_, f)| f.paused_until.is_none_or(|t| t <= now))
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect();
        if ready.is_empty() {
            myself.send_after(BACKOFF, || ReplicaFetcherMsg::Round);
            return;
        }
        self.round_in_flight = true;
        let round = Round {
            args: self.args.clone(),
            partitions: ready,
            correlation: 0,
            refused: Vec::new(),
        };
        let connection = self.connection.take();
        let myself = myself.clone();
        tokio::spawn(async move {
            let mut round = round;
            let (connection, truncated, failed) = match round.run(connection).await {
                Ok((connection, truncated)) => (Some(connection), truncated, false),
                Err(err) => {
                    warn!(source_broker = round.args.source_broker, %err,
                        "A replica fetch round failed; retrying after a pause.");
                    (None, Vec::new(), true)
                }
            };
            let _ = myself.send_message(ReplicaFetcherMsg::RoundDone {
                connection,
                truncated,
                refused: round.refused,
                failed,
            });
        });
    }
}

struct Round {
    args: ReplicaFetcherArgs,
    partitions: Vec<((String, i32), Followed)>,
    correlation: i32,
    refused: Vec<(String, i32)>,
}

impl Round {
    /// Truncations first, then one fetch; returns the connection and the partitions whose
    /// truncation is done, with the epoch it was done for.
    async fn run(
        &mut self,
        connection: Option<Stream>,
    ) -> Result<(Stream, Vec<(String, i32, i32)>), RoundError> {
        let mut stream = match connection {
            Some(stream) => stream,
            None => {
                broker_client::connect(&self.args.network, &self.args.address, LOCAL_TIMEOUT)
                    .await?
            }
        };
        let truncated = self.truncate(&mut stream).await?;
        // A partition whose truncation is not done yet must not take batches after
        // records the leader may not have.
        self.partitions.retain(|((topic, partition), f)| {
            !f.needs_truncation
                || truncated
                    .iter()
                    .any(|(t, p, _)| t == topic && p == partition)
        });
        if self.partitions.is_empty() {
            return Err(RoundError::Protocol(
                "no partition is ready to fetch yet".into(),
            ));
        }
        self.fetch(&mut stream).await?;
        Ok((stream, truncated))
    }

    /// KIP-279 for every partition with a new leader epoch.
    async fn truncate(
        &mut self,
        stream: &mut Stream,
    ) -> Result<Vec<(String, i32, i32)>, RoundError> {
        let mut asked = Vec::new();
        for ((topic, partition), f) in self.partitions.iter().filter(|(_, f)| f.needs_truncation) {
            let view = local_call(&f.local, |reply| ReplicationMsg::DescribeRole { reply }).await?;
            asked.push((topic.clone(), *partition, f.clone(), view));
        }
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let topics = asked
            .iter()
            .map(|(topic, partition, f, view)| {
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(*partition)
                        .with_current_leader_epoch(f.leader_epoch)
                        .with_leader_epoch(view.latest_epoch)])
            })
            .collect();
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.args.broker_id))
            .with_topics(topics);
        let resp = self
            .call(stream, OFFSET_FOR_LEADER_EPOCH_VERSION, &req, LOCAL_TIMEOUT)
            .await?;
        let mut done = Vec::new();
        for (topic, partition, f, view) in asked {
            let answer = resp
                .topics
                .iter()
                .filter(|t| t.topic.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition == partition);
            let Some(answer) = answer.filter(|a| a.error_code == 0) else {
                debug!(%topic, partition, "The leader could not say where our epoch ends yet.");
                continue;
            };
            // Without epochs of its own the follower keeps what its high watermark covers.
            let target = if view.latest_epoch < 0 {
                view.high_watermark
            } else if answer.end_offset < 0 {
                view.log_end_offset
            } else {
                answer.end_offset
            };
            if target < view.log_end_offset {
                info!(%topic, partition, from = view.log_end_offset, to = target,
                    "Truncating a follower to where the leader's log agrees (KIP-279).");
                local_call(&f.local, |reply| ReplicationMsg::TruncateTo {
                    offset: target,
                    fully: false,
                    reply,
                })
                .await?
                .map_err(|e| RoundError::Protocol(e.to_string()))?;
            }
            done.push((topic, partition, f.leader_epoch));
        }
        Ok(done)
    }

    /// One long-polled Fetch for every partition not waiting for a truncation.
    async fn fetch(&mut self, stream: &mut Stream) -> Result<(), RoundError> {
        let mut wanted = Vec::new();
        for ((topic, partition), f) in &self.partitions {
            let view = local_call(&f.local, |reply| ReplicationMsg::DescribeRole { reply }).await?;
            wanted.push((topic.clone(), *partition, f.clone(), view));
        }
        let max_bytes = self.args.max_bytes.min(i32::MAX as usize) as i32;
        let topics = wanted
            .iter()
            .map(|(topic, partition, f, view)| {
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(*partition)
                        .with_current_leader_epoch(f.leader_epoch)
                        .with_fetch_offset(view.log_end_offset)
                        .with_log_start_offset(view.log_start_offset)
                        .with_partition_max_bytes(max_bytes)])
            })
            .collect();
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(self.args.broker_id))
            .with_max_wait_ms(self.args.max_wait.as_millis().min(i32::MAX as u128) as i32)
            .with_min_bytes(self.args.min_bytes)
            .with_max_bytes(self.args.response_max_bytes.min(i32::MAX as usize) as i32)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        let wait = self.args.max_wait + LOCAL_TIMEOUT;
        let resp = self.call(stream, FETCH_VERSION, &req, wait).await?;
        for (topic, partition, f, view) in wanted {
            let answer = resp
                .responses
                .iter()
                .filter(|t| t.topic.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition);
            let Some(answer) = answer else { continue };
            match answer.error_code {
                0 => {
                    let records = answer.records.clone().unwrap_or_default();
                    let appended = local_call(&f.local, |reply| ReplicationMsg::AppendAsFollower {
                        records,
                        leader_epoch: f.leader_epoch,
                        leader_high_watermark: answer.high_watermark,
                        reply,
                    })
                    .await?;
                    if let Err(err) = appended {
                        warn!(%topic, partition, %err, "A follower could not take the leader's batches.");
                    }
                }
                code if code == ResponseError::OffsetOutOfRange.code() => {
                    self.restart_at_log_start(stream, &topic, partition, &f, view.log_end_offset)
                        .await?;
                }
                code => {
                    debug!(%topic, partition, code, "The leader refused a follower fetch; pausing it.");
                    self.refused.push((topic, partition));
                }
            }
        }
        Ok(())
    }

    /// A follower below the leader's log start starts over there (Kafka's
    /// handleOutOfRangeError with the leader's earliest offset).
    async fn restart_at_log_start(
        &mut self,
        stream: &mut Stream,
        topic: &str,
        partition: i32,
        f: &Followed,
        log_end_offset: i64,
    ) -> Result<(), RoundError> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(self.args.broker_id))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-2)])]);
        let resp = self
            .call(stream, LIST_OFFSETS_VERSION, &req, LOCAL_TIMEOUT)
            .await?;
        let start = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition && p.error_code == 0)
            .map(|p| p.offset);
        let Some(start) = start else {
            return Ok(());
        };
        if start > log_end_offset {
            info!(%topic, partition, start, "A follower below the leader's log start restarts there.");
            local_call(&f.local, |reply| ReplicationMsg::TruncateTo {
                offset: start,
                fully: true,
                reply,
            })
            .await?
            .map_err(|e| RoundError::Protocol(e.to_string()))?;
        }
        Ok(())
    }

    /// One request and its response on the connection, within `wait`.
    async fn call<R: Request>(
        &mut self,
        stream: &mut Stream,
        version: i16,
        req: &R,
        wait: Duration,
    ) -> Result<R::Response, RoundError> {
        self.correlation = self.correlation.wrapping_add(1);
        let spec = CallSpec {
            version,
            correlation: self.correlation,
            client_id: "replica-fetcher",
            wait,
            response_limit: self
                .args
                .response_max_bytes
                .saturating_add(RESPONSE_OVERHEAD),
        };
        broker_client::call(stream, spec, req).await
    }
}

async fn local_call<T: Send + 'static>(
    local: &ActorRef<PartitionMsg>,
    build: impl FnOnce(ractor::RpcReplyPort<T>) -> ReplicationMsg,
) -> Result<T, RoundError> {
    call(
        local,
        |reply| PartitionMsg::Replication(build(reply)),
        LOCAL_TIMEOUT,
    )
    .await
    .map_err(|e| RoundError::Protocol(format!("the local partition did not answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetcher_takes_kafkas_replica_fetch_defaults() {
        let config = crate::config::Config::default();
        let args = ReplicaFetcherArgs::from_config(&config, 2, 1, "b1:9093".into());
        assert_eq!(args.max_bytes, 1_048_576);
        assert_eq!(args.max_wait, Duration::from_millis(500));
        assert_eq!(args.min_bytes, 1);
        assert_eq!(args.response_max_bytes, 10_485_760);
        assert_eq!(config.replica_lag_time_max_ms, 30_000);
    }
}
