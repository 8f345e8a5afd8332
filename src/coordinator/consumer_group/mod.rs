//! A consumer group of Kafka 4's consumer group protocol (KIP-848, Kafka's ConsumerGroup
//! and the heartbeat half of GroupMetadataManager): members, the group epoch, the target
//! assignment and its epoch, and each member's reconciliation towards it. The broker
//! assigns (`assignors`); members learn their partitions from ConsumerGroupHeartbeat.
//!
//! A plain state machine: the group coordinator actor owns it, feeds it heartbeats with
//! the current topics and the time, and runs its timers. Its records (`records`, in
//! `consumer_group_records`) are made durable by the actor through the group's store, and
//! a group is rebuilt from them after a restart or a coordinator move, so its members go
//! on with their member ids and epochs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kafka_protocol::ResponseError;
use regex::Regex;
use tokio::time::Instant;
use uuid::Uuid;

use super::assignors::{self, Assignment, MemberSpec};
pub use super::consumer_group_config::{check_config, ConsumerGroupSettings, MigrationPolicy};
pub use super::consumer_group_member::{compile_regex, ConsumerMember};
use super::current_assignment::{is_subset, reconcile, MemberAssignment, MemberState};

/// Topics a regex never matches (Kafka's internal topics).
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// What the group needs to know of the topics: name -> (id, partitions).
pub trait TopicCatalog: Send + Sync {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic's name (regex subscriptions are matched against them).
    fn names(&self) -> Vec<String>;
}

impl TopicCatalog for BTreeMap<String, (Uuid, i32)> {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.get(name).copied()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A ConsumerGroupHeartbeat, in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns (None: not sent).
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerHeartbeatResult {
    pub error: i16,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed, on a join and when the member sent what it owns.
    pub assignment: Option<Assignment>,
}

type Refusal = (ResponseError, String);

pub struct ConsumerGroup {
    pub group_id: String,
    pub settings: ConsumerGroupSettings,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// The target assignment, by member, at `assignment_epoch`.
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics as last seen: name -> (id, partitions). A change bumps the
    /// group epoch, so new topics or partitions get assigned.
    pub subscription_metadata: BTreeMap<String, (Uuid, i32)>,
}

impl ConsumerGroup {
    pub fn new(group_id: &str, settings: ConsumerGroupSettings) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            settings,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            subscription_metadata: BTreeMap::new(),
        }
    }

    /// Kafka's consumer group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch != self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.assignment.member_epoch != self.assignment_epoch
                || m.assignment.state != MemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor of the group: the one most members ask for, else the default.
    pub fn assignor(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *counts.entry(a.as_str()).or_default() += 1;
            }
        }
        let default = self
            .settings
            .assignors
            .first()
            .map_or("uniform", |s| s.as_str());
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map_or(default, |(name, _)| name)
            .to_string()
    }

    pub fn heartbeat(
        &mut self,
        req: ConsumerHeartbeat,
        catalog: &dyn TopicCatalog,
        now: Instant,
    ) -> ConsumerHeartbeatResult {
        match self.try_heartbeat(req, catalog, now) {
            Ok(result) => result,
            Err((error, message)) => ConsumerHeartbeatResult {
                error: error.code(),
                error_message: Some(message),
                ..ConsumerHeartbeatResult::default()
            },
        }
    }

    fn try_heartbeat(
        &mut self,
        req: ConsumerHeartbeat,
        catalog: &dyn TopicCatalog,
        now: Instant,
    ) -> Result<ConsumerHeartbeatResult, Refusal> {
        let regex = self.validate(&req)?;
        if req.member_epoch == -1 || req.member_epoch == -2 {
            return self.leave(&req, now);
        }
        let (member_id, joined) = self.admit(&req, now)?;
        let interval = self.interval_ms();
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err((ResponseError::UnknownMemberId, "Member vanished.".into()));
        };
        let mut changed = joined;
        if let Some(names) = req.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            changed |= names != member.subscribed_names;
            member.subscribed_names = names;
        }
        if let Some(source) = req.subscribed_topic_regex {
            let before = member.regex.as_ref().map(|(s, _)| s.as_str());
            changed |= before != Some(source.as_str());
            member.regex = regex.map(|re| (source, re));
        }
        if req.server_assignor.is_some() && req.server_assignor != member.server_assignor {
            changed = true;
            member.server_assignor = req.server_assignor;
        }
        if req.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        }
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.rack_id = req.rack_id.or(member.rack_id.take());
        member.last_heartbeat = now;
        if self.refresh_metadata(catalog) || changed {
            self.group_epoch += 1;
        }
        self.compute_target();
        let before = self.members[&member_id].assignment.clone();
        let after = self.reconcile_member(&member_id, req.owned.as_ref(), now);
        let send_assignment =
            req.member_epoch == 0 || req.owned.is_some() || before.assigned != after.assigned;
        Ok(ConsumerHeartbeatResult {
            member_id: Some(member_id),
            member_epoch: after.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: send_assignment.then_some(after.assigned),
            ..ConsumerHeartbeatResult::default()
        })
    }

    fn interval_ms(&self) -> i32 {
        i32::try_from(self.settings.heartbeat_interval.as_millis()).unwrap_or(i32::MAX)
    }

    /// Kafka's request checks; returns the compiled regex when one was sent.
    fn validate(&self, req: &ConsumerHeartbeat) -> Result<Option<Regex>, Refusal> {
        let invalid = |m: &str| Err((ResponseError::InvalidRequest, m.to_string()));
        match req.member_epoch {
            0 => {
                if req.rebalance_timeout_ms == -1 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                    return invalid("TopicPartitions must be empty when (re-)joining.");
                }
                if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                    return invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    );
                }
            }
            -2 if req.instance_id.is_none() => return invalid("InstanceId can't be null."),
            e if e < -2 => return invalid("MemberEpoch is invalid."),
            e if e != 0 && req.member_id.is_empty() => return invalid("MemberId can't be empty."),
            _ => {}
        }
        if let Some(name) = &req.server_assignor {
            if !self.settings.assignors.iter().any(|a| a == name) {
                let known = self.settings.assignors.join(", ");
                return Err((
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {name} is not supported. Supported assignors: {known}."
                    ),
                ));
            }
        }
        match &req.subscribed_topic_regex {
            Some(source) if !source.is_empty() => compile_regex(source).map(Some).map_err(|err| {
                let message = format!(
                    "SubscribedTopicRegex `{source}` is not a valid regular expression: {err}."
                );
                (ResponseError::InvalidRegularExpression, message)
            }),
            _ => Ok(None),
        }
    }

    /// The member this heartbeat is from (created on a join), and whether it is new.
    fn admit(&mut self, req: &ConsumerHeartbeat, now: Instant) -> Result<(String, bool), Refusal> {
        let unknown = |id: &str, group: &str| {
            let message = format!("Member {id} is not a member of group {group}.");
            (ResponseError::UnknownMemberId, message)
        };
        if req.member_epoch > 0 {
            let Some(member) = self.members.get(&req.member_id) else {
                return Err(unknown(&req.member_id, &self.group_id));
            };
            if let Some(instance) = &req.instance_id {
                match self.static_members.get(instance) {
                    Some(id) if *id == req.member_id => {}
                    Some(_) => {
                        let message = format!("Static member {} with instance id {instance} was fenced by another member.", req.member_id);
                        return Err((ResponseError::FencedInstanceId, message));
                    }
                    None => return Err(unknown(&req.member_id, &self.group_id)),
                }
            }
            let current = member.assignment.member_epoch;
            let previous_ok = req.member_epoch == member.assignment.previous_member_epoch
                && req
                    .owned
                    .as_ref()
                    .is_some_and(|o| is_subset(o, &member.assignment.assigned));
            if member.left_static
                || req.member_epoch > current
                || (req.member_epoch < current && !previous_ok)
            {
                let message = format!(
                    "The consumer group member has a greater member epoch ({}) than the one known by the group coordinator ({current}), or a smaller one that is not the previous epoch.",
                    req.member_epoch
                );
                return Err((ResponseError::FencedMemberEpoch, message));
            }
            return Ok((req.member_id.clone(), false));
        }
        // Epoch 0: a join, or a rejoin whose answer was lost.
        let member_id = if req.member_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            req.member_id.clone()
        };
        if let Some(instance) = &req.instance_id {
            if let Some(old) = self.static_members.get(instance).cloned() {
                if old == member_id {
                    return Ok((member_id, false));
                }
                let away = self.members.get(&old).is_some_and(|m| m.left_static);
                if !away {
                    let message =
                        format!("Static member {old} with instance id {instance} is not released.");
                    return Err((ResponseError::UnreleasedInstanceId, message));
                }
                // The static member comes back under a new member id with its partitions.
                if let Some(mut member) = self.members.remove(&old) {
                    member.left_static = false;
                    member.last_heartbeat = now;
                    self.members.insert(member_id.clone(), member);
                }
                if let Some(target) = self.target.remove(&old) {
                    self.target.insert(member_id.clone(), target);
                }
                self.static_members
                    .insert(instance.clone(), member_id.clone());
                return Ok((member_id, false));
            }
        }
        if self.members.contains_key(&member_id) {
            return Ok((member_id, false));
        }
        if let Some(instance) = &req.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let member = ConsumerMember {
            instance_id: req.instance_id.clone(),
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
            subscribed_names: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            assignment: MemberAssignment::joining(),
            left_static: false,
            last_heartbeat: now,
            revocation_deadline: None,
        };
        self.members.insert(member_id.clone(), member);
        Ok((member_id, true))
    }

    fn leave(
        &mut self,
        req: &ConsumerHeartbeat,
        now: Instant,
    ) -> Result<ConsumerHeartbeatResult, Refusal> {
        let member_id = match &req.instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(id) if req.member_id.is_empty() || *id == req.member_id => id.clone(),
                Some(_) => {
                    let message = format!("Static member {} with instance id {instance} was fenced by another member.", req.member_id);
                    return Err((ResponseError::FencedInstanceId, message));
                }
                None => {
                    let message = format!("Instance id {instance} is unknown.");
                    return Err((ResponseError::UnknownMemberId, message));
                }
            },
            None => req.member_id.clone(),
        };
        if !self.members.contains_key(&member_id) {
            let message = format!(
                "Member {member_id} is not a member of group {}.",
                self.group_id
            );
            return Err((ResponseError::UnknownMemberId, message));
        }
        if req.member_epoch == -2 {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.left_static = true;
                member.last_heartbeat = now;
            }
        } else {
            self.remove_member(&member_id);
        }
        Ok(ConsumerHeartbeatResult {
            member_id: Some(member_id),
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            ..ConsumerHeartbeatResult::default()
        })
    }

    /// Removes a member (left, or fenced by a timeout): the group epoch moves and a new
    /// target assignment gives its partitions to the others.
    pub fn remove_member(&mut self, member_id: &str) -> bool {
        let Some(member) = self.members.remove(member_id) else {
            return false;
        };
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
        self.compute_target();
        true
    }

    /// The member whose session or revocation deadline has passed, if `member_id` has.
    pub fn expired(&self, member_id: &str, now: Instant) -> Option<&'static str> {
        let member = self.members.get(member_id)?;
        if now.duration_since(member.last_heartbeat) >= self.settings.session_timeout {
            return Some("its session timed out");
        }
        if member.revocation_deadline.is_some_and(|d| now >= d) {
            return Some("it did not revoke its partitions within its rebalance timeout");
        }
        None
    }

    /// When `member_id` should next be checked for expiry.
    pub fn next_check(&self, member_id: &str) -> Option<Instant> {
        let member = self.members.get(member_id)?;
        let session = member.last_heartbeat + self.settings.session_timeout;
        Some(
            member
                .revocation_deadline
                .map_or(session, |d| d.min(session)),
        )
    }

    /// Resolves every member's subscription against the topics; true when that changed
    /// (the group epoch must move).
    fn refresh_metadata(&mut self, catalog: &dyn TopicCatalog) -> bool {
        let mut metadata = BTreeMap::new();
        let regexes = self.members.values().any(|m| m.regex.is_some());
        let names: BTreeSet<String> = if regexes {
            catalog
                .names()
                .into_iter()
                .filter(|n| !INTERNAL_TOPICS.contains(&n.as_str()))
                .filter(|n| self.members.values().any(|m| m.subscribes_to(n)))
                .collect()
        } else {
            self.members
                .values()
                .flat_map(|m| m.subscribed_names.iter().cloned())
                .collect()
        };
        for name in names {
            if let Some(topic) = catalog.topic(&name) {
                metadata.insert(name, topic);
            }
        }
        if metadata == self.subscription_metadata {
            return false;
        }
        self.subscription_metadata = metadata;
        true
    }

    /// A new target assignment when the group epoch has moved past it.
    fn compute_target(&mut self) {
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        let topics: BTreeMap<Uuid, i32> = self.subscription_metadata.values().copied().collect();
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .iter()
            .map(|(id, m)| {
                let subscribed = self
                    .subscription_metadata
                    .iter()
                    .filter(|(name, _)| m.subscribes_to(name))
                    .map(|(_, (topic, _))| *topic)
                    .collect();
                let current = self.target.get(id).cloned().unwrap_or_default();
                (
                    id.clone(),
                    MemberSpec {
                        subscribed,
                        current,
                    },
                )
            })
            .collect();
        self.target = assignors::assign(&self.assignor(), &specs, &topics);
        self.assignment_epoch = self.group_epoch;
    }

    fn reconcile_member(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        now: Instant,
    ) -> MemberAssignment {
        let empty = Assignment::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let members = &self.members;
        let held_elsewhere = |topic: Uuid, p: i32| {
            members
                .iter()
                .any(|(id, m)| id != member_id && m.assignment.holds(topic, p))
        };
        let Some(member) = members.get(member_id) else {
            return MemberAssignment::joining();
        };
        let next = reconcile(
            &member.assignment,
            self.assignment_epoch,
            target,
            owned,
            held_elsewhere,
        );
        let Some(member) = self.members.get_mut(member_id) else {
            return next;
        };
        member.revocation_deadline = match next.state {
            MemberState::UnrevokedPartitions => Some(
                member
                    .revocation_deadline
                    .unwrap_or(now + member.rebalance_timeout),
            ),
            _ => None,
        };
        member.assignment = next.clone();
        next
    }

    /// OffsetCommit / TxnOffsetCommit for this group (Kafka's validateOffsetCommit): a
    /// commit without a member only while the group is empty; else the member's current
    /// epoch, or STALE_MEMBER_EPOCH.
    pub fn validate_offset_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        if member_epoch != member.assignment.member_epoch || member.left_static {
            return Err(ResponseError::StaleMemberEpoch.code());
        }
        Ok(())
    }

    /// OffsetFetch v9 naming a member (Kafka's validateOffsetFetch): the member must exist
    /// (UNKNOWN_MEMBER_ID) at that epoch (STALE_MEMBER_EPOCH).
    pub fn validate_offset_fetch(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        match self.members.get(member_id) {
            None => Err(ResponseError::UnknownMemberId.code()),
            Some(m) if m.reported_epoch() != member_epoch => {
                Err(ResponseError::StaleMemberEpoch.code())
            }
            Some(_) => Ok(()),
        }
    }

    /// True when some member subscribes to `topic` (OffsetDelete refuses those).
    pub fn subscribed_to(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.subscribes_to(topic))
    }
}

#[cfg(test)]
mod tests;
