//! The group coordinator's side of the consumer group protocol (KIP-848): heartbeats go
//! to the group's `ConsumerGroup` state machine, whose session and revocation deadlines
//! are this actor's timers. A group is either classic or consumer: an empty group may
//! change protocol as `group_consumer_migration_policy` allows (a group never used, or
//! just loaded with its offsets, always may); otherwise JoinGroup on a consumer group is
//! INCONSISTENT_GROUP_PROTOCOL and ConsumerGroupHeartbeat on a classic group with members
//! is GROUP_ID_NOT_FOUND, as Kafka answers when it cannot convert a group.

use kafka_protocol::ResponseError;
use ractor::ActorRef;
use tokio::time::Instant;
use tracing::{debug, info};

use super::group::GroupCoordinatorState;
use super::group_messages::{
    ConsumerGroupDescription, ConsumerMemberDescription, GroupDescription, GroupMsg, GroupState,
    GroupType,
};
use crate::coordinator::consumer_group::{
    ConsumerGroup, ConsumerHeartbeat, ConsumerHeartbeatResult, TopicCatalog,
};

impl GroupCoordinatorState {
    /// True when the group has never had members since it was loaded (nothing to migrate).
    fn untouched(&self) -> bool {
        self.generation == 0 && self.members.is_empty() && self.pending.is_empty()
    }

    /// Whether a JoinGroup may run the classic protocol here; an empty consumer group
    /// becomes classic when the policy allows a downgrade.
    pub(super) fn classic_join_allowed(&mut self) -> bool {
        let Some(consumer) = &self.consumer else {
            return true;
        };
        if !consumer.members.is_empty() || !self.settings.consumer.migration_policy.downgrade() {
            return false;
        }
        info!(group = %self.group_id, "An empty consumer group becomes a classic group (JoinGroup).");
        self.consumer = None;
        true
    }

    pub(super) fn consumer_heartbeat(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        request: ConsumerHeartbeat,
        topics: &dyn TopicCatalog,
    ) -> ConsumerHeartbeatResult {
        if self.consumer.is_none() {
            let empty = self.state == GroupState::Empty && self.members.is_empty();
            let may =
                self.untouched() || (empty && self.settings.consumer.migration_policy.upgrade());
            if !may || self.state == GroupState::Dead {
                return ConsumerHeartbeatResult {
                    error: ResponseError::GroupIdNotFound.code(),
                    error_message: Some(format!(
                        "Group {} is not a consumer group.",
                        self.group_id
                    )),
                    ..ConsumerHeartbeatResult::default()
                };
            }
            if !self.untouched() {
                info!(group = %self.group_id, "An empty classic group becomes a consumer group (ConsumerGroupHeartbeat).");
            }
            self.consumer = Some(ConsumerGroup::new(
                &self.group_id,
                self.settings.consumer.clone(),
            ));
        }
        let Some(group) = self.consumer.as_mut() else {
            return ConsumerHeartbeatResult::default();
        };
        let was_empty = group.members.is_empty();
        let epoch = group.group_epoch;
        let now = Instant::now();
        let result = group.heartbeat(request, topics, now);
        debug!(group = %self.group_id, error = result.error, member_epoch = result.member_epoch, "ConsumerGroupHeartbeat answered.");
        if group.group_epoch != epoch {
            info!(group = %self.group_id, group_epoch = group.group_epoch, members = group.members.len(), "The consumer group has a new target assignment.");
        }
        if let Some(at) = result
            .member_id
            .as_deref()
            .and_then(|id| group.next_check(id))
        {
            let member_id = result.member_id.clone().unwrap_or_default();
            myself.send_after(at.saturating_duration_since(now), move || {
                GroupMsg::ConsumerSessionCheck { member_id }
            });
        }
        let is_empty = group.members.is_empty();
        if was_empty && !is_empty {
            self.empty_since = None;
        } else if !was_empty && is_empty {
            self.consumer_group_emptied(myself);
        }
        result
    }

    pub(super) fn consumer_session_check(&mut self, myself: &ActorRef<GroupMsg>, member_id: &str) {
        let Some(group) = self.consumer.as_mut() else {
            return;
        };
        let Some(why) = group.expired(member_id, Instant::now()) else {
            return;
        };
        group.remove_member(member_id);
        info!(group = %self.group_id, member = %member_id, reason = why, group_epoch = group.group_epoch, "A consumer group member was removed; its partitions move.");
        if group.members.is_empty() {
            self.consumer_group_emptied(myself);
        }
    }

    fn consumer_group_emptied(&mut self, myself: &ActorRef<GroupMsg>) {
        self.empty_since = Some(Instant::now());
        if !self.offsets.committed.is_empty() {
            myself.send_after(self.settings.offsets_retention, || GroupMsg::RetentionCheck);
        }
        info!(group = %self.group_id, "The consumer group is empty.");
    }

    /// True while consumer group members exist (offsets then neither expire nor delete).
    pub(super) fn has_consumer_members(&self) -> bool {
        self.consumer
            .as_ref()
            .is_some_and(|c| !c.members.is_empty())
    }

    /// ListGroups and DescribeGroups' view of a consumer group.
    pub(super) fn consumer_group_description(&self) -> Option<GroupDescription> {
        let group = self.consumer.as_ref()?;
        Some(GroupDescription {
            group_id: self.group_id.clone(),
            group_type: GroupType::Consumer,
            consumer_state: Some(group.state_name()),
            state: self.state,
            protocol_type: "consumer".into(),
            protocol: String::new(),
            generation: group.group_epoch,
            members: Vec::new(),
        })
    }

    pub(super) fn consumer_describe(&self) -> Option<ConsumerGroupDescription> {
        let group = self.consumer.as_ref()?;
        let members = group
            .members
            .iter()
            .map(|(id, m)| ConsumerMemberDescription {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.reported_epoch(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_names.iter().cloned().collect(),
                subscribed_topic_regex: m.regex.as_ref().map(|(s, _)| s.clone()),
                assignment: m.assignment.assigned.clone(),
                target_assignment: group.target.get(id).cloned().unwrap_or_default(),
            })
            .collect();
        Some(ConsumerGroupDescription {
            state: group.state_name(),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.assignor(),
            members,
        })
    }

    /// OffsetCommit and TxnOffsetCommit on a consumer group check the member epoch.
    pub(super) fn check_consumer_commit(&self, member_id: &str, epoch: i32) -> Option<i16> {
        let group = self.consumer.as_ref()?;
        Some(match group.validate_offset_commit(member_id, epoch) {
            Ok(()) => 0,
            Err(code) => code,
        })
    }
}
