//! The log checkpoint: Kafka's recovery point and producer snapshot in one file.
//!
//! After a flush has made every segment below the recovery point durable, the flush job
//! writes those segments' index files (fsynced) and then this file: per segment its size,
//! next offset, max timestamp and the CRC-32C of its index files, plus the producer and
//! transaction state as of the recovery point. At start the log trusts the segments the
//! checkpoint vouches for (their files at least as long as recorded, their index files
//! intact) and scans only what lies beyond the recovery point, replaying it into the
//! snapshot. Anything that does not match sends recovery back to a full scan: the
//! checkpoint is a shortcut, never a second source of truth.
//!
//! Format: `[length u32 BE][crc32c u32 BE][rmp-serde payload]`, written aside, fsynced,
//! renamed into place, directory fsynced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::io::Storage;
use super::offset_index::{write_whole, OffsetIndex};
use super::producer_state::ProducerStateTable;
use super::segment::file_name;
use super::time_index::TimeIndex;
use super::StorageError;

pub const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
const MAX_CHECKPOINT: u64 = 256 * 1024 * 1024;

/// What the checkpoint records of one segment: enough to open it without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSummary {
    pub base_offset: i64,
    pub size: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
    pub index_crc: u32,
    pub time_index_crc: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogCheckpoint {
    /// Every segment below this offset is durable and summarised here.
    pub recovery_point: i64,
    pub segments: Vec<SegmentSummary>,
    /// Producer and transaction state as of the recovery point.
    pub producers: ProducerStateTable,
}

/// A segment the checkpoint vouches for, with its indexes read back.
#[derive(Debug)]
pub struct TrustedSegment {
    pub summary: SegmentSummary,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
}

/// Index files and a checkpoint, written together by a flush job (blocking).
#[derive(Debug)]
pub struct CheckpointWrite {
    pub dir: PathBuf,
    pub indexes: Vec<(PathBuf, Vec<u8>)>,
    pub checkpoint: LogCheckpoint,
}

impl CheckpointWrite {
    /// Index files first (fsynced), then the checkpoint that names their CRCs.
    pub fn run(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        for (path, bytes) in &self.indexes {
            write_whole(storage, path, bytes)?;
            let file = storage
                .open(path, false)
                .map_err(|e| StorageError::io(path, e))?;
            file.sync().map_err(|e| StorageError::io(path, e))?;
        }
        let payload = rmp_serde::to_vec_named(&self.checkpoint)
            .map_err(|e| StorageError::Encode(e.to_string()))?;
        let mut bytes = Vec::with_capacity(payload.len() + 8);
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        bytes.extend_from_slice(&payload);
        let tmp = self.dir.join(CHECKPOINT_TMP);
        let io = |e| StorageError::io(&tmp, e);
        write_whole(storage, &tmp, &bytes)?;
        storage.open(&tmp, false).map_err(io)?.sync().map_err(io)?;
        storage
            .rename(&tmp, &self.dir.join(CHECKPOINT_FILE))
            .map_err(io)?;
        storage.sync_dir(&self.dir).map_err(io)
    }

    /// Folds an older, unwritten checkpoint's index files into this one.
    pub fn absorb(&mut self, older: CheckpointWrite) {
        for (path, bytes) in older.indexes {
            if !self.indexes.iter().any(|(p, _)| *p == path) {
                self.indexes.push((path, bytes));
            }
        }
    }
}

/// Reads the checkpoint; None when absent or damaged (then recovery scans everything).
pub fn read_checkpoint(storage: &dyn Storage, dir: &Path) -> Option<LogCheckpoint> {
    let path = dir.join(CHECKPOINT_FILE);
    if !storage.exists(&path) {
        return None;
    }
    let file = storage.open(&path, false).ok()?;
    let len = file.len().ok()?;
    let mut header = [0u8; 8];
    if len < 8 || file.read_exact_at(&mut header, 0).is_err() {
        warn!(path = %path.display(), "Ignoring a damaged log checkpoint; the log is scanned.");
        return None;
    }
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if size > MAX_CHECKPOINT || size + 8 != len {
        warn!(path = %path.display(), "Ignoring a damaged log checkpoint; the log is scanned.");
        return None;
    }
    let mut payload = vec![0u8; size as usize];
    file.read_exact_at(&mut payload, 8).ok()?;
    if crc32c::crc32c(&payload) != crc {
        warn!(path = %path.display(), "Ignoring a log checkpoint with a bad CRC; the log is scanned.");
        return None;
    }
    rmp_serde::from_slice(&payload).ok()
}

/// Which present segments the checkpoint vouches for. All or nothing: every present
/// segment below the recovery point must check out, the trusted ones must follow on from
/// each other and end at the recovery point; otherwise None.
pub fn plan(
    storage: &dyn Storage,
    dir: &Path,
    checkpoint: &LogCheckpoint,
    present: &[i64],
) -> Option<HashMap<i64, TrustedSegment>> {
    let summaries: HashMap<i64, &SegmentSummary> = checkpoint
        .segments
        .iter()
        .map(|s| (s.base_offset, s))
        .collect();
    let mut trusted = HashMap::new();
    let mut expected: Option<i64> = None;
    for base in present.iter().copied() {
        if base >= checkpoint.recovery_point {
            break;
        }
        let summary = *summaries.get(&base)?;
        if expected.is_some_and(|e| e != base) || summary.next_offset > checkpoint.recovery_point {
            return None;
        }
        let file = storage
            .open(&dir.join(file_name(base, "log")), false)
            .ok()?;
        if file.len().ok()? < summary.size {
            return None;
        }
        let read = |ext: &str, crc: u32| -> Option<Vec<u8>> {
            let path = dir.join(file_name(base, ext));
            let f = storage.open(&path, false).ok()?;
            let mut bytes = vec![0u8; f.len().ok()? as usize];
            f.read_exact_at(&mut bytes, 0).ok()?;
            (crc32c::crc32c(&bytes) == crc).then_some(bytes)
        };
        let offset_index = OffsetIndex::decode(base, &read("index", summary.index_crc)?)?;
        let time_index = TimeIndex::decode(base, &read("timeindex", summary.time_index_crc)?)?;
        expected = Some(summary.next_offset);
        trusted.insert(
            base,
            TrustedSegment {
                summary: summary.clone(),
                offset_index,
                time_index,
            },
        );
    }
    if expected.is_some_and(|e| e != checkpoint.recovery_point) {
        return None;
    }
    Some(trusted)
}
