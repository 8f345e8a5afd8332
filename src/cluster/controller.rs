//! The controller: on the quorum's leader, it registers brokers from their heartbeats,
//! fences one not heard from for `broker_session_timeout_ms` (moving each leadership it
//! held to another member of that partition's ISR, never outside it: unclean leader
//! election is off) and unfences it when it heartbeats again. It runs on every voter and
//! acts only while its node leads; who was heard from when is soft state, so a new leader
//! gives every broker a full session from the moment it took over, as Kafka's does.
//! Beside the session, a broker whose heartbeat is late and whose listener refuses
//! connections is fenced at once (`liveness`): its process is gone.
//!
//! Decisions are pure functions of the committed image (`on_heartbeat`, `fence`, and
//! `alter_partition::isr_changed` for a leader's ISR change), written as records through
//! the local Raft; the image itself changes only when they commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::alter_partition::isr_changed;
use super::bootstrap::PendingBootstrap;
use super::elections::{self, ElectLeaders, ElectionOutcome};
use super::liveness::{late_brokers, listener_refuses};
use super::reassignment::{self, Reassignment, ReassignmentError};
use super::rpc::{local_write, BrokerHeartbeat, IsrChange, Rejected};
use super::{AppliedImage, MetadataRaft, NodeId};
use crate::actors::metadata::{BrokerImage, MetadataImage, MetadataRecord};

pub enum ControllerMsg {
    /// Answered with the metadata index applied here once the heartbeat's records are.
    Heartbeat {
        heartbeat: BrokerHeartbeat,
        reply: RpcReplyPort<Result<u64, Rejected>>,
    },
    /// Fence the brokers whose session ran out (sent every `check_interval`).
    CheckSessions,
    /// A partition leader's ISR change.
    AlterPartition {
        change: IsrChange,
        reply: RpcReplyPort<Result<(), Rejected>>,
    },
    /// AlterPartitionReassignments: each partition's outcome once its record is committed.
    AlterReassignments {
        requests: Vec<Reassignment>,
        reply: RpcReplyPort<Result<Vec<ReassignmentOutcome>, Rejected>>,
    },
    /// ElectLeaders: each partition's outcome once the new leaders are committed.
    ElectLeaders {
        request: ElectLeaders,
        reply: RpcReplyPort<Result<Vec<ElectionOutcome>, Rejected>>,
    },
    /// A late broker's listener was probed at `at`: `refused` when nothing listens there.
    Probed { id: i32, at: Instant, refused: bool },
}

impl crate::metrics::ActorKind for ControllerMsg {
    const KIND: &'static str = "controller";
}

/// One partition's reassignment result.
pub type ReassignmentOutcome = ((String, i32), Result<(), ReassignmentError>);

pub struct ControllerArgs {
    pub node_id: NodeId,
    pub raft: MetadataRaft,
    pub applied: watch::Receiver<Arc<AppliedImage>>,
    pub session_timeout: Duration,
    pub check_interval: Duration,
    /// The brokers' broker_heartbeat_interval_ms: a heartbeat 1.25 intervals late gets the
    /// broker's listener probed.
    pub heartbeat_interval: Duration,
    /// Automatic preferred-leader elections (None: off).
    pub rebalance: Option<LeaderRebalance>,
    /// The sockets liveness probes go through.
    pub network: crate::sockets::Network,
    /// This voter's SCRAM bootstrap file, committed by the first leader (`bootstrap`).
    pub bootstrap: PendingBootstrap,
}

/// Kafka's auto.leader.rebalance.enable with its interval and imbalance threshold.
#[derive(Debug, Clone, Copy)]
pub struct LeaderRebalance {
    pub every: Duration,
    pub imbalance_percent: u32,
}

pub struct ControllerState {
    args: ControllerArgs,
    last_seen: HashMap<i32, Instant>,
    /// When this node last became the leader (None while it is not).
    leading_since: Option<Instant>,
    /// Late brokers whose listener is being probed.
    probing: HashSet<i32>,
    /// When the last automatic preferred-leader check ran (or leadership began).
    last_rebalance: Option<Instant>,
}

pub struct Controller;

/// Hands a heartbeat to a controller and waits for its answer: the metadata index it has
/// applied (every fencing and leader change it wrote before is at or below it).
pub async fn heartbeat(
    controller: &ActorRef<ControllerMsg>,
    heartbeat: BrokerHeartbeat,
) -> Result<u64, Rejected> {
    let build = |reply| ControllerMsg::Heartbeat { heartbeat, reply };
    ask(controller, build).await
}

/// Hands an ISR change to a controller and waits for its answer.
pub async fn alter_partition(
    controller: &ActorRef<ControllerMsg>,
    change: IsrChange,
) -> Result<(), Rejected> {
    let build = |reply| ControllerMsg::AlterPartition { change, reply };
    ask(controller, build).await
}

/// Hands reassignments to a controller and waits for its answer.
pub async fn alter_reassignments(
    controller: &ActorRef<ControllerMsg>,
    requests: Vec<Reassignment>,
) -> Result<Vec<ReassignmentOutcome>, Rejected> {
    let build = |reply| ControllerMsg::AlterReassignments { requests, reply };
    ask(controller, build).await
}

/// Hands an ElectLeaders request to a controller and waits for its answer.
pub async fn elect_leaders(
    controller: &ActorRef<ControllerMsg>,
    request: ElectLeaders,
) -> Result<Vec<ElectionOutcome>, Rejected> {
    let build = |reply| ControllerMsg::ElectLeaders { request, reply };
    ask(controller, build).await
}

/// One request to a controller, its answer bounded by 10 s.
async fn ask<T: Send + 'static>(
    controller: &ActorRef<ControllerMsg>,
    build: impl FnOnce(RpcReplyPort<Result<T, Rejected>>) -> ControllerMsg,
) -> Result<T, Rejected> {
    match crate::actors::call(controller, build, Duration::from_secs(10)).await {
        Ok(result) => result,
        Err(err) => Err(Rejected::Failed(format!(
            "the controller did not answer: {err}"
        ))),
    }
}

impl Actor for Controller {
    type Msg = ControllerMsg;
    type State = ControllerState;
    type Arguments = ControllerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ControllerMsg>,
        args: ControllerArgs,
    ) -> Result<ControllerState, ActorProcessingErr> {
        let every = args.check_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if myself.send_message(ControllerMsg::CheckSessions).is_err() {
                    return;
                }
            }
        });
        Ok(ControllerState {
            args,
            last_seen: HashMap::new(),
            leading_since: None,
            probing: HashSet::new(),
            last_rebalance: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ControllerMsg>,
        message: ControllerMsg,
        state: &mut ControllerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ControllerMsg::Heartbeat { heartbeat, reply } => {
                let _ = reply.send(state.heartbeat(heartbeat).await);
            }
            ControllerMsg::CheckSessions => {
                state.check_sessions().await;
                state.probe_late_brokers(&myself);
            }
            ControllerMsg::Probed { id, at, refused } => state.probed(id, at, refused).await,
            ControllerMsg::AlterPartition { change, reply } => {
                let leader = state.leader();
                let result = if leader != Some(state.args.node_id) {
                    Err(Rejected::NotLeader { leader })
                } else {
                    match isr_changed(&state.image(), &change) {
                        Ok(record) => state.write(vec![record]).await,
                        Err(err) => Err(err),
                    }
                };
                let _ = reply.send(result);
            }
            ControllerMsg::AlterReassignments { requests, reply } => {
                let leader = state.leader();
                let result = if leader != Some(state.args.node_id) {
                    Err(Rejected::NotLeader { leader })
                } else {
                    state.alter_reassignments(requests).await
                };
                let _ = reply.send(result);
            }
            ControllerMsg::ElectLeaders { request, reply } => {
                let leader = state.leader();
                let result = if leader != Some(state.args.node_id) {
                    Err(Rejected::NotLeader { leader })
                } else {
                    let (records, outcomes) = elections::elect(&state.image(), &request);
                    if !records.is_empty() {
                        info!(
                            elected = records.len(),
                            election = ?request.election,
                            "Electing partition leaders as asked."
                        );
                    }
                    state.write(records).await.map(|()| outcomes)
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

impl ControllerState {
    fn leader(&self) -> Option<NodeId> {
        self.args.raft.metrics().borrow().current_leader
    }

    fn image(&self) -> MetadataImage {
        self.args.applied.borrow().image.clone()
    }

    async fn write(&self, records: Vec<MetadataRecord>) -> Result<(), Rejected> {
        for record in records {
            local_write(&self.args.raft, record).await?;
        }
        Ok(())
    }

    async fn heartbeat(&mut self, heartbeat: BrokerHeartbeat) -> Result<u64, Rejected> {
        let leader = self.leader();
        if leader != Some(self.args.node_id) {
            return Err(Rejected::NotLeader { leader });
        }
        // The bootstrap credentials first: brokers log in with them to replicate.
        let a = &mut self.args;
        a.bootstrap.commit_on_leader(&a.raft, &a.applied).await?;
        self.last_seen.insert(heartbeat.id, Instant::now());
        self.add_learner(&heartbeat).await;
        let records = on_heartbeat(&self.image(), &heartbeat);
        if !records.is_empty() {
            info!(broker = heartbeat.id, "A broker registered or came back.");
        }
        self.write(records).await?;
        // The leader applies what it commits before its writes return.
        Ok(self
            .args
            .applied
            .borrow()
            .last_applied
            .map_or(0, |l| l.index))
    }

    /// A broker that is no member of the quorum (a non-voter) becomes a learner, so the
    /// committed records reach it.
    async fn add_learner(&self, heartbeat: &BrokerHeartbeat) {
        let Ok(id) = NodeId::try_from(heartbeat.id) else {
            return;
        };
        let known = {
            let metrics = self.args.raft.metrics();
            let metrics = metrics.borrow();
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .is_some()
        };
        if known {
            return;
        }
        let node = BasicNode {
            addr: heartbeat.controller_addr.clone(),
        };
        match self.args.raft.add_learner(id, node, false).await {
            Ok(_) => info!(
                broker = id,
                "Added a non-voting broker to the quorum as a learner."
            ),
            Err(err) => debug!(broker = id, %err, "Could not add a learner yet."),
        }
    }

    /// Probes the listener of each broker whose heartbeat is late, off the actor; the
    /// answer comes back as `Probed`.
    fn probe_late_brokers(&mut self, myself: &ActorRef<ControllerMsg>) {
        let Some(since) = self.leading_since else {
            return;
        };
        let late = late_brokers(
            &self.image(),
            &self.last_seen,
            since,
            Instant::now(),
            self.args.heartbeat_interval,
            // This node's own broker runs this code: alive, whether or not it listens yet.
            |id| self.probing.contains(&id) || NodeId::try_from(id) == Ok(self.args.node_id),
        );
        for broker in late {
            self.probing.insert(broker.id);
            let myself = myself.clone();
            let network = self.args.network.clone();
            tokio::spawn(async move {
                let at = Instant::now();
                let refused = listener_refuses(&network, &broker.host, broker.port).await;
                let id = broker.id;
                let _ = myself.send_message(ControllerMsg::Probed { id, at, refused });
            });
        }
    }

    /// A probe's answer: a broker not heard from since the probe began, whose listener
    /// refused the connection, is fenced now.
    async fn probed(&mut self, id: i32, at: Instant, refused: bool) {
        self.probing.remove(&id);
        let heard = self.last_seen.get(&id).is_some_and(|last| *last >= at);
        let image = self.image();
        let live = image.brokers.get(&id).is_some_and(|b| !b.fenced);
        if !refused || heard || !live || self.leader() != Some(self.args.node_id) {
            return;
        }
        warn!(
            broker = id,
            "Fenced a broker whose heartbeat is late and whose listener refuses connections."
        );
        if let Err(err) = self.write(fence(&image, id)).await {
            warn!(broker = id, %err, "Could not write a broker's fencing.");
        }
    }

    async fn check_sessions(&mut self) {
        self.args.bootstrap.follow(&self.args.applied);
        if self.leader() != Some(self.args.node_id) {
            self.leading_since = None;
            self.last_rebalance = None;
            return;
        }
        let now = Instant::now();
        let since = *self.leading_since.get_or_insert(now);
        self.rebalance_leaders(now).await;
        self.complete_reassignments().await;
        let image = self.image();
        let expired: Vec<i32> = image
            .live_brokers()
            .filter(|(id, _)| {
                let last = self.last_seen.get(id).copied().unwrap_or(since).max(since);
                now.duration_since(last) > self.args.session_timeout
            })
            .map(|(id, _)| id)
            .collect();
        for id in expired {
            let records = fence(&self.image(), id);
            warn!(
                broker = id,
                "Fenced a broker that missed its session timeout."
            );
            if let Err(err) = self.write(records).await {
                warn!(broker = id, %err, "Could not write a broker's fencing.");
                return;
            }
        }
    }
}

impl ControllerState {
    /// Starts or cancels each reassignment in turn (each sees the ones before it).
    async fn alter_reassignments(
        &self,
        requests: Vec<Reassignment>,
    ) -> Result<Vec<ReassignmentOutcome>, Rejected> {
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let result = reassignment::alter(&self.image(), &request);
            let key = (request.topic, request.partition);
            match result {
                Ok(Some(record)) => {
                    info!(topic = %key.0, partition = key.1, "Reassigning a partition.");
                    self.write(vec![record]).await?;
                    outcomes.push((key, Ok(())));
                }
                Ok(None) => outcomes.push((key, Ok(()))),
                Err(err) => outcomes.push((key, Err(err))),
            }
        }
        Ok(outcomes)
    }

    /// Completes the reassignments whose target replicas are all in the ISR.
    async fn complete_reassignments(&self) {
        let records = reassignment::complete(&self.image());
        if records.is_empty() {
            return;
        }
        info!(
            partitions = records.len(),
            "Completing partition reassignments."
        );
        if let Err(err) = self.write(records).await {
            warn!(%err, "Could not write a reassignment's completion.");
        }
    }

    /// Kafka's automatic preferred-leader election: once per interval, counted from when
    /// this node began to lead.
    async fn rebalance_leaders(&mut self, now: Instant) {
        let Some(rebalance) = self.args.rebalance else {
            return;
        };
        let last = *self.last_rebalance.get_or_insert(now);
        if now.duration_since(last) < rebalance.every {
            return;
        }
        self.last_rebalance = Some(now);
        let records = elections::rebalance(&self.image(), rebalance.imbalance_percent);
        if records.is_empty() {
            return;
        }
        info!(
            elected = records.len(),
            "Moving leaderships back to preferred replicas (auto.leader.rebalance.enable)."
        );
        if let Err(err) = self.write(records).await {
            warn!(%err, "Could not write the preferred leaders.");
        }
    }
}

/// What a heartbeat changes: a registration where the broker is new or moved (a new
/// epoch), and leaderships it can take back where it is unfenced.
///
/// A new incarnation (a restarted process) of a broker still registered unfenced is fenced
/// first, as Kafka's controller does once the old incarnation's session ends: its
/// leaderships move with the next leader epoch and it leaves every ISR, so it comes back as
/// a follower that truncates to its leader and catches up. Its log may have lost a tail
/// that was never synced; leading again at the old epoch would serve and acknowledge a
/// history the in-sync replicas do not share.
pub fn on_heartbeat(image: &MetadataImage, heartbeat: &BrokerHeartbeat) -> Vec<MetadataRecord> {
    let known = image.brokers.get(&heartbeat.id);
    if heartbeat.starting && known.is_some_and(|b| !b.fenced) {
        let mut records = fence(image, heartbeat.id);
        let moved = known.is_some_and(|b| !same_registration(b, heartbeat));
        if moved {
            records.push(registration(known, heartbeat));
            records.push(MetadataRecord::BrokerFenced { id: heartbeat.id });
        }
        return records;
    }
    let mut records = Vec::new();
    let same = known.is_some_and(|b| same_registration(b, heartbeat));
    if !same {
        records.push(registration(known, heartbeat));
    } else if known.is_some_and(|b| b.fenced) {
        records.push(MetadataRecord::BrokerUnfenced { id: heartbeat.id });
    }
    if known.is_some_and(|b| b.fenced) {
        // Partitions left without a leader whose ISR still holds this broker.
        for (name, topic) in &image.topics {
            for (index, p) in topic.assignments.iter().enumerate() {
                if p.leader == -1 && p.isr.contains(&heartbeat.id) {
                    records.push(MetadataRecord::PartitionChanged {
                        topic: name.clone(),
                        partition: index as i32,
                        leader: heartbeat.id,
                        leader_epoch: p.leader_epoch + 1,
                        isr: p.isr.clone(),
                    });
                }
            }
        }
    }
    records
}

/// Whether `heartbeat` names the address, rack and listeners `known` is registered with.
fn same_registration(known: &BrokerImage, heartbeat: &BrokerHeartbeat) -> bool {
    known.host == heartbeat.host
        && known.port == heartbeat.port
        && known.rack == heartbeat.rack
        && known.listeners == heartbeat.listeners
}

/// The broker's registration at the next registration epoch (the first is 1).
fn registration(known: Option<&BrokerImage>, heartbeat: &BrokerHeartbeat) -> MetadataRecord {
    MetadataRecord::BrokerRegistered {
        id: heartbeat.id,
        epoch: known.map_or(1, |b| b.epoch + 1),
        host: heartbeat.host.clone(),
        port: heartbeat.port,
        rack: heartbeat.rack.clone(),
        listeners: heartbeat.listeners.clone(),
    }
}

/// Fencing a broker: it leaves every ISR (the last member stays, leaderless, as Kafka
/// keeps it), and each partition it led gets the first live ISR member in replica order
/// as leader with the next leader epoch, or none.
pub fn fence(image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::BrokerFenced { id }];
    let live = |b: &i32| *b != id && image.brokers.get(b).is_some_and(|x| !x.fenced);
    for (name, topic) in &image.topics {
        for (index, p) in topic.assignments.iter().enumerate() {
            if !p.isr.contains(&id) && p.leader != id {
                continue;
            }
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|b| *b != id).collect();
            let (leader, leader_epoch) = if p.leader == id {
                let next = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && live(r));
                (next.unwrap_or(-1), p.leader_epoch + 1)
            } else {
                (p.leader, p.leader_epoch)
            };
            if isr.is_empty() {
                isr.push(id);
            }
            records.push(MetadataRecord::PartitionChanged {
                topic: name.clone(),
                partition: index as i32,
                leader,
                leader_epoch,
                isr,
            });
        }
    }
    records
}
