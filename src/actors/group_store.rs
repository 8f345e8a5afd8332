//! The durable half of a consumer group: its committed offsets, in a record file of its
//! own under `<data_dir>/__groups/` (one owner per file: the group's coordinator actor).
//!
//! Records: the group's id first, then one `Committed` per OffsetCommit (written and
//! fsynced before the commit is answered), `Deleted` for OffsetDelete and expiry,
//! `TxnPending` for a TxnOffsetCommit (offsets held back until the transaction ends) and
//! `TxnEnded` when its coordinator commits or aborts it. When the file holds far more
//! records than live state it is rewritten compactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
}

/// Offsets committed inside transactions that have not ended: producer id -> entries.
pub type PendingTxnOffsets = BTreeMap<i64, Vec<(String, i32, CommittedOffset)>>;

/// A group's committed offsets and the transactional ones still pending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupOffsets {
    pub committed: BTreeMap<TopicPartition, CommittedOffset>,
    pub pending: PendingTxnOffsets,
}

pub struct GroupStore {
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

impl GroupStore {
    /// Opens the group's file if it exists and replays it.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        group_id: &str,
    ) -> Result<(GroupStore, GroupOffsets), StorageError> {
        let path = dir.join(file_name(group_id));
        let mut offsets = GroupOffsets::default();
        let mut store = GroupStore {
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

    /// The group id stored in a group file (for loading groups at start).
    pub fn group_id_of(storage: Arc<dyn Storage>, path: &Path) -> Option<String> {
        let (_, records, _) = RecordFile::<GroupRecord>::open(storage, path.to_path_buf()).ok()?;
        match records.into_iter().next()? {
            GroupRecord::Group { id } => Some(id),
            _ => None,
        }
    }

    fn file(&mut self, group_id: &str) -> Result<&mut RecordFile<GroupRecord>, StorageError> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                self.storage
                    .create_dir_all(dir)
                    .map_err(|e| StorageError::io(dir, e))?;
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
        self.file(group_id)?.append(&record)?;
        self.records += 1;
        let live_records = live.committed.len() + live.pending.len();
        if self.records > 1000 && self.records > 4 * live_records {
            let entries = live
                .committed
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, o.clone()))
                .collect();
            let mut compact = vec![
                GroupRecord::Group {
                    id: group_id.to_string(),
                },
                GroupRecord::Committed { entries },
            ];
            compact.extend(live.pending.iter().map(|(producer_id, entries)| {
                GroupRecord::TxnPending {
                    producer_id: *producer_id,
                    entries: entries.clone(),
                }
            }));
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
    }
}
