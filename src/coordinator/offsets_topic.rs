//! The records of the internal topic `__consumer_offsets` (cluster mode): which partition
//! holds a group (Kafka's `abs(groupId.hashCode) % offsets.topic.num.partitions`), how a
//! group's change becomes keyed records, and how a partition's records replay into every
//! group's offsets when a broker becomes that partition's leader.
//!
//! Keys follow Kafka's compaction model: one key per (group, topic, partition) committed
//! offset, its latest value wins and a tombstone deletes it; offsets committed inside a
//! transaction not yet ended are one key per (group, producer id) holding all of them.
//! Keys and values are MessagePack (rmp-serde) of the types below, not Kafka's binary
//! schemas: tools that decode Kafka's own `__consumer_offsets` records cannot read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::group_metadata::{GroupMetadata, MetadataKey, MetadataValue};
use super::group_store::{apply, CommittedOffset, GroupOffsets, GroupRecord};
use super::internal_topic::for_each_keyed_record;
use crate::storage::batch_builder::build_batch;
use crate::storage::StorageError;

/// The internal topic's name, as in Kafka.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The largest decompressed batch body replay accepts (a batch this broker wrote holds at
/// most one group change, which the group split at 4 MiB of entries).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Java's `String.hashCode` over the id's UTF-16 code units.
pub fn java_hash_code(id: &str) -> i32 {
    id.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// The `__consumer_offsets` partition that holds `group_id`, as Kafka's
/// `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount` (Utils.abs maps
/// i32::MIN to 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = java_hash_code(group_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetsKey {
    /// A committed offset; its value an `OffsetValue`, a tombstone when deleted.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// The offsets a transaction committed that wait for its end; its value a
    /// `PendingValue`, a tombstone once the transaction ended.
    PendingTxn {
        group: String,
        producer_id: i64,
    },
    /// A classic group's metadata (Kafka's GroupMetadataKey); its value a
    /// `ClassicGroupValue`.
    GroupMetadata {
        group: String,
    },
    /// The KIP-848 records of a consumer group, as Kafka keys them; the values are those
    /// of `group_metadata`.
    ConsumerGroupMetadata {
        group: String,
    },
    ConsumerGroupMemberMetadata {
        group: String,
        member: String,
    },
    ConsumerGroupTargetAssignmentMetadata {
        group: String,
    },
    ConsumerGroupTargetAssignmentMember {
        group: String,
        member: String,
    },
    ConsumerGroupCurrentMemberAssignment {
        group: String,
        member: String,
    },
}

impl OffsetsKey {
    fn of_metadata(group: &str, key: MetadataKey) -> OffsetsKey {
        let group = group.to_string();
        match key {
            MetadataKey::Classic => OffsetsKey::GroupMetadata { group },
            MetadataKey::ConsumerGroup => OffsetsKey::ConsumerGroupMetadata { group },
            MetadataKey::Member(member) => {
                OffsetsKey::ConsumerGroupMemberMetadata { group, member }
            }
            MetadataKey::TargetMetadata => {
                OffsetsKey::ConsumerGroupTargetAssignmentMetadata { group }
            }
            MetadataKey::TargetMember(member) => {
                OffsetsKey::ConsumerGroupTargetAssignmentMember { group, member }
            }
            MetadataKey::CurrentAssignment(member) => {
                OffsetsKey::ConsumerGroupCurrentMemberAssignment { group, member }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: CommittedOffset,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingValue {
    pub entries: Vec<(String, i32, CommittedOffset)>,
}

/// One record to append: its key and value (None: a tombstone), both encoded.
pub type KeyedRecord = (Vec<u8>, Option<Vec<u8>>);

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    rmp_serde::to_vec(value).map_err(|e| StorageError::Encode(e.to_string()))
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Result<Vec<u8>, StorageError> {
    encode(&OffsetsKey::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    })
}

fn pending_key(group: &str, producer_id: i64) -> Result<Vec<u8>, StorageError> {
    encode(&OffsetsKey::PendingTxn {
        group: group.to_string(),
        producer_id,
    })
}

/// The keyed records that take a group from `before` to `after` by `record`.
pub fn keyed_records(
    group: &str,
    record: &GroupRecord,
    before: &GroupOffsets,
    after: &GroupOffsets,
) -> Result<Vec<KeyedRecord>, StorageError> {
    let mut out = Vec::new();
    match record {
        GroupRecord::Group { .. } => {}
        GroupRecord::Committed { entries } => {
            for (topic, partition, offset) in entries {
                let value = OffsetValue {
                    offset: offset.clone(),
                };
                out.push((offset_key(group, topic, *partition)?, Some(encode(&value)?)));
            }
        }
        GroupRecord::Deleted { partitions } => {
            for (topic, partition) in partitions {
                out.push((offset_key(group, topic, *partition)?, None));
            }
        }
        GroupRecord::TxnPending { producer_id, .. } => {
            let entries = after.pending.get(producer_id).cloned().unwrap_or_default();
            let value = PendingValue { entries };
            out.push((pending_key(group, *producer_id)?, Some(encode(&value)?)));
        }
        GroupRecord::TxnEnded {
            producer_id,
            commit,
        } => {
            if *commit {
                for (topic, partition, _) in before.pending.get(producer_id).into_iter().flatten() {
                    if let Some(offset) = after.committed.get(&(topic.clone(), *partition)) {
                        let value = OffsetValue {
                            offset: offset.clone(),
                        };
                        out.push((offset_key(group, topic, *partition)?, Some(encode(&value)?)));
                    }
                }
            }
            out.push((pending_key(group, *producer_id)?, None));
        }
        GroupRecord::Metadata { .. } => {
            let changed = GroupMetadata::changed_entries(&before.metadata, &after.metadata);
            out.extend(metadata_records(group, changed)?);
        }
    }
    Ok(out)
}

/// The keyed records of a group's metadata changes.
fn metadata_records(
    group: &str,
    changed: Vec<(MetadataKey, Option<MetadataValue>)>,
) -> Result<Vec<KeyedRecord>, StorageError> {
    changed
        .into_iter()
        .map(|(key, value)| {
            let key = encode(&OffsetsKey::of_metadata(group, key))?;
            let value = match value {
                None => None,
                Some(MetadataValue::Classic(v)) => Some(encode(&v)?),
                Some(MetadataValue::ConsumerGroup(v)) => Some(encode(&v)?),
                Some(MetadataValue::Member(v)) => Some(encode(&v)?),
                Some(MetadataValue::TargetMetadata(v)) => Some(encode(&v)?),
                Some(MetadataValue::TargetMember(v)) => Some(encode(&v)?),
                Some(MetadataValue::CurrentAssignment(v)) => Some(encode(&v)?),
            };
            Ok((key, value))
        })
        .collect()
}

/// Tombstones for everything a group holds (DeleteGroups, or expiry).
pub fn removal_records(group: &str, live: &GroupOffsets) -> Result<Vec<KeyedRecord>, StorageError> {
    let mut out = Vec::new();
    for (topic, partition) in live.committed.keys() {
        out.push((offset_key(group, topic, *partition)?, None));
    }
    for producer_id in live.pending.keys() {
        out.push((pending_key(group, *producer_id)?, None));
    }
    let gone = GroupMetadata::changed_entries(&live.metadata, &GroupMetadata::default());
    out.extend(metadata_records(group, gone)?);
    Ok(out)
}

/// One uncompressed batch of the records (written whole: a group change is atomic).
pub fn batch_of(records: &[KeyedRecord], now_ms: i64) -> Vec<u8> {
    let borrowed: Vec<_> = records
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
        .collect();
    build_batch(&borrowed, now_ms)
}

/// Every group's offsets, replayed from a partition's batches in offset order.
#[derive(Debug, Default)]
pub struct OffsetsReplay {
    pub groups: BTreeMap<String, GroupOffsets>,
}

impl OffsetsReplay {
    /// Applies the records of `batches` (whole batches, as a Read returns them); an error
    /// when one is malformed. Control batches are skipped.
    pub fn apply_batches(&mut self, batches: &[u8]) -> Result<(), StorageError> {
        for_each_keyed_record(batches, MAX_BODY_BYTES, |key, value| {
            self.apply_record(key, value)
        })
    }

    fn apply_record(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StorageError> {
        let decode_error = |e: rmp_serde::decode::Error| {
            StorageError::InvalidBatch(format!("a __consumer_offsets record: {e}"))
        };
        let key: OffsetsKey = rmp_serde::from_slice(key).map_err(decode_error)?;
        match key {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => {
                let offsets = self.groups.entry(group).or_default();
                match value {
                    Some(v) => {
                        let v: OffsetValue = rmp_serde::from_slice(v).map_err(decode_error)?;
                        let entries = vec![(topic, partition, v.offset)];
                        apply(offsets, GroupRecord::Committed { entries });
                    }
                    None => {
                        let partitions = vec![(topic, partition)];
                        apply(offsets, GroupRecord::Deleted { partitions });
                    }
                }
            }
            OffsetsKey::PendingTxn { group, producer_id } => {
                let offsets = self.groups.entry(group).or_default();
                match value {
                    Some(v) => {
                        let v: PendingValue = rmp_serde::from_slice(v).map_err(decode_error)?;
                        offsets.pending.insert(producer_id, v.entries);
                    }
                    None => {
                        offsets.pending.remove(&producer_id);
                    }
                }
            }
            other => {
                let Some((group, key)) = metadata_key(other) else {
                    return Ok(());
                };
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_metadata(&key, v).map_err(decode_error)?),
                };
                let offsets = self.groups.entry(group).or_default();
                offsets.metadata.apply(key, value);
            }
        }
        Ok(())
    }
}

/// A metadata record's group and its key below the group; None for an offset's key.
fn metadata_key(key: OffsetsKey) -> Option<(String, MetadataKey)> {
    Some(match key {
        OffsetsKey::GroupMetadata { group } => (group, MetadataKey::Classic),
        OffsetsKey::ConsumerGroupMetadata { group } => (group, MetadataKey::ConsumerGroup),
        OffsetsKey::ConsumerGroupMemberMetadata { group, member } => {
            (group, MetadataKey::Member(member))
        }
        OffsetsKey::ConsumerGroupTargetAssignmentMetadata { group } => {
            (group, MetadataKey::TargetMetadata)
        }
        OffsetsKey::ConsumerGroupTargetAssignmentMember { group, member } => {
            (group, MetadataKey::TargetMember(member))
        }
        OffsetsKey::ConsumerGroupCurrentMemberAssignment { group, member } => {
            (group, MetadataKey::CurrentAssignment(member))
        }
        OffsetsKey::Offset { .. } | OffsetsKey::PendingTxn { .. } => return None,
    })
}

/// A metadata record's value, decoded as its key says.
fn decode_metadata(
    key: &MetadataKey,
    value: &[u8],
) -> Result<MetadataValue, rmp_serde::decode::Error> {
    Ok(match key {
        MetadataKey::Classic => MetadataValue::Classic(rmp_serde::from_slice(value)?),
        MetadataKey::ConsumerGroup => MetadataValue::ConsumerGroup(rmp_serde::from_slice(value)?),
        MetadataKey::Member(_) => MetadataValue::Member(rmp_serde::from_slice(value)?),
        MetadataKey::TargetMetadata => MetadataValue::TargetMetadata(rmp_serde::from_slice(value)?),
        MetadataKey::TargetMember(_) => MetadataValue::TargetMember(rmp_serde::from_slice(value)?),
        MetadataKey::CurrentAssignment(_) => {
            MetadataValue::CurrentAssignment(rmp_serde::from_slice(value)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's placement: Java's hashCode, Utils.abs, modulo the partition count
    /// (values computed with Java's "...".hashCode()).
    #[test]
    fn groups_land_on_kafkas_partitions() {
        assert_eq!(java_hash_code(""), 0);
        assert_eq!(java_hash_code("group"), 98629247);
        assert_eq!(java_hash_code("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("group", 50), 98629247 % 50);
        // A negative hash: "my-group".hashCode() is -1906497762 in Java.
        assert_eq!(java_hash_code("my-group"), -1906497762);
        assert_eq!(partition_for("my-group", 50), 12);
    }

    /// An offset committed with a leader epoch (KIP-320), which a replay keeps.
    fn offset(n: i64) -> CommittedOffset {
        CommittedOffset {
            offset: n,
            leader_epoch: n as i32 + 1,
            metadata: None,
        }
    }

    /// Commits, a delete, a committed transaction and an aborted one, written as keyed
    /// batches, replay to the offsets the group held.
    #[test]
    fn a_groups_changes_replay_from_their_batches() {
        let mut live = GroupOffsets::default();
        let mut log = Vec::new();
        let changes = vec![
            GroupRecord::Committed {
                entries: vec![("t".into(), 0, offset(5)), ("t".into(), 1, offset(7))],
            },
            GroupRecord::Deleted {
                partitions: vec![("t".into(), 1)],
            },
            GroupRecord::TxnPending {
                producer_id: 9,
                entries: vec![("u".into(), 0, offset(3))],
            },
            GroupRecord::TxnPending {
                producer_id: 10,
                entries: vec![("u".into(), 1, offset(4))],
            },
            GroupRecord::TxnEnded {
                producer_id: 9,
                commit: true,
            },
            GroupRecord::TxnEnded {
                producer_id: 10,
                commit: false,
            },
            GroupRecord::TxnPending {
                producer_id: 11,
                entries: vec![("u".into(), 2, offset(8))],
            },
        ];
        for change in changes {
            let mut after = live.clone();
            apply(&mut after, change.clone());
            let records = keyed_records("g", &change, &live, &after).unwrap();
            log.extend(batch_of(&records, 0));
            live = after;
        }
        let mut replay = OffsetsReplay::default();
        replay.apply_batches(&log).unwrap();
        assert_eq!(replay.groups.get("g"), Some(&live));
        assert_eq!(live.committed.len(), 2);
        assert_eq!(live.pending.len(), 1);

        let mut gone = OffsetsReplay::default();
        log.extend(batch_of(&removal_records("g", &live).unwrap(), 0));
        gone.apply_batches(&log).unwrap();
        assert_eq!(gone.groups.get("g"), Some(&GroupOffsets::default()));
    }

    /// A classic group's metadata, then the same group as a consumer group whose members
    /// change, replay to the last state; only changed keys are written, and removing the
    /// group tombstones every key.
    #[test]
    fn a_groups_metadata_replays_from_its_keyed_records() {
        use crate::coordinator::current_assignment::MemberState;
        use crate::coordinator::group_metadata::*;
        let classic = ClassicGroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            members: vec![ClassicMemberValue {
                member_id: "a".into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                subscription: b"sub".to_vec(),
                assignment: b"asg".to_vec(),
            }],
        };
        let member = |epoch: i32| {
            let value = ConsumerMemberValue {
                instance_id: None,
                rack_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 30_000,
                subscribed_topic_names: vec!["t".into()],
                subscribed_topic_regex: None,
                server_assignor: None,
            };
            let topic = uuid::Uuid::from_u128(7);
            let current = CurrentAssignmentValue {
                state: MemberState::Stable,
                member_epoch: epoch,
                previous_member_epoch: 0,
                assigned: BTreeMap::from([(topic, [0, 1].into())]),
                pending_revocation: BTreeMap::new(),
                left_static: false,
            };
            (value, current)
        };
        let consumer = |members: &[(&str, i32)]| {
            let mut records = ConsumerGroupRecords {
                metadata: Some(ConsumerGroupValue {
                    epoch: 2,
                    subscription_metadata: vec![("t".into(), uuid::Uuid::from_u128(7), 2)],
                }),
                target_epoch: Some(2),
                ..ConsumerGroupRecords::default()
            };
            for (id, epoch) in members {
                let (value, current) = member(*epoch);
                records.members.insert(id.to_string(), value);
                records
                    .targets
                    .insert(id.to_string(), current.assigned.clone());
                records.current.insert(id.to_string(), current);
            }
            GroupMetadata {
                classic: None,
                consumer: records,
            }
        };
        let states = [
            GroupMetadata {
                classic: Some(classic),
                consumer: ConsumerGroupRecords::default(),
            },
            consumer(&[("m1", 1), ("m2", 2)]),
            consumer(&[("m1", 2)]),
        ];
        let mut live = GroupOffsets::default();
        let mut log = Vec::new();
        let mut written = Vec::new();
        for metadata in states {
            let change = GroupRecord::Metadata { metadata };
            let mut after = live.clone();
            apply(&mut after, change.clone());
            let records = keyed_records("g", &change, &live, &after).unwrap();
            written.push(records.len());
            log.extend(batch_of(&records, 0));
            live = after;
        }
        // Classic: one key. Consumer: its tombstone, group, target epoch and 2 x 3 member
        // keys. Then m1's current assignment changes and m2's three keys go.
        assert_eq!(written, vec![1, 9, 4]);
        let mut replay = OffsetsReplay::default();
        replay.apply_batches(&log).unwrap();
        assert_eq!(replay.groups.get("g"), Some(&live));
        assert_eq!(live.metadata.consumer.members.len(), 1);

        log.extend(batch_of(&removal_records("g", &live).unwrap(), 0));
        let mut gone = OffsetsReplay::default();
        gone.apply_batches(&log).unwrap();
        assert!(gone.groups.get("g").is_some_and(GroupOffsets::is_empty));
    }
}
