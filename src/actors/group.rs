//! Group coordinator actor: one per consumer group, created on demand by the registry.
//!
//! Owns the group's membership, generation, chosen protocol, leader, assignments and
//! committed offsets (durable in its own record file, fsynced before a commit is
//! answered). Runs Kafka's classic protocol: Empty, PreparingRebalance,
//! CompletingRebalance, Stable, Dead; session and rebalance timeouts and the initial
//! rebalance delay are this actor's own timers (tokio time, so tests can pause the clock).
//! Static members (group.instance.id) rejoin without a rebalance. Protocol metadata and
//! assignments pass through untouched, so the clients' assignors do the assigning.
//!
//! Accepts `GroupMsg` from connection handlers; calls nobody.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::group_store::{apply, CommittedOffset, GroupRecord, GroupStore, TopicPartition};
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub offsets_retention: Duration,
}

pub struct GroupArgs {
    pub group_id: String,
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub settings: GroupSettings,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata): for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

pub enum GroupMsg {
    Join {
        request: JoinRequest,
        reply: RpcReplyPort<JoinResult>,
    },
    Sync {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
        reply: RpcReplyPort<SyncResult>,
    },
    Heartbeat {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        reply: RpcReplyPort<i16>,
    },
    /// (member id, instance id) per leaving member; one error code each.
    Leave {
        members: Vec<(String, Option<String>)>,
        reply: RpcReplyPort<Vec<i16>>,
    },
    Commit {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        reply: RpcReplyPort<i16>,
    },
    /// None: every committed offset.
    FetchOffsets {
        partitions: Option<Vec<TopicPartition>>,
        reply: RpcReplyPort<Vec<(TopicPartition, Option<CommittedOffset>)>>,
    },
    Describe {
        reply: RpcReplyPort<GroupDescription>,
    },
    /// DeleteGroups: only an empty group; its offsets go with it.
    Delete {
        reply: RpcReplyPort<i16>,
    },
    /// OffsetDelete: (top-level error, per-partition errors).
    DeleteOffsets {
        partitions: Vec<TopicPartition>,
        reply: RpcReplyPort<(i16, Vec<i16>)>,
    },
    SessionCheck {
        member_id: String,
    },
    RebalanceDeadline {
        rebalance: u64,
    },
    InitialDelayOver {
        rebalance: u64,
    },
    RetentionCheck,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    join_order: u64,
    join_reply: Option<RpcReplyPort<JoinResult>>,
    sync_reply: Option<RpcReplyPort<SyncResult>>,
}

pub struct GroupCoordinatorState {
    group_id: String,
    settings: GroupSettings,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: HashMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending: HashMap<String, Instant>,
    /// group.instance.id -> current member id.
    static_members: HashMap<String, String>,
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    store: GroupStore,
    rebalance: u64,
    initial_delay_pending: bool,
    joins: u64,
    empty_since: Option<Instant>,
}

pub struct GroupCoordinator;

fn code(err: ResponseError) -> i16 {
    err.code()
}

impl Actor for GroupCoordinator {
    type Msg = GroupMsg;
    type State = GroupCoordinatorState;
    type Arguments = GroupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GroupArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (store, offsets) = GroupStore::open(args.storage, &args.dir, &args.group_id)?;
        let state = GroupCoordinatorState {
            group_id: args.group_id,
            settings: args.settings,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: HashMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets,
            store,
            rebalance: 0,
            initial_delay_pending: false,
            joins: 0,
            empty_since: Some(Instant::now()),
        };
        if !state.offsets.is_empty() {
            myself.send_after(state.settings.offsets_retention, || {
                GroupMsg::RetentionCheck
            });
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            GroupMsg::Join { request, reply } => s.join(&myself, request, reply),
            GroupMsg::Sync {
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                reply,
            } => s.sync(
                &myself,
                member_id,
                instance_id,
                generation,
                (protocol_type, protocol_name),
                assignments,
                reply,
            ),
            GroupMsg::Heartbeat {
                member_id,
                instance_id,
                generation,
                reply,
            } => {
                let result = s.heartbeat(&myself, &member_id, instance_id.as_deref(), generation);
                let _ = reply.send(result);
            }
            GroupMsg::Leave { members, reply } => {
                let codes = members
                    .iter()
                    .map(|(id, instance)| s.leave(&myself, id, instance.as_deref()))
                    .collect();
                let _ = reply.send(codes);
            }
            GroupMsg::Commit {
                member_id,
                instance_id,
                generation,
                offsets,
                reply,
            } => {
                let result = s.commit(
                    &myself,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                    offsets,
                );
                let _ = reply.send(result);
            }
            GroupMsg::FetchOffsets { partitions, reply } => {
                let found = match partitions {
                    None => s
                        .offsets
                        .iter()
                        .map(|(tp, o)| (tp.clone(), Some(o.clone())))
                        .collect(),
                    Some(list) => list
                        .into_iter()
                        .map(|tp| {
                            let o = s.offsets.get(&tp).cloned();
                            (tp, o)
                        })
                        .collect(),
                };
                let _ = reply.send(found);
            }
            GroupMsg::Describe { reply } => {
                let _ = reply.send(s.describe());
            }
            GroupMsg::Delete { reply } => {
                if !s.members.is_empty() {
                    let _ = reply.send(code(ResponseError::NonEmptyGroup));
                } else {
                    let result = s.store.remove();
                    s.offsets.clear();
                    s.state = GroupState::Dead;
                    let _ = reply.send(match result {
                        Ok(()) => 0,
                        Err(err) => {
                            warn!(group = %s.group_id, %err, "Could not remove a deleted group's file.");
                            code(ResponseError::KafkaStorageError)
                        }
                    });
                    info!(group = %s.group_id, "Deleted a group and its offsets.");
                    myself.stop(Some("group deleted".into()));
                }
            }
            GroupMsg::DeleteOffsets { partitions, reply } => {
                let _ = reply.send(s.delete_offsets(partitions));
            }
            GroupMsg::SessionCheck { member_id } => s.session_check(&myself, &member_id),
            GroupMsg::RebalanceDeadline { rebalance } => {
                if rebalance == s.rebalance && s.state == GroupState::PreparingRebalance {
                    s.initial_delay_pending = false;
                    s.complete_join(&myself);
                }
            }
            GroupMsg::InitialDelayOver { rebalance } => {
                if rebalance == s.rebalance && s.state == GroupState::PreparingRebalance {
                    s.initial_delay_pending = false;
                    s.maybe_complete_join(&myself);
                }
            }
            GroupMsg::RetentionCheck => {
                if s.expire_offsets(&myself) {
                    myself.stop(Some("offsets expired".into()));
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for member in s.members.values_mut() {
            if let Some(reply) = member.join_reply.take() {
                let _ = reply.send(JoinResult {
                    error: code(ResponseError::CoordinatorNotAvailable),
                    ..JoinResult::default()
                });
            }
            if let Some(reply) = member.sync_reply.take() {
                let _ = reply.send(SyncResult {
                    error: code(ResponseError::CoordinatorNotAvailable),
                    ..SyncResult::default()
                });
            }
        }
        Ok(())
    }
}

impl GroupCoordinatorState {
    fn new_member_id(&self, client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    fn schedule_session_check(
        &self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        after: Duration,
    ) {
        let member_id = member_id.to_string();
        myself.send_after(after, move || GroupMsg::SessionCheck { member_id });
    }

    fn join(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        req: JoinRequest,
        reply: RpcReplyPort<JoinResult>,
    ) {
        let fail = |reply: RpcReplyPort<JoinResult>, err: ResponseError, member_id: &str| {
            let _ = reply.send(JoinResult {
                error: code(err),
                generation: -1,
                member_id: member_id.to_string(),
                ..JoinResult::default()
            });
        };
        if req.session_timeout < self.settings.min_session_timeout
            || req.session_timeout > self.settings.max_session_timeout
        {
            return fail(reply, ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        if req.protocols.is_empty()
            || req.protocol_type.is_empty()
            || (!self.members.is_empty()
                && self
                    .protocol_type
                    .as_deref()
                    .is_some_and(|t| t != req.protocol_type))
            || (!self.members.is_empty() && !self.supports_one_of(&req.protocols))
        {
            return fail(
                reply,
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            );
        }
        let now = Instant::now();
        let member_id = if req.member_id.is_empty() {
            if let Some(instance) = &req.instance_id {
                if let Some(old) = self.static_members.get(instance).cloned() {
                    return self.static_rejoin(myself, old, req, reply);
                }
                self.new_member_id(&req.client_id)
            } else {
                let id = self.new_member_id(&req.client_id);
                if req.require_known_member_id {
                    self.pending.insert(id.clone(), now);
                    self.schedule_session_check(myself, &id, req.session_timeout);
                    return fail(reply, ResponseError::MemberIdRequired, &id);
                }
                id
            }
        } else {
            if let Some(instance) = &req.instance_id {
                if self
                    .static_members
                    .get(instance)
                    .is_some_and(|current| *current != req.member_id)
                {
                    return fail(reply, ResponseError::FencedInstanceId, &req.member_id);
                }
            }
            if !self.members.contains_key(&req.member_id)
                && self.pending.remove(&req.member_id).is_none()
            {
                return fail(reply, ResponseError::UnknownMemberId, &req.member_id);
            }
            req.member_id.clone()
        };
        if let Some(member) = self.members.get_mut(&member_id) {
            let unchanged = member.protocols == req.protocols;
            member.session_timeout = req.session_timeout;
            member.rebalance_timeout = req.rebalance_timeout;
            member.protocols = req.protocols;
            member.last_heartbeat = now;
            let is_leader = self.leader.as_deref() == Some(member_id.as_str());
            let quiet = unchanged
                && ((self.state == GroupState::Stable && !is_leader)
                    || self.state == GroupState::CompletingRebalance);
            if quiet {
                // Nothing changed: answer with the current generation, no rebalance.
                let result = self.join_result(&member_id);
                let _ = reply.send(result);
                return;
            }
            if let Some(old) = member.join_reply.replace(reply) {
                let _ = old.send(JoinResult {
                    error: code(ResponseError::UnknownMemberId),
                    ..JoinResult::default()
                });
            }
        } else {
            self.joins += 1;
            if let Some(instance) = &req.instance_id {
                self.static_members
                    .insert(instance.clone(), member_id.clone());
            }
            self.members.insert(
                member_id.clone(),
                Member {
                    instance_id: req.instance_id,
                    client_id: req.client_id,
                    client_host: req.client_host,
                    session_timeout: req.session_timeout,
                    rebalance_timeout: req.rebalance_timeout,
                    protocol_type: req.protocol_type,
                    protocols: req.protocols,
                    assignment: Bytes::new(),
                    last_heartbeat: now,
                    join_order: self.joins,
                    join_reply: Some(reply),
                    sync_reply: None,
                },
            );
            debug!(group = %self.group_id, member = %member_id, "A member joined.");
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(myself, "a member joined");
        }
        self.maybe_complete_join(myself);
    }

    /// A static member came back with a new process: it takes its old place.
    fn static_rejoin(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        old_id: String,
        req: JoinRequest,
        reply: RpcReplyPort<JoinResult>,
    ) {
        let new_id = self.new_member_id(&req.client_id);
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members
                .remove(req.instance_id.as_deref().unwrap_or_default());
            return self.join(myself, req, reply);
        };
        if let Some(old) = member.join_reply.take() {
            let _ = old.send(JoinResult {
                error: code(ResponseError::FencedInstanceId),
                ..JoinResult::default()
            });
        }
        if let Some(old) = member.sync_reply.take() {
            let _ = old.send(SyncResult {
                error: code(ResponseError::FencedInstanceId),
                ..SyncResult::default()
            });
        }
        let unchanged = member.protocols == req.protocols;
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = Instant::now();
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        self.schedule_session_check(myself, &new_id, req.session_timeout);
        info!(group = %self.group_id, old = %old_id, new = %new_id, "A static member rejoined.");
        if self.state == GroupState::Stable && unchanged {
            // Same subscription: it keeps its assignment, nobody else rebalances.
            let mut result = self.join_result(&new_id);
            if was_leader {
                result.skip_assignment = true;
            }
            let _ = reply.send(result);
            return;
        }
        if let Some(member) = self.members.get_mut(&new_id) {
            member.join_reply = Some(reply);
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(myself, "a static member rejoined with changes");
        }
        self.maybe_complete_join(myself);
    }

    fn supports_one_of(&self, protocols: &[(String, Bytes)]) -> bool {
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let members = if leader == member_id {
            let mut all: Vec<_> = self.members.iter().collect();
            all.sort_by_key(|(_, m)| m.join_order);
            all.into_iter()
                .map(|(id, m)| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default();
                    (id.clone(), m.instance_id.clone(), metadata)
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: protocol,
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    fn prepare_rebalance(&mut self, myself: &ActorRef<GroupMsg>, why: &str) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                if let Some(reply) = member.sync_reply.take() {
                    let _ = reply.send(SyncResult {
                        error: code(ResponseError::RebalanceInProgress),
                        ..SyncResult::default()
                    });
                }
            }
        }
        let from_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.rebalance += 1;
        let rebalance = self.rebalance;
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        myself.send_after(timeout, move || GroupMsg::RebalanceDeadline { rebalance });
        if from_empty && !self.settings.initial_rebalance_delay.is_zero() {
            self.initial_delay_pending = true;
            let delay = self.settings.initial_rebalance_delay.min(timeout);
            myself.send_after(delay, move || GroupMsg::InitialDelayOver { rebalance });
        }
        info!(group = %self.group_id, generation = self.generation, reason = why, "Preparing a rebalance.");
    }

    fn maybe_complete_join(&mut self, myself: &ActorRef<GroupMsg>) {
        if self.state == GroupState::PreparingRebalance
            && !self.initial_delay_pending
            && self.members.values().all(|m| m.join_reply.is_some())
        {
            self.complete_join(myself);
        }
    }

    fn complete_join(&mut self, myself: &ActorRef<GroupMsg>) {
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_reply.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, "it did not rejoin within the rebalance timeout");
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.become_empty(myself);
            return;
        }
        self.protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone());
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members
                .iter()
                .min_by_key(|(_, m)| m.join_order)
                .map(|(id, _)| id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        let now = Instant::now();
        for id in ids {
            let result = self.join_result(&id);
            if let Some(member) = self.members.get_mut(&id) {
                member.last_heartbeat = now;
                member.assignment = Bytes::new();
                let session = member.session_timeout;
                if let Some(reply) = member.join_reply.take() {
                    let _ = reply.send(result);
                }
                self.schedule_session_check(myself, &id, session);
            }
        }
        info!(
            group = %self.group_id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "Rebalance joined; waiting for the leader's assignment."
        );
    }

    /// The protocol every member supports that most members list first (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(n, _)| n.clone())
    }

    fn become_empty(&mut self, myself: &ActorRef<GroupMsg>) {
        self.state = GroupState::Empty;
        self.protocol = None;
        self.protocol_type = None;
        self.leader = None;
        self.empty_since = Some(Instant::now());
        if !self.offsets.is_empty() {
            myself.send_after(self.settings.offsets_retention, || GroupMsg::RetentionCheck);
        }
        info!(group = %self.group_id, generation = self.generation, "Group is empty.");
    }

    fn remove_member(&mut self, member_id: &str, why: &str) {
        if let Some(mut member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(|s| s.as_str()) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(reply) = member.join_reply.take() {
                let _ = reply.send(JoinResult {
                    error: code(ResponseError::UnknownMemberId),
                    ..JoinResult::default()
                });
            }
            if let Some(reply) = member.sync_reply.take() {
                let _ = reply.send(SyncResult {
                    error: code(ResponseError::UnknownMemberId),
                    ..SyncResult::default()
                });
            }
            info!(group = %self.group_id, member = %member_id, reason = why, "A member left the group.");
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    /// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID or ILLEGAL_GENERATION for a member's request.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            if let Some(current) = self.static_members.get(instance) {
                if current != member_id {
                    return Err(code(ResponseError::FencedInstanceId));
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(code(ResponseError::UnknownMemberId));
        }
        if generation != self.generation {
            return Err(code(ResponseError::IllegalGeneration));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn sync(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        protocol: (Option<String>, Option<String>),
        assignments: Vec<(String, Bytes)>,
        reply: RpcReplyPort<SyncResult>,
    ) {
        let fail = |reply: RpcReplyPort<SyncResult>, error: i16| {
            let _ = reply.send(SyncResult {
                error,
                ..SyncResult::default()
            });
        };
        if let Err(error) = self.check_member(&member_id, instance_id.as_deref(), generation) {
            return fail(reply, error);
        }
        let (ptype, pname) = protocol;
        if ptype.is_some_and(|t| Some(t) != self.protocol_type)
            || pname.is_some_and(|n| Some(n) != self.protocol)
        {
            return fail(reply, code(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::PreparingRebalance => fail(reply, code(ResponseError::RebalanceInProgress)),
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(&member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = reply.send(self.sync_result(assignment));
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(&member_id) {
                    member.sync_reply = Some(reply);
                    member.last_heartbeat = Instant::now();
                }
                if self.leader.as_deref() == Some(member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, member) in self.members.iter_mut() {
                        member.assignment = given.remove(id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let results: Vec<(String, SyncResult)> = self
                        .members
                        .iter()
                        .map(|(id, m)| (id.clone(), self.sync_result(m.assignment.clone())))
                        .collect();
                    for (id, result) in results {
                        if let Some(reply) =
                            self.members.get_mut(&id).and_then(|m| m.sync_reply.take())
                        {
                            let _ = reply.send(result);
                        }
                    }
                    info!(group = %self.group_id, generation = self.generation, "Group is stable.");
                }
                let _ = myself;
            }
            GroupState::Empty | GroupState::Dead => {
                fail(reply, code(ResponseError::UnknownMemberId))
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    fn heartbeat(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = Instant::now();
            let session = member.session_timeout;
            self.schedule_session_check(myself, member_id, session);
        }
        if let Err(error) = self.check_member(member_id, instance_id, generation) {
            return error;
        }
        match self.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ => 0,
        }
    }

    fn session_check(&mut self, myself: &ActorRef<GroupMsg>, member_id: &str) {
        let now = Instant::now();
        if let Some(since) = self.pending.get(member_id) {
            if now.duration_since(*since)
                >= self
                    .settings
                    .max_session_timeout
                    .min(Duration::from_secs(300))
            {
                self.pending.remove(member_id);
            }
            return;
        }
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        // A member waiting in JoinGroup is not expected to heartbeat.
        if member.join_reply.is_some() {
            return;
        }
        if now.duration_since(member.last_heartbeat) < member.session_timeout {
            return;
        }
        self.remove_member(member_id, "its session timed out");
        self.after_departure(myself, "a member's session timed out");
    }

    fn after_departure(&mut self, myself: &ActorRef<GroupMsg>, why: &str) {
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(myself),
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.become_empty(myself);
                } else {
                    self.prepare_rebalance(myself, why);
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn leave(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return code(ResponseError::FencedInstanceId),
                None => return code(ResponseError::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return 0;
        }
        if !self.members.contains_key(&id) {
            return code(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id, "it left the group");
        self.after_departure(myself, "a member left");
        0
    }

    fn commit(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> i16 {
        let standalone = generation < 0 && member_id.is_empty();
        if standalone {
            if !self.members.is_empty() {
                return code(ResponseError::UnknownMemberId);
            }
        } else {
            if self.state == GroupState::CompletingRebalance && self.members.contains_key(member_id)
            {
                return code(ResponseError::RebalanceInProgress);
            }
            if let Err(error) = self.check_member(member_id, instance_id, generation) {
                return error;
            }
        }
        let entries: Vec<(String, i32, CommittedOffset)> = offsets
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, o.clone()))
            .collect();
        let mut next = self.offsets.clone();
        apply(
            &mut next,
            GroupRecord::Committed {
                entries: entries.clone(),
            },
        );
        if let Err(err) =
            self.store
                .append(&self.group_id, GroupRecord::Committed { entries }, &next)
        {
            warn!(group = %self.group_id, %err, "Could not make committed offsets durable.");
            return code(ResponseError::KafkaStorageError);
        }
        self.offsets = next;
        if self.state == GroupState::Empty {
            self.empty_since = Some(Instant::now());
            myself.send_after(self.settings.offsets_retention, || GroupMsg::RetentionCheck);
        }
        0
    }

    fn delete_offsets(&mut self, partitions: Vec<TopicPartition>) -> (i16, Vec<i16>) {
        if !self.members.is_empty() {
            // The members' subscriptions are opaque to the broker: refuse for any topic.
            let each = code(ResponseError::GroupSubscribedToTopic);
            return (0, partitions.iter().map(|_| each).collect());
        }
        let record = GroupRecord::Deleted {
            partitions: partitions.clone(),
        };
        let mut next = self.offsets.clone();
        apply(&mut next, record.clone());
        match self.store.append(&self.group_id, record, &next) {
            Ok(()) => {
                self.offsets = next;
                (0, partitions.iter().map(|_| 0).collect())
            }
            Err(err) => {
                warn!(group = %self.group_id, %err, "Could not record deleted offsets.");
                (code(ResponseError::KafkaStorageError), Vec::new())
            }
        }
    }

    /// Drops the offsets of a group empty for longer than the retention; true when the
    /// group has nothing left and its actor can stop.
    fn expire_offsets(&mut self, myself: &ActorRef<GroupMsg>) -> bool {
        if self.state != GroupState::Empty || self.offsets.is_empty() {
            return false;
        }
        let Some(since) = self.empty_since else {
            return false;
        };
        let age = Instant::now().duration_since(since);
        if age < self.settings.offsets_retention {
            myself.send_after(self.settings.offsets_retention - age, || {
                GroupMsg::RetentionCheck
            });
            return false;
        }
        info!(group = %self.group_id, offsets = self.offsets.len(), "Committed offsets of an empty group expired.");
        self.offsets.clear();
        if let Err(err) = self.store.remove() {
            warn!(group = %self.group_id, %err, "Could not remove an expired group's file.");
        }
        self.state = GroupState::Dead;
        true
    }

    fn describe(&self) -> GroupDescription {
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.join_order);
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: self.protocol.clone().unwrap_or_default(),
            generation: self.generation,
            members: members
                .into_iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == self.protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
