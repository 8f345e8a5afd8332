//! The metadata quorum's snapshots, on the storage seam: one record file per snapshot
//! (`snapshot-<last index>.snap`) holding one record, the snapshot's meta and its bytes
//! (the serialized image). The builder and an install from the leader each write their
//! own file, so neither waits on the other; the newest is the current one. The bytes are
//! bounded by the record file's frame limit (64 MiB) on write and on read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{RaftTypeConfig, SnapshotMeta};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::io::remove_leftover;
use super::record_file::create_store_dir;
use super::{RecordFile, Storage, StorageError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct StoredSnapshot<C: RaftTypeConfig> {
    pub meta: SnapshotMeta<C::NodeId, C::Node>,
    #[serde(with = "serde_bytes_vec")]
    pub data: Vec<u8>,
}

/// Bytes as one MessagePack bin, not an array of numbers.
mod serde_bytes_vec {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// Writes a snapshot durably as `dir/snapshot-<last index>.snap` (through
/// `RecordFile::rewrite`: aside, fsync, rename, fsync the directory), then removes the
/// older ones: a crash at any point leaves a whole snapshot as the newest file.
pub fn save_snapshot<C: RaftTypeConfig>(
    storage: Arc<dyn Storage>,
    dir: &Path,
    snapshot: &StoredSnapshot<C>,
) -> Result<(), StorageError> {
    create_store_dir(storage.as_ref(), dir)?;
    let index = snapshot.meta.last_log_id.as_ref().map_or(0, |id| id.index);
    let path = dir.join(format!("snapshot-{index:020}.snap"));
    let (mut file, _, _) = RecordFile::<StoredSnapshot<C>>::open(storage.clone(), path.clone())?;
    if let Err(err) = file.rewrite(std::slice::from_ref(snapshot)) {
        // The open created the name empty; the older snapshot is still whole and in force.
        remove_leftover(storage.as_ref(), &path);
        return Err(err);
    }
    let mut removed = false;
    for older in snapshot_files(storage.as_ref(), dir)? {
        if older < path {
            remove_leftover(storage.as_ref(), &older);
            removed = true;
        }
    }
    if removed {
        storage
            .sync_dir(dir)
            .map_err(|e| StorageError::io(dir, e))?;
    }
    Ok(())
}

/// The newest snapshot under `dir`, if any. A file that holds no snapshot at all was
/// created by a save that never completed (a crash or a failed fsync before its rename):
/// it is skipped for the older one, which a save removes only once the new one is durable.
/// A damaged snapshot is an error: the broker refuses to start rather than fall back past
/// entries its log has purged.
pub fn load_snapshot<C: RaftTypeConfig>(
    storage: Arc<dyn Storage>,
    dir: &Path,
) -> Result<Option<StoredSnapshot<C>>, StorageError> {
    if !storage.exists(dir) {
        return Ok(None);
    }
    for file in snapshot_files(storage.as_ref(), dir)?.into_iter().rev() {
        let (_, mut records, truncated) =
            RecordFile::<StoredSnapshot<C>>::open(storage.clone(), file.clone())?;
        if truncated > 0 {
            warn!(
                bytes = truncated,
                "A Raft snapshot file had a torn tail, which was cut."
            );
        }
        match records.pop() {
            Some(snapshot) => return Ok(Some(snapshot)),
            None => warn!(
                path = %file.display(),
                "Skipped an empty Raft snapshot file left by a save that did not complete."
            ),
        }
    }
    Ok(None)
}

/// Snapshot files under `dir`, oldest first (the names sort by index).
fn snapshot_files(storage: &dyn Storage, dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut files: Vec<PathBuf> = storage
        .list_dir(dir)
        .map_err(|e| StorageError::io(dir, e))?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".snap"))
        })
        .collect();
    files.sort();
    Ok(files)
}
