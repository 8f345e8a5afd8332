//! A KIP-848 consumer group as its records (`group_metadata::ConsumerGroupRecords`) and
//! back: what the group coordinator makes durable after each change, and the group it
//! rebuilds from them after a restart or on taking over a `__consumer_offsets` partition.
//!
//! A rebuilt member keeps its member id, epochs and partitions; its session starts anew
//! (as Kafka's does on loading), and a revocation it owed restarts its deadline.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::assignors::Assignment;
use super::consumer_group::{compile_regex, ConsumerGroup, ConsumerGroupSettings, ConsumerMember};
use super::current_assignment::{MemberAssignment, MemberState};
use super::group_metadata::{
    ConsumerGroupRecords, ConsumerGroupValue, ConsumerMemberValue, CurrentAssignmentValue,
};

/// A timeout read back from a record: negative values (never written) count as none.
fn millis(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

fn to_millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// An assignment read back from a record, without negative partitions (never written).
fn checked(assignment: &Assignment) -> Assignment {
    assignment
        .iter()
        .map(|(topic, ps)| (*topic, ps.iter().copied().filter(|p| *p >= 0).collect()))
        .collect()
}

impl ConsumerGroup {
    /// The group's records as they stand now.
    pub fn records(&self) -> ConsumerGroupRecords {
        let subscription_metadata = self
            .subscription_metadata
            .iter()
            .map(|(name, (id, partitions))| (name.clone(), *id, *partitions))
            .collect();
        let members = self
            .members
            .iter()
            .map(|(id, m)| {
                let value = ConsumerMemberValue {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: to_millis(m.rebalance_timeout),
                    subscribed_topic_names: m.subscribed_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.regex.as_ref().map(|(source, _)| source.clone()),
                    server_assignor: m.server_assignor.clone(),
                };
                (id.clone(), value)
            })
            .collect();
        let current = self
            .members
            .iter()
            .map(|(id, m)| {
                let a = &m.assignment;
                let value = CurrentAssignmentValue {
                    state: a.state,
                    member_epoch: a.member_epoch,
                    previous_member_epoch: a.previous_member_epoch,
                    assigned: a.assigned.clone(),
                    pending_revocation: a.pending_revocation.clone(),
                    left_static: m.left_static,
                };
                (id.clone(), value)
            })
            .collect();
        ConsumerGroupRecords {
            metadata: Some(ConsumerGroupValue {
                epoch: self.group_epoch,
                subscription_metadata,
            }),
            target_epoch: Some(self.assignment_epoch),
            members,
            targets: self.target.clone(),
            current,
        }
    }

    /// The group its records describe, every member's session starting at `now`; None
    /// when the records hold no consumer group.
    pub fn from_records(
        group_id: &str,
        settings: ConsumerGroupSettings,
        records: &ConsumerGroupRecords,
        now: Instant,
    ) -> Option<ConsumerGroup> {
        let metadata = records.metadata.as_ref()?;
        let mut group = ConsumerGroup::new(group_id, settings);
        group.group_epoch = metadata.epoch.max(0);
        group.assignment_epoch = records
            .target_epoch
            .unwrap_or(0)
            .clamp(0, group.group_epoch);
        group.subscription_metadata = metadata
            .subscription_metadata
            .iter()
            .map(|(name, id, partitions)| (name.clone(), (*id, (*partitions).max(0))))
            .collect();
        for (id, value) in &records.members {
            let member = rebuilt_member(group_id, id, value, records.current.get(id), now);
            if let Some(instance) = &member.instance_id {
                group.static_members.insert(instance.clone(), id.clone());
            }
            if let Some(target) = records.targets.get(id) {
                group.target.insert(id.clone(), checked(target));
            }
            group.members.insert(id.clone(), member);
        }
        Some(group)
    }
}

fn rebuilt_member(
    group_id: &str,
    member_id: &str,
    value: &ConsumerMemberValue,
    current: Option<&CurrentAssignmentValue>,
    now: Instant,
) -> ConsumerMember {
    let regex = value
        .subscribed_topic_regex
        .as_ref()
        .and_then(|source| match compile_regex(source) {
            Ok(re) => Some((source.clone(), re)),
            Err(err) => {
                warn!(group = %group_id, member = %member_id, %err, "A stored subscription regex does not compile; the member keeps its topic names only.");
                None
            }
        });
    let rebalance_timeout = millis(value.rebalance_timeout_ms);
    let (assignment, left_static) = match current {
        Some(c) => (
            MemberAssignment {
                state: c.state,
                member_epoch: c.member_epoch.max(0),
                previous_member_epoch: c.previous_member_epoch.max(0),
                assigned: checked(&c.assigned),
                pending_revocation: checked(&c.pending_revocation),
            },
            c.left_static,
        ),
        None => (MemberAssignment::joining(), false),
    };
    let revocation_deadline =
        (assignment.state == MemberState::UnrevokedPartitions).then(|| now + rebalance_timeout);
    ConsumerMember {
        instance_id: value.instance_id.clone(),
        rack_id: value.rack_id.clone(),
        client_id: value.client_id.clone(),
        client_host: value.client_host.clone(),
        rebalance_timeout,
        subscribed_names: value
            .subscribed_topic_names
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        regex,
        server_assignor: value.server_assignor.clone(),
        assignment,
        left_static,
        last_heartbeat: now,
        revocation_deadline,
    }
}
