//! The durable half of a consumer group: its committed offsets and its membership. Single-node, in a record
//! file of its own under `<data_dir>/__groups/` (`GroupFile`); in a cluster, as records of
//! the replicated internal topic `__consumer_offsets` (`GroupLog`). One owner either way:
//! the group's coordinator actor holds its `GroupStore`.
//!
//! Records: the group's id first, then one `Committed` per OffsetCommit (written and
//! fsynced before the commit is answered), `Deleted` for OffsetDelete and expiry,
//! `TxnPending` for a TxnOffsetCommit (offsets held back until the transaction ends) and
//! `TxnEnded` when its coordinator commits or aborts it, and `Metadata` with the group's
//! membership (`group_metadata`) each time it changes. When the file holds far more
//! records than live state it is rewritten compactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::group_log::{GroupLog, GroupLogError};
use super::group_metadata::GroupMetadata;
use super::offsets_topic::{keyed_records, removal_records};
use crate::storage::record_file::create_store_dir;
use crate::storage::{RecordFile, Storage, StorageError};

/// (topic, partition)
pub type TopicPartition = (String, i32);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum GroupRecord {
    Group {
        id: String,
    },
    Committed {
        entries: Vec<(String, i32, CommittedOffset)>,
    },
    Deleted {
        partitions: Vec<(String, i32)>,
    },
    TxnPending {
        producer_id: i64,
        entries: Vec<(String, i32, CommittedOffset)>,
    },
    TxnEnded {
        producer_id: i64,
        commit: bool,
    },
    /// The group's membership as it is now (`group_metadata`), replacing what came before.
    Metadata {
        metadata: GroupMetadata,
    },
}

/// Bytes of entries one record holds at most (as `entry_bytes` counts them): a large
/// commit, or the compaction of many offsets, becomes several records, each far below the
/// record file's 64 MiB limit. Committed and TxnPending records add to what came before,
/// so replaying the pieces gives what the whole would have.
const MAX_RECORD_ENTRY_BYTES: usize = 4 * 1024 * 1024;

type Entry = (String, i32, CommittedOffset);

/// An entry's encoded size, over-estimated: its strings plus the fixed fields and framing.
fn entry_bytes(entry: &Entry) -> usize {
    entry.0.len() + entry.2.metadata.as_ref().map_or(0, String::len) + 64
}

/// `record` as one or more records of at most MAX_RECORD_ENTRY_BYTES of entries each.
fn split(record: GroupRecord) -> Vec<GroupRecord> {
    match record {
        GroupRecord::Committed { entries } => chunks(entries)
            .into_iter()
            .map(|entries| GroupRecord::Committed { entries })
            .collect(),
        GroupRecord::TxnPending {
            producer_id,
            entries,
        } => chunks(entries)
            .into_iter()
            .map(|entries| GroupRecord::TxnPending {
                producer_id,
                entries,
            })
            .collect(),
        other => vec![other],
    }
}

/// Runs of entries of at most MAX_RECORD_ENTRY_BYTES (one entry at least); one empty run
/// for no entries.
fn chunks(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry_bytes(&entry);
        if !run.is_empty() && bytes + size > MAX_RECORD_ENTRY_BYTES {
            runs.push(std::mem::take(&mut run));
            bytes = 0;
        }
        bytes += size;
        run.push(entry);
    }
    if !run.is_empty() || runs.is_empty() {
        runs.push(run);
    }
    runs
}

/// Offsets committed inside transactions that have not ended: producer id -> entries.
pub type PendingTxnOffsets = BTreeMap<i64, Vec<(String, i32, CommittedOffset)>>;

/// A group's committed offsets, the transactional ones still pending, and its membership
/// as last made durable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupOffsets {
    pub committed: BTreeMap<TopicPartition, CommittedOffset>,
    pub pending: PendingTxnOffsets,
    pub metadata: GroupMetadata,
}

impl GroupOffsets {
    /// True when the group holds nothing durable.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty() && self.pending.is_empty() && self.metadata.is_empty()
    }
}

pub struct GroupFile {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    file: Option<RecordFile<GroupRecord>>,
    records: usize,
}

/// A file name for any group id: hex of its bytes (group ids may hold any character),
/// shortened with a CRC-32C when long; the id itself is the file's first record.
pub fn file_name(group_id: &str) -> String {
    let hex: String = group_id.bytes().map(|b| format!("{b:02x}")).collect();
    if hex.len() <= 200 {
        format!("{hex}.log")
    } else {
        format!(
            "{}-{:08x}.log",
            &hex[..200],
            crc32c::crc32c(group_id.as_bytes())
        )
    }
}

impl GroupFile {
    /// Opens the group's file if it exists and replays it.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        group_id: &str,
    ) -> Result<(GroupFile, GroupOffsets), StorageError> {
        let path = dir.join(file_name(group_id));
        let mut offsets = GroupOffsets::default();
        let mut store = GroupFile {
            storage: storage.clone(),
            path: path.clone(),
            file: None,
            records: 0,
        };
        if storage.exists(&path) {
            let (file, records, _) = RecordFile::open(storage, path)?;
            store.records = records.len();
            for record in records {
                apply(&mut offsets, record);
            }
            store.file = Some(file);
        }
        Ok((store, offsets))
    }

    /// The group id stored in a group file (for loading groups at start); an error when
    /// the file is corrupt before its end.
    pub fn group_id_of(
        storage: Arc<dyn Storage>,
        path: &Path,
    ) -> Result<Option<String>, StorageError> {
        let (_, records, _) = RecordFile::<GroupRecord>::open(storage, path.to_path_buf())?;
        Ok(match records.into_iter().next() {
            Some(GroupRecord::Group { id }) => Some(id),
            _ => None,
        })
    }

    fn file(&mut self, group_id: &str) -> Result<&mut RecordFile<GroupRecord>, StorageError> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                create_store_dir(self.storage.as_ref(), dir)?;
            }
            let (mut file, _, _) = RecordFile::open(self.storage.clone(), self.path.clone())?;
            file.append(&GroupRecord::Group {
                id: group_id.to_string(),
            })?;
            self.records = 1;
            self.file = Some(file);
        }
        // Just set above when it was missing.
        self.file
            .as_mut()
            .ok_or_else(|| StorageError::Encode("group file not open".into()))
    }

    /// Appends and fsyncs one record; compacts when the file is mostly history.
    pub fn append(
        &mut self,
        group_id: &str,
        record: GroupRecord,
        live: &GroupOffsets,
    ) -> Result<(), StorageError> {
        for record in split(record) {
            self.file(group_id)?.append(&record)?;
            self.records += 1;
        }
        let live_records = live.committed.len() + live.pending.len() + 1;
        if self.records > 1000 && self.records > 4 * live_records {
            let entries = live
                .committed
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, o.clone()))
                .collect();
            let mut compact = vec![GroupRecord::Group {
                id: group_id.to_string(),
            }];
            compact.extend(split(GroupRecord::Committed { entries }));
            for (producer_id, entries) in &live.pending {
                compact.extend(split(GroupRecord::TxnPending {
                    producer_id: *producer_id,
                    entries: entries.clone(),
                }));
            }
            if !live.metadata.is_empty() {
                compact.push(GroupRecord::Metadata {
                    metadata: live.metadata.clone(),
                });
            }
            self.file(group_id)?.rewrite(&compact)?;
            self.records = compact.len();
        }
        Ok(())
    }

    /// Removes the group's file (DeleteGroups, or expiry of an empty group's offsets).
    pub fn remove(&mut self) -> Result<(), StorageError> {
        self.file = None;
        if self.storage.exists(&self.path) {
            self.storage
                .remove_file(&self.path)
                .map_err(|e| StorageError::io(&self.path, e))?;
            // A removed group must not come back after a power cut.
            let dir = crate::storage::io::parent_dir(&self.path);
            self.storage
                .sync_dir(dir)
                .map_err(|e| StorageError::io(dir, e))?;
        }
        self.records = 0;
        Ok(())
    }
}

/// Why a group's change could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum GroupStoreError {
    #[error("the group's file: {0}")]
    File(#[from] StorageError),
    #[error(transparent)]
    Log(#[from] GroupLogError),
}

impl GroupStoreError {
    /// The error code the group's request is answered with.
    pub fn code(&self) -> i16 {
        match self {
            GroupStoreError::File(_) => kafka_protocol::ResponseError::KafkaStorageError.code(),
            GroupStoreError::Log(e) => e.code(),
        }
    }
}

/// Where a group's changes go: its own file (single node) or `__consumer_offsets`.
pub enum GroupStore {
    File(GroupFile),
    Log(GroupLog),
}

impl GroupStore {
    /// Makes `record`, which takes the group from `before` to `after`, durable.
    pub async fn append(
        &mut self,
        group_id: &str,
        record: GroupRecord,
        before: &GroupOffsets,
        after: &GroupOffsets,
    ) -> Result<(), GroupStoreError> {
        match self {
            GroupStore::File(file) => Ok(file.append(group_id, record, after)?),
            GroupStore::Log(log) => {
                let records = keyed_records(group_id, &record, before, after)?;
                Ok(log.append(&records).await?)
            }
        }
    }

    /// Forgets everything the group holds (`live`): DeleteGroups, or expiry.
    pub async fn remove(
        &mut self,
        group_id: &str,
        live: &GroupOffsets,
    ) -> Result<(), GroupStoreError> {
        match self {
            GroupStore::File(file) => Ok(file.remove()?),
            GroupStore::Log(log) => Ok(log.append(&removal_records(group_id, live)?).await?),
        }
    }
}

pub fn apply(offsets: &mut GroupOffsets, record: GroupRecord) {
    match record {
        GroupRecord::Group { .. } => {}
        GroupRecord::Committed { entries } => {
            for (topic, partition, offset) in entries {
                offsets.committed.insert((topic, partition), offset);
            }
        }
        GroupRecord::Deleted { partitions } => {
            for tp in partitions {
                offsets.committed.remove(&tp);
            }
        }
        GroupRecord::TxnPending {
            producer_id,
            entries,
        } => {
            // Later commits in the same transaction win, as in Kafka.
            let pending = offsets.pending.entry(producer_id).or_default();
            for (topic, partition, offset) in entries {
                pending.retain(|(t, p, _)| !(*t == topic && *p == partition));
                pending.push((topic, partition, offset));
            }
        }
        GroupRecord::TxnEnded {
            producer_id,
            commit,
        } => {
            if let Some(entries) = offsets.pending.remove(&producer_id) {
                if commit {
                    for (topic, partition, offset) in entries {
                        offsets.committed.insert((topic, partition), offset);
                    }
                }
            }
        }
        GroupRecord::Metadata { metadata } => offsets.metadata = metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimStorage;

    /// A commit bigger than the record file's 64 MiB record limit (a 100 MiB request can
    /// hold one) is stored whole and replays whole.
    #[test]
    fn a_commit_past_the_record_limit_survives_a_reopen() {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let dir = Path::new("/data/__groups");
        let (mut store, _) = GroupFile::open(storage.clone(), dir, "g").unwrap();
        let metadata = "m".repeat(4096);
        let entries: Vec<_> = (0..17_000)
            .map(|p| {
                let offset = CommittedOffset {
                    offset: p as i64,
                    leader_epoch: -1,
                    metadata: Some(metadata.clone()),
                };
                ("t".to_string(), p, offset)
            })
            .collect();
        let record = GroupRecord::Committed { entries };
        let mut live = GroupOffsets::default();
        apply(&mut live, record.clone());
        store.append("g", record, &live).unwrap();
        drop(store);
        let (_, replayed) = GroupFile::open(storage, dir, "g").unwrap();
        assert_eq!(replayed.committed.len(), 17_000);
        assert_eq!(replayed, live);
    }
}
