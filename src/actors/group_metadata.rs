//! The group coordinator's membership made durable, as Kafka's group coordinator does:
//! a classic group's metadata (protocol, generation, leader, members with their
//! subscriptions and assignments) is stored when a generation completes, before SyncGroup
//! is answered, and when the group becomes empty; a consumer group's records (KIP-848)
//! whenever they change, before the heartbeat that changed them is answered. Both go
//! through the group's store (its file, or `__consumer_offsets`).
//!
//! On start the actor rebuilds the group from what its store replayed: a classic group
//! with members is Stable at its generation, a consumer group has its members at their
//! epochs, and every member's session starts anew. So a member that heartbeats after a
//! restart or a coordinator move goes on without rejoining.

use std::time::Duration;

use bytes::Bytes;
use ractor::ActorRef;
use tokio::time::Instant;
use tracing::{info, warn};

use super::group::{GroupCoordinatorState, Member};
use super::group_messages::{GroupMsg, GroupState, SyncResult};
use crate::coordinator::consumer_group::ConsumerGroup;
use crate::coordinator::group_metadata::{ClassicGroupValue, ClassicMemberValue, GroupMetadata};
use crate::coordinator::group_store::{GroupRecord, GroupStoreError};

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl GroupMsg {
    /// True for the messages that may change the group's membership (the others leave
    /// nothing new to store).
    pub(super) fn may_change_membership(&self) -> bool {
        matches!(
            self,
            GroupMsg::Join { .. }
                | GroupMsg::Sync { .. }
                | GroupMsg::Leave { .. }
                | GroupMsg::SessionCheck { .. }
                | GroupMsg::RebalanceDeadline { .. }
                | GroupMsg::InitialDelayOver { .. }
                | GroupMsg::ConsumerHeartbeat { .. }
                | GroupMsg::ConsumerSessionCheck { .. }
        )
    }
}

impl GroupCoordinatorState {
    /// A classic group's metadata as Kafka stores it: the completed generation while the
    /// group is Stable, its empty state once it is Empty; during a rebalance what was
    /// stored last stays.
    fn classic_metadata(&self) -> Option<ClassicGroupValue> {
        let stored = || self.offsets.metadata.classic.clone();
        match self.state {
            GroupState::Stable => {}
            GroupState::Empty if self.generation > 0 => {}
            GroupState::Empty
            | GroupState::PreparingRebalance
            | GroupState::CompletingRebalance => return stored(),
            GroupState::Dead => return None,
        }
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.join_order);
        let members = members
            .into_iter()
            .map(|(id, m)| ClassicMemberValue {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: millis(m.session_timeout),
                rebalance_timeout_ms: millis(m.rebalance_timeout),
                subscription: m.metadata_for(self.protocol.as_deref()).to_vec(),
                assignment: m.assignment.to_vec(),
            })
            .collect();
        Some(ClassicGroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members,
        })
    }

    /// What the group's store should hold of its membership now.
    fn metadata_now(&self) -> GroupMetadata {
        if self.state == GroupState::Dead {
            return GroupMetadata::default();
        }
        match &self.consumer {
            Some(group) => GroupMetadata {
                classic: None,
                consumer: group.records(),
            },
            None => GroupMetadata {
                classic: self.classic_metadata(),
                consumer: Default::default(),
            },
        }
    }

    /// Makes the group's membership durable when it changed since it last was.
    pub(super) async fn store_metadata(&mut self) -> Result<(), GroupStoreError> {
        let metadata = self.metadata_now();
        if metadata == self.offsets.metadata {
            return Ok(());
        }
        let mut next = self.offsets.clone();
        next.metadata = metadata.clone();
        let record = GroupRecord::Metadata { metadata };
        self.store
            .append(&self.group_id, record, &self.offsets, &next)
            .await?;
        self.offsets = next;
        Ok(())
    }

    /// After a message that may have changed the membership: stores it, and answers the
    /// SyncGroup requests of a generation that has just completed (Kafka answers them once
    /// the assignment is stored; when it cannot be, they get the store's error and the
    /// group rebalances).
    pub(super) async fn store_and_answer_syncs(&mut self, myself: &ActorRef<GroupMsg>) {
        let stored = self.store_metadata().await;
        if let Err(err) = &stored {
            warn!(group = %self.group_id, %err, "Could not make the group's membership durable.");
        }
        if self.state != GroupState::Stable {
            return;
        }
        let waiting: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.sync_reply.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        if waiting.is_empty() {
            return;
        }
        for id in &waiting {
            let result = match &stored {
                Ok(()) => self.sync_result(self.members[id].assignment.clone()),
                Err(err) => SyncResult {
                    error: err.code(),
                    ..SyncResult::default()
                },
            };
            if let Some(reply) = self.members.get_mut(id).and_then(|m| m.sync_reply.take()) {
                let _ = reply.send(result);
            }
        }
        if stored.is_err() {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
            self.prepare_rebalance(myself, "the group's assignment could not be stored");
        } else {
            info!(group = %self.group_id, generation = self.generation, "Group is stable.");
        }
    }

    /// Rebuilds the membership the store replayed (at the actor's start).
    pub(super) fn restore_metadata(&mut self, myself: &ActorRef<GroupMsg>) {
        let metadata = self.offsets.metadata.clone();
        let now = Instant::now();
        let consumer = ConsumerGroup::from_records(
            &self.group_id,
            self.settings.consumer.clone(),
            &metadata.consumer,
            now,
        );
        if let Some(group) = consumer {
            for id in group.members.keys() {
                if let Some(at) = group.next_check(id) {
                    let member_id = id.clone();
                    myself.send_after(at.saturating_duration_since(now), move || {
                        GroupMsg::ConsumerSessionCheck { member_id }
                    });
                }
            }
            if !group.members.is_empty() {
                self.empty_since = None;
            }
            if group.members.is_empty() {
                info!(group = %self.group_id, group_epoch = group.group_epoch, "Consumer group loaded empty.");
            } else {
                info!(group = %self.group_id, group_epoch = group.group_epoch, members = group.members.len(), "Consumer group loaded with its members.");
            }
            self.consumer = Some(group);
        } else if let Some(classic) = metadata.classic {
            self.restore_classic(myself, classic, now);
        }
    }

    fn restore_classic(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        classic: ClassicGroupValue,
        now: Instant,
    ) {
        let protocol_type = classic.protocol_type;
        self.generation = classic.generation.max(0);
        self.protocol_type = (!protocol_type.is_empty()).then(|| protocol_type.clone());
        self.protocol = classic.protocol;
        let (min, max) = (
            self.settings.min_session_timeout,
            self.settings.max_session_timeout,
        );
        for value in classic.members {
            let from_ms = |ms: i32| Duration::from_millis(ms.max(0) as u64);
            let session_timeout = from_ms(value.session_timeout_ms).clamp(min, max.max(min));
            let protocols = self
                .protocol
                .iter()
                .map(|name| (name.clone(), Bytes::from(value.subscription.clone())))
                .collect();
            self.joins += 1;
            if let Some(instance) = &value.instance_id {
                self.static_members
                    .insert(instance.clone(), value.member_id.clone());
            }
            let member = Member {
                instance_id: value.instance_id,
                client_id: value.client_id,
                client_host: value.client_host,
                session_timeout,
                rebalance_timeout: from_ms(value.rebalance_timeout_ms),
                protocol_type: protocol_type.clone(),
                protocols,
                assignment: Bytes::from(value.assignment),
                last_heartbeat: now,
                join_order: self.joins,
                join_reply: None,
                sync_reply: None,
            };
            self.members.insert(value.member_id.clone(), member);
            self.schedule_session_check(myself, &value.member_id, session_timeout);
        }
        if self.members.is_empty() {
            self.protocol = None;
            info!(group = %self.group_id, generation = self.generation, "Group loaded empty.");
            return;
        }
        self.leader = classic
            .leader
            .filter(|leader| self.members.contains_key(leader))
            .or_else(|| {
                self.members
                    .iter()
                    .min_by_key(|(_, m)| m.join_order)
                    .map(|(id, _)| id.clone())
            });
        self.state = GroupState::Stable;
        self.empty_since = None;
        info!(group = %self.group_id, generation = self.generation, members = self.members.len(), "Group loaded stable with its members.");
    }
}
