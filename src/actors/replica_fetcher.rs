//! The replica fetcher: ONE actor per source broker (as Kafka's ReplicaFetcherThread),
//! copying every partition this broker follows from that leader over one TCP connection
//! with the Kafka protocol: Fetch with replica_id, one request for all its partitions.
//!
//! A round: partitions that took a new leader epoch first ask the leader where their
//! latest epoch ends (OffsetForLeaderEpoch, KIP-279) and truncate there; then one Fetch
//! from each partition's log end, long-polled (`replica.fetch.wait.max.ms`) so idle
//! partitions cost one parked request, not a poll storm. The Fetch is in an incremental
//! fetch session (KIP-227, `replica_fetcher_session`): after the first, it lists only the
//! partitions whose fetch offset or epoch changed, and the leader answers only those with
//! records or a new high watermark. Those are appended as follower to the local partition
//! actors, which take the leader's high watermark; the fetcher keeps each partition's log
//! offsets from their answers, so an idle partition costs it no message at all. A
//! follower below the leader's log start (OFFSET_OUT_OF_RANGE) restarts at it.
//!
//! The round runs on a task so the actor's mailbox stays free for partition changes; the
//! connection and the session travel with it and come back. Every length read off the
//! wire is bounded.
//!
//! Spawn with `ReplicaFetcherArgs`, then send `AddPartition` for each partition made a
//! follower of that broker (after its `BecomeFollower`) and `RemovePartition` when it stops.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::fetch_response::PartitionData;
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
pub use super::replica_fetcher_args::{ReplicaFetcherArgs, RESPONSE_MAX_BYTES};
use super::replica_fetcher_session::{FetchSessionHandler, PartitionFetch};
use crate::actors::call;
use crate::cluster::broker_client::{
    self, BrokerCallError as RoundError, BrokerConnection, CallSpec,
};
use crate::security::transport_layer::TransportLayer;

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 1;
/// Pause after a failed round (Kafka's replica.fetch.backoff.ms).
const BACKOFF: Duration = Duration::from_millis(1000);
/// Longest wait for one local partition actor.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Framing and headers a response may add to the records it carries.
const RESPONSE_OVERHEAD: usize = 1024 * 1024;

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
    /// The leader's fetch session id as of the last round (0: none; tests).
    SessionId {
        reply: ractor::RpcReplyPort<i32>,
    },
    /// Internal: start a round.
    Round,
    /// Internal: a round finished, with the connection when it is still good.
    RoundDone(Box<RoundDone>),
}

/// What a round hands back to the fetcher.
pub struct RoundDone {
    connection: Option<BrokerConnection>,
    session: FetchSessionHandler,
    /// The round's partitions as it left them (truncation done, offsets learnt).
    partitions: BTreeMap<(String, i32), Followed>,
    /// Partitions the leader refused (not its leader, another epoch): paused a while.
    refused: Vec<(String, i32)>,
    /// Why the round failed, if it did.
    failed: Option<RoundError>,
}

impl crate::metrics::ActorKind for ReplicaFetcherMsg {
    const KIND: &'static str = "replica_fetcher";
}

#[derive(Debug, Clone)]
struct Followed {
    leader_epoch: i32,
    local: ActorRef<PartitionMsg>,
    /// Which `AddPartition` this is: a round's news of an older one is dropped.
    generation: u64,
    /// The leader epoch changed since the last truncation check.
    needs_truncation: bool,
    /// Refused by the leader: not fetched again before this (replica.fetch.backoff.ms), so
    /// one refused partition does not turn the long poll into a busy loop.
    paused_until: Option<tokio::time::Instant>,
    /// The local log's (end, start) as the partition last said; None: ask it first. The
    /// fetcher is the only writer of a follower's log, so this stays true between rounds.
    offsets: Option<(i64, i64)>,
    /// The local high watermark as the partition last said: an answer with no records
    /// and no newer high watermark is not passed on.
    high_watermark: i64,
}

pub struct ReplicaFetcherState {
    args: ReplicaFetcherArgs,
    partitions: BTreeMap<(String, i32), Followed>,
    connection: Option<BrokerConnection>,
    /// The incremental fetch session with the leader; lent to the round in flight.
    session: Option<FetchSessionHandler>,
    round_in_flight: bool,
    rounds: u64,
    generations: u64,
    /// The session id as the last round left it.
    session_id: i32,
    /// Rounds fail since the last one that did not: the first failure is a warning, the
    /// rest (a wrong password, a leader away) only debug lines until a round succeeds.
    failing: bool,
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
            session: Some(FetchSessionHandler::default()),
            round_in_flight: false,
            rounds: 0,
            generations: 0,
            session_id: 0,
            failing: false,
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
                state.generations += 1;
                let followed = Followed {
                    leader_epoch,
                    local,
                    generation: state.generations,
                    needs_truncation: true,
                    paused_until: None,
                    offsets: None,
                    high_watermark: -1,
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
            ReplicaFetcherMsg::SessionId { reply } => {
                let _ = reply.send(state.session_id);
            }
            ReplicaFetcherMsg::Round => state.start_round(&myself),
            ReplicaFetcherMsg::RoundDone(done) => {
                let RoundDone {
                    connection,
                    session,
                    partitions,
                    refused,
                    failed,
                } = *done;
                let until = tokio::time::Instant::now() + BACKOFF;
                for key in refused {
                    if let Some(f) = state.partitions.get_mut(&key) {
                        f.paused_until = Some(until);
                    }
                }
                state.round_in_flight = false;
                state.rounds += 1;
                state.connection = connection;
                state.session_id = session.session_id();
                state.session = Some(session);
                for (key, round) in partitions {
                    // Only if the partition was not added again meanwhile.
                    if let Some(f) = state.partitions.get_mut(&key) {
                        if f.generation == round.generation {
                            f.needs_truncation = round.needs_truncation;
                            f.offsets = round.offsets;
                            f.high_watermark = round.high_watermark;
                        }
                    }
                }
                let source_broker = state.args.source_broker;
                match failed {
                    Some(err) => {
                        if !std::mem::replace(&mut state.failing, true) {
                            warn!(source_broker, %err,
                                "Replica fetches from a broker fail; retrying after a pause, warning again only once they have worked.");
                        } else {
                            debug!(source_broker, %err, "A replica fetch round failed again.");
                        }
                        myself.send_after(BACKOFF, || ReplicaFetcherMsg::Round);
                    }
                    None => {
                        if std::mem::take(&mut state.failing) {
                            info!(source_broker, "Replica fetches from a broker work again.");
                        }
                        state.start_round(&myself);
                    }
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
        let ready: BTreeMap<_, _> = self
            .partitions
            .iter()
            .filter(|(_, f)| f.paused_until.is_none_or(|t| t <= now))
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect();
        if ready.is_empty() {
            myself.send_after(BACKOFF, || ReplicaFetcherMsg::Round);
            return;
        }
        let Some(session) = self.session.take() else {
            return;
        };
        self.round_in_flight = true;
        let round = Round {
            args: self.args.clone(),
            partitions: ready,
            session,
            correlation: 0,
            refused: Vec::new(),
        };
        let connection = self.connection.take();
        let myself = myself.clone();
        tokio::spawn(async move {
            let mut round = round;
            let (connection, failed) = match round.run(connection).await {
                Ok(connection) => (Some(connection), None),
                Err(err) => (None, Some(err)),
            };
            let done = RoundDone {
                connection,
                session: round.session,
                partitions: round.partitions,
                refused: round.refused,
                failed,
            };
            let _ = myself.send_message(ReplicaFetcherMsg::RoundDone(Box::new(done)));
        });
    }
}

struct Round {
    args: ReplicaFetcherArgs,
    partitions: BTreeMap<(String, i32), Followed>,
    session: FetchSessionHandler,
    correlation: i32,
    refused: Vec<(String, i32)>,
}

impl Round {
    /// Truncations first, then one fetch; returns the connection.
    async fn run(
        &mut self,
        connection: Option<BrokerConnection>,
    ) -> Result<BrokerConnection, RoundError> {
        let connector = &self.args.connector;
        let wait = self.args.socket_timeout;
        let mut connection = match connection {
            Some(connection) => connection,
            None => connector.connect(&self.args.address, wait).await?,
        };
        connector.keep_logged_in(&mut connection, wait).await?;
        let stream = &mut connection.stream;
        self.truncate(stream).await?;
        self.describe_unknown().await?;
        if let Err(err) = self.fetch(stream).await {
            // The leader may or may not have taken the fetch: start the session over.
            self.session.reset();
            return Err(err);
        }
        Ok(connection)
    }

    /// KIP-279 for every partition with a new leader epoch.
    async fn truncate(&mut self, stream: &mut TransportLayer) -> Result<(), RoundError> {
        let mut asked = Vec::new();
        for ((topic, partition), f) in self.partitions.iter().filter(|(_, f)| f.needs_truncation) {
            let view = local_call(&f.local, |reply| ReplicationMsg::DescribeRole { reply }).await?;
            asked.push((topic.clone(), *partition, f.clone(), view));
        }
        if asked.is_empty() {
            return Ok(());
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
            .call(stream, OFFSET_FOR_LEADER_EPOCH_VERSION, &req)
            .await?;
        let answers: HashMap<(&str, i32), _> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| ((t.topic.0.as_str(), p.partition), p))
            })
            .collect();
        for (topic, partition, f, view) in asked {
            let answer = answers.get(&(topic.as_str(), partition));
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
            let mut offsets = (view.log_end_offset, view.log_start_offset);
            if target < view.log_end_offset {
                info!(%topic, partition, from = view.log_end_offset, to = target,
                    "Truncating a follower to where the leader's log agrees (KIP-279).");
                let cut = local_call(&f.local, |reply| ReplicationMsg::TruncateTo {
                    offset: target,
                    fully: false,
                    reply,
                })
                .await?
                .map_err(|e| RoundError::Protocol(e.to_string()))?;
                offsets = (cut.log_end_offset, cut.log_start_offset);
            }
            if let Some(f) = self.partitions.get_mut(&(topic, partition)) {
                f.needs_truncation = false;
                f.offsets = Some(offsets);
            }
        }
        Ok(())
    }

    /// Asks the partitions whose log offsets the fetcher does not know (after a failed
    /// append or a restart at the leader's log start).
    async fn describe_unknown(&mut self) -> Result<(), RoundError> {
        for f in self.partitions.values_mut() {
            if !f.needs_truncation && f.offsets.is_none() {
                let view =
                    local_call(&f.local, |reply| ReplicationMsg::DescribeRole { reply }).await?;
                f.offsets = Some((view.log_end_offset, view.log_start_offset));
                f.high_watermark = view.high_watermark;
            }
        }
        Ok(())
    }

    /// One long-polled Fetch, in the session, of every partition not waiting for a
    /// truncation.
    async fn fetch(&mut self, stream: &mut TransportLayer) -> Result<(), RoundError> {
        let max_bytes = self.args.max_bytes.min(i32::MAX as usize) as i32;
        let wanted: BTreeMap<(String, i32), PartitionFetch> = self
            .partitions
            .iter()
            .filter(|(_, f)| !f.needs_truncation)
            .filter_map(|(k, f)| {
                let (fetch_offset, log_start_offset) = f.offsets?;
                Some((
                    k.clone(),
                    PartitionFetch {
                        fetch_offset,
                        log_start_offset,
                        leader_epoch: f.leader_epoch,
                        max_bytes,
                    },
                ))
            })
            .collect();
        if wanted.is_empty() {
            // A partition whose truncation is not done must not take batches after
            // records the leader may not have.
            return Err(RoundError::Protocol(
                "no partition is ready to fetch yet".into(),
            ));
        }
        let session = self.session.build(&wanted);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(self.args.broker_id))
            .with_max_wait_ms(self.args.max_wait.as_millis().min(i32::MAX as u128) as i32)
            .with_min_bytes(self.args.min_bytes)
            .with_max_bytes(self.args.response_max_bytes.min(i32::MAX as usize) as i32)
            .with_session_id(session.session_id)
            .with_session_epoch(session.epoch)
            .with_topics(session.topics)
            .with_forgotten_topics_data(session.forgotten);
        let resp = self.call(stream, FETCH_VERSION, &req).await?;
        if !self
            .session
            .handle_response(resp.error_code, resp.session_id)
        {
            debug!(
                source_broker = self.args.source_broker,
                code = resp.error_code,
                "The leader refused our fetch session; the next fetch is a full one."
            );
            return Ok(());
        }
        for topic_answer in resp.responses {
            let topic = topic_answer.topic.0.to_string();
            for answer in topic_answer.partitions {
                let key = (topic.clone(), answer.partition_index);
                if wanted.contains_key(&key) {
                    self.take_answer(stream, &key, answer).await?;
                }
            }
        }
        Ok(())
    }

    /// One partition's answer: its batches (or a newer high watermark) appended, or a
    /// restart at the leader's log start, or a pause.
    async fn take_answer(
        &mut self,
        stream: &mut TransportLayer,
        key: &(String, i32),
        answer: PartitionData,
    ) -> Result<(), RoundError> {
        let Some(f) = self.partitions.get(key).cloned() else {
            return Ok(());
        };
        let (topic, partition) = (&key.0, key.1);
        match answer.error_code {
            0 => {
                let records = answer.records.unwrap_or_default();
                if records.is_empty() && answer.high_watermark <= f.high_watermark {
                    return Ok(());
                }
                let appended = local_call(&f.local, |reply| ReplicationMsg::AppendAsFollower {
                    records,
                    leader_epoch: f.leader_epoch,
                    leader_high_watermark: answer.high_watermark,
                    reply,
                })
                .await?;
                let Some(f) = self.partitions.get_mut(key) else {
                    return Ok(());
                };
                match appended {
                    Ok(offsets) => {
                        f.offsets = Some((offsets.log_end_offset, offsets.log_start_offset));
                        f.high_watermark = offsets.high_watermark;
                    }
                    Err(err) => {
                        warn!(%topic, partition, %err, "A follower could not take the leader's batches.");
                        f.offsets = None;
                    }
                }
            }
            code if code == ResponseError::OffsetOutOfRange.code() => {
                let log_end_offset = f.offsets.map_or(0, |(end, _)| end);
                self.restart_at_log_start(stream, topic, partition, &f, log_end_offset)
                    .await?;
                if let Some(f) = self.partitions.get_mut(key) {
                    f.offsets = None;
                }
            }
            code => {
                debug!(%topic, partition, code, "The leader refused a follower fetch; pausing it.");
                self.refused.push(key.clone());
            }
        }
        Ok(())
    }

    /// A follower below the leader's log start starts over there (Kafka's
    /// handleOutOfRangeError with the leader's earliest offset).
    async fn restart_at_log_start(
        &mut self,
        stream: &mut TransportLayer,
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
        let resp = self.call(stream, LIST_OFFSETS_VERSION, &req).await?;
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

    /// One request and its response on the connection, within replica.socket.timeout.ms.
    async fn call<R: Request>(
        &mut self,
        stream: &mut TransportLayer,
        version: i16,
        req: &R,
    ) -> Result<R::Response, RoundError> {
        self.correlation = self.correlation.wrapping_add(1);
        let spec = CallSpec {
            version,
            correlation: self.correlation,
            client_id: "replica-fetcher",
            wait: self.args.socket_timeout,
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
