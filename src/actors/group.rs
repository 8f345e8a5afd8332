//! Group coordinator actor: one per consumer group, created on demand by the registry.
//!
//! Owns the group's membership, generation, chosen protocol, leader, assignments and
//! committed offsets, all durable through its store (its own record file, fsynced before
//! a commit is answered, or `__consumer_offsets`); membership as `group_metadata` says. Runs Kafka's classic protocol: Empty, PreparingRebalance,
//! CompletingRebalance, Stable, Dead; session and rebalance timeouts and the initial
//! rebalance delay are this actor's own timers (tokio time, so tests can pause the clock).
//! Static members (group.instance.id) rejoin without a rebalance. Protocol metadata and
//! assignments pass through untouched, so the clients' assignors do the assigning.
//!
//! Accepts `GroupMsg` from connection handlers; calls nobody.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{info, warn};

pub use super::group_messages::*;
use crate::coordinator::consumer_group::ConsumerHeartbeatResult;
use crate::coordinator::group_store::{GroupFile, GroupOffsets, GroupStore};

pub(super) struct Member {
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_heartbeat: Instant,
    pub(super) join_order: u64,
    pub(super) join_reply: Option<RpcReplyPort<JoinResult>>,
    pub(super) sync_reply: Option<RpcReplyPort<SyncResult>>,
}

pub struct GroupCoordinatorState {
    pub(super) group_id: String,
    pub(super) settings: GroupSettings,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: HashMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub(super) pending: HashMap<String, Instant>,
    /// group.instance.id -> current member id.
    pub(super) static_members: HashMap<String, String>,
    pub(super) offsets: GroupOffsets,
    pub(super) store: GroupStore,
    pub(super) rebalance: u64,
    pub(super) initial_delay_pending: bool,
    pub(super) joins: u64,
    pub(super) empty_since: Option<Instant>,
    /// Some: the group runs the consumer group protocol (KIP-848, `group_consumer`);
    /// then the classic membership above stays empty.
    pub(super) consumer: Option<crate::coordinator::consumer_group::ConsumerGroup>,
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
        let (store, offsets) = match args.log {
            Some(logged) => (GroupStore::Log(logged.log), logged.offsets),
            None => {
                let (file, offsets) = GroupFile::open(args.storage, &args.dir, &args.group_id)?;
                (GroupStore::File(file), offsets)
            }
        };
        let mut state = GroupCoordinatorState {
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
            consumer: None,
        };
        state.restore_metadata(&myself);
        if !state.offsets.committed.is_empty() {
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
        let _timing = crate::metrics::time_handling::<Self::Msg>();
        let membership = message.may_change_membership();
        match message {
            GroupMsg::Join { request, reply } => {
                if s.classic_join_allowed() {
                    s.join(&myself, request, reply)
                } else {
                    let _ = reply.send(JoinResult {
                        error: code(ResponseError::InconsistentGroupProtocol),
                        generation: -1,
                        member_id: request.member_id,
                        ..JoinResult::default()
                    });
                }
            }
            GroupMsg::ConsumerHeartbeat {
                request,
                topics,
                reply,
            } => {
                let mut result = s.consumer_heartbeat(&myself, request, topics.as_ref());
                if let Err(err) = s.store_metadata().await {
                    warn!(group = %s.group_id, %err, "Could not make the consumer group's records durable.");
                    result = ConsumerHeartbeatResult {
                        error: err.code(),
                        ..ConsumerHeartbeatResult::default()
                    };
                }
                let _ = reply.send(result);
            }
            GroupMsg::ConsumerDescribe { reply } => {
                let _ = reply.send(s.consumer_describe());
            }
            GroupMsg::ConsumerFetchCheck {
                member_id,
                member_epoch,
                reply,
            } => {
                let checked = s.consumer.as_ref().map_or(Ok(()), |g| {
                    g.validate_offset_fetch(&member_id, member_epoch)
                });
                let _ = reply.send(checked.err().unwrap_or(0));
            }
            GroupMsg::ConsumerSessionCheck { member_id } => {
                s.consumer_session_check(&myself, &member_id)
            }
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
                let result = s
                    .commit(
                        &myself,
                        &member_id,
                        instance_id.as_deref(),
                        generation,
                        offsets,
                    )
                    .await;
                let _ = reply.send(result);
            }
            GroupMsg::FetchOffsets { partitions, reply } => {
                let found = match partitions {
                    None => s
                        .offsets
                        .committed
                        .iter()
                        .map(|(tp, o)| (tp.clone(), Some(o.clone())))
                        .collect(),
                    Some(list) => list
                        .into_iter()
                        .map(|tp| {
                            let o = s.offsets.committed.get(&tp).cloned();
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
                let result = s.delete_group().await;
                let _ = reply.send(result);
                if result == 0 {
                    myself.stop(Some("group deleted".into()));
                }
            }
            GroupMsg::DeleteOffsets { partitions, reply } => {
                let _ = reply.send(s.delete_offsets(partitions).await);
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
            GroupMsg::TxnCommit {
                producer_id,
                member_id,
                instance_id,
                generation,
                offsets,
                reply,
            } => {
                let result = s
                    .txn_commit(
                        producer_id,
                        &member_id,
                        instance_id.as_deref(),
                        generation,
                        offsets,
                    )
                    .await;
                let _ = reply.send(result);
            }
            GroupMsg::TxnEnd {
                producer_id,
                commit,
                reply,
            } => {
                let _ = reply.send(s.txn_end(&myself, producer_id, commit).await);
            }
            GroupMsg::UnstablePartitions { reply } => {
                let _ = reply.send(s.unstable_partitions());
            }
            GroupMsg::RetentionCheck => {
                if s.expire_offsets(&myself).await {
                    myself.stop(Some("offsets expired".into()));
                }
            }
        }
        if membership {
            s.store_and_answer_syncs(&myself).await;
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
    pub(super) fn new_member_id(&self, client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    pub(super) fn schedule_session_check(
        &self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        after: Duration,
    ) {
        let member_id = member_id.to_string();
        myself.send_after(after, move || GroupMsg::SessionCheck { member_id });
    }

    /// A sign of life from a member: its session restarts now, and a check is due when it
    /// would run out. Every restart of a session goes through here, so a member is never
    /// left without a pending check (a member that synced and then died used to stay
    /// forever: the check its join scheduled saw the newer sync and gave up).
    pub(super) fn touch_session(&mut self, myself: &ActorRef<GroupMsg>, member_id: &str) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = Instant::now();
            let session = member.session_timeout;
            self.schedule_session_check(myself, member_id, session);
        }
    }

    pub(super) fn become_empty(&mut self, myself: &ActorRef<GroupMsg>) {
        self.state = GroupState::Empty;
        self.protocol = None;
        self.protocol_type = None;
        self.leader = None;
        self.empty_since = Some(Instant::now());
        if !self.offsets.committed.is_empty() {
            myself.send_after(self.settings.offsets_retention, || GroupMsg::RetentionCheck);
        }
        info!(group = %self.group_id, generation = self.generation, "Group is empty.");
    }

    pub(super) fn remove_member(&mut self, member_id: &str, why: &str) {
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
    pub(super) fn check_member(
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
    pub(super) fn sync(
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
                }
                self.touch_session(myself, &member_id);
                if self.leader.as_deref() == Some(member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, member) in self.members.iter_mut() {
                        member.assignment = given.remove(id).unwrap_or_default();
                    }
                    // Answered once the assignment is stored (`store_and_answer_syncs`).
                    self.state = GroupState::Stable;
                }
            }
            GroupState::Empty | GroupState::Dead => {
                fail(reply, code(ResponseError::UnknownMemberId))
            }
        }
    }

    pub(super) fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        self.touch_session(myself, member_id);
        if let Err(error) = self.check_member(member_id, instance_id, generation) {
            return error;
        }
        match self.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ => 0,
        }
    }

    pub(super) fn session_check(&mut self, myself: &ActorRef<GroupMsg>, member_id: &str) {
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

    pub(super) fn after_departure(&mut self, myself: &ActorRef<GroupMsg>, why: &str) {
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

    pub(super) fn leave(
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

    pub(super) fn describe(&self) -> GroupDescription {
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.join_order);
        if let Some(description) = self.consumer_group_description() {
            return description;
        }
        GroupDescription {
            group_id: self.group_id.clone(),
            group_type: GroupType::Classic,
            consumer_state: None,
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
                    metadata: m.metadata_for(self.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
