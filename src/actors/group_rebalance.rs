//! The rebalance half of the group coordinator: joining (dynamic and static members),
//! preparing and completing a rebalance, choosing the protocol and the leader.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ractor::{ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::{debug, info};

use super::group::{GroupCoordinatorState, Member};
use super::group_messages::{GroupMsg, GroupState, JoinRequest, JoinResult, SyncResult};

fn code(err: ResponseError) -> i16 {
    err.code()
}

impl Member {
    /// The member's metadata for `protocol` (empty when it has none for it).
    pub(super) fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

impl GroupCoordinatorState {
    pub(super) fn join(
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
            member.session_timeout = req.session_timeout;
        }
        self.touch_session(myself, &member_id);
        if let Some(member) = self.members.get_mut(&member_id) {
            let unchanged = member.protocols == req.protocols;
            member.rebalance_timeout = req.rebalance_timeout;
            member.protocols = req.protocols;
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
    pub(super) fn static_rejoin(
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

    pub(super) fn supports_one_of(&self, protocols: &[(String, Bytes)]) -> bool {
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    pub(super) fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let members = if leader == member_id {
            let mut all: Vec<_> = self.members.iter().collect();
            all.sort_by_key(|(_, m)| m.join_order);
            all.into_iter()
                .map(|(id, m)| {
                    let metadata = m.metadata_for(protocol.as_deref());
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

    pub(super) fn prepare_rebalance(&mut self, myself: &ActorRef<GroupMsg>, why: &str) {
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

    pub(super) fn maybe_complete_join(&mut self, myself: &ActorRef<GroupMsg>) {
        if self.state == GroupState::PreparingRebalance
            && !self.initial_delay_pending
            && self.members.values().all(|m| m.join_reply.is_some())
        {
            self.complete_join(myself);
        }
    }

    pub(super) fn complete_join(&mut self, myself: &ActorRef<GroupMsg>) {
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
    pub(super) fn select_protocol(&self) -> Option<String> {
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
}
