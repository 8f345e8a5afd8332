//! The durable membership of a consumer group, as Kafka's group coordinator records it:
//! a classic group's `GroupMetadataValue` (protocol, generation, leader and every member
//! with its subscription and assignment, written when a generation completes and when the
//! group becomes empty), and a KIP-848 consumer group's records (ConsumerGroupMetadata,
//! ConsumerGroupMemberMetadata, ConsumerGroupTargetAssignmentMetadata and -Member,
//! ConsumerGroupCurrentMemberAssignment), each keyed so that compaction keeps the latest.
//!
//! `GroupMetadata` holds one value per key. The group's file stores it whole on each
//! change; `__consumer_offsets` gets only the keys whose values changed
//! (`changed_entries`), and tombstones for the keys that went away.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::assignors::Assignment;
use super::current_assignment::MemberState;

/// A member of a classic group (Kafka's GroupMetadataValue.MemberMetadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A classic group (Kafka's GroupMetadataValue): no members when it is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicGroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order.
    pub members: Vec<ClassicMemberValue>,
}

/// ConsumerGroupMetadataValue: the group epoch, with the subscribed topics as last seen
/// (Kafka's ConsumerGroupPartitionMetadata): name, id, partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupValue {
    pub epoch: i32,
    pub subscription_metadata: Vec<(String, uuid::Uuid, i32)>,
}

/// ConsumerGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
}

/// ConsumerGroupCurrentMemberAssignmentValue (`left_static`: Kafka's member epoch -2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentAssignmentValue {
    pub state: MemberState,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub left_static: bool,
}

/// A KIP-848 consumer group's records, one value per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupRecords {
    pub metadata: Option<ConsumerGroupValue>,
    /// ConsumerGroupTargetAssignmentMetadataValue: the target's epoch.
    pub target_epoch: Option<i32>,
    pub members: BTreeMap<String, ConsumerMemberValue>,
    /// ConsumerGroupTargetAssignmentMemberValue, by member.
    pub targets: BTreeMap<String, Assignment>,
    pub current: BTreeMap<String, CurrentAssignmentValue>,
}

/// A group's membership as last made durable; empty when none was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMetadata {
    pub classic: Option<ClassicGroupValue>,
    pub consumer: ConsumerGroupRecords,
}

impl GroupMetadata {
    pub fn is_empty(&self) -> bool {
        *self == GroupMetadata::default()
    }
}

/// The keys of the records, below the group (`offsets_topic` puts the group id in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetadataKey {
    Classic,
    ConsumerGroup,
    Member(String),
    TargetMetadata,
    TargetMember(String),
    CurrentAssignment(String),
}

/// One value of a record, of the kind its key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataValue {
    Classic(ClassicGroupValue),
    ConsumerGroup(ConsumerGroupValue),
    Member(ConsumerMemberValue),
    TargetMetadata(i32),
    TargetMember(Assignment),
    CurrentAssignment(CurrentAssignmentValue),
}

impl GroupMetadata {
    /// Every key with its value.
    pub fn entries(&self) -> BTreeMap<MetadataKey, MetadataValue> {
        let mut out = BTreeMap::new();
        if let Some(classic) = &self.classic {
            out.insert(
                MetadataKey::Classic,
                MetadataValue::Classic(classic.clone()),
            );
        }
        let c = &self.consumer;
        if let Some(value) = &c.metadata {
            let value = MetadataValue::ConsumerGroup(value.clone());
            out.insert(MetadataKey::ConsumerGroup, value);
        }
        if let Some(epoch) = c.target_epoch {
            let value = MetadataValue::TargetMetadata(epoch);
            out.insert(MetadataKey::TargetMetadata, value);
        }
        for (id, value) in &c.members {
            let value = MetadataValue::Member(value.clone());
            out.insert(MetadataKey::Member(id.clone()), value);
        }
        for (id, value) in &c.targets {
            let value = MetadataValue::TargetMember(value.clone());
            out.insert(MetadataKey::TargetMember(id.clone()), value);
        }
        for (id, value) in &c.current {
            let value = MetadataValue::CurrentAssignment(value.clone());
            out.insert(MetadataKey::CurrentAssignment(id.clone()), value);
        }
        out
    }

    /// The keys whose value differs from `before` (with the new value), and the keys
    /// gone since (None: a tombstone).
    pub fn changed_entries(
        before: &GroupMetadata,
        after: &GroupMetadata,
    ) -> Vec<(MetadataKey, Option<MetadataValue>)> {
        let old = before.entries();
        let new = after.entries();
        let mut out: Vec<_> = new
            .iter()
            .filter(|(key, value)| old.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), Some(value.clone())))
            .collect();
        out.extend(
            old.keys()
                .filter(|key| !new.contains_key(*key))
                .map(|key| (key.clone(), None)),
        );
        out
    }

    /// Applies one replayed record (None: a tombstone).
    pub fn apply(&mut self, key: MetadataKey, value: Option<MetadataValue>) {
        let c = &mut self.consumer;
        match (key, value) {
            (MetadataKey::Classic, Some(MetadataValue::Classic(v))) => self.classic = Some(v),
            (MetadataKey::Classic, _) => self.classic = None,
            (MetadataKey::ConsumerGroup, Some(MetadataValue::ConsumerGroup(v))) => {
                c.metadata = Some(v)
            }
            (MetadataKey::ConsumerGroup, _) => c.metadata = None,
            (MetadataKey::TargetMetadata, Some(MetadataValue::TargetMetadata(v))) => {
                c.target_epoch = Some(v)
            }
            (MetadataKey::TargetMetadata, _) => c.target_epoch = None,
            (MetadataKey::Member(id), Some(MetadataValue::Member(v))) => {
                c.members.insert(id, v);
            }
            (MetadataKey::Member(id), _) => {
                c.members.remove(&id);
            }
            (MetadataKey::TargetMember(id), Some(MetadataValue::TargetMember(v))) => {
                c.targets.insert(id, v);
            }
            (MetadataKey::TargetMember(id), _) => {
                c.targets.remove(&id);
            }
            (MetadataKey::CurrentAssignment(id), Some(MetadataValue::CurrentAssignment(v))) => {
                c.current.insert(id, v);
            }
            (MetadataKey::CurrentAssignment(id), _) => {
                c.current.remove(&id);
            }
        }
    }
}
