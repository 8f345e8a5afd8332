//! Retention and DeleteRecords for the partition log: which closed segments go, moving
//! them aside (renamed to `*.deleted` on the owner's thread, removed on another), and the
//! durable log start offset file `log-start-offset`: `[offset i64 BE][crc32c u32 BE]`,
//! written aside, fsynced and renamed into place.

use std::path::{Path, PathBuf};

use tracing::warn;

use super::PartitionLog;
use crate::storage::io::{parent_dir, remove_leftover};
use crate::storage::segment::{file_name, Segment};
use crate::storage::{Storage, StorageError};

/// The file that keeps a log start offset set by DeleteRecords across restarts.
pub(super) const LOG_START_FILE: &str = "log-start-offset";

/// Segment files moved aside by retention or DeleteRecords, to remove off the actor.
#[derive(Debug, Default)]
pub struct Removal {
    pub files: Vec<PathBuf>,
    pub segments: usize,
    pub bytes: u64,
}

impl Removal {
    /// Removes the moved-aside files (blocking: run it on a blocking thread).
    pub fn run(&self, storage: &dyn Storage) {
        for file in &self.files {
            if let Err(err) = storage.remove_file(file) {
                warn!(path = %file.display(), %err, "Could not remove a deleted segment file.");
            }
        }
        // Nothing acknowledged depends on it (the next start finishes a `.deleted` removal),
        // but the space is only freed for sure once the directory is durable.
        if let Some(dir) = self.files.first().map(|f| parent_dir(f)) {
            if let Err(err) = storage.sync_dir(dir) {
                warn!(dir = %dir.display(), %err, "Could not fsync a directory after removing segments.");
            }
        }
    }
}

impl PartitionLog {
    /// Retention: closed segments past `retention_ms` (by their newest timestamp, against
    /// `now_ms`) or beyond `retention_bytes` (oldest first) are moved aside, never the active
    /// one and never one holding offsets at or above `high_watermark`. The log start offset
    /// moves to the first remaining segment. The returned files are removed by the caller
    /// off its thread.
    pub fn apply_retention(&mut self, now_ms: i64, high_watermark: i64) -> Removal {
        let mut removal = Removal::default();
        let mut total: u64 = self.size_bytes();
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            if oldest.next_offset() > high_watermark {
                break;
            }
            let (newest, _) = oldest.max_timestamp();
            // cleanup.policy=compact alone keeps segments regardless of retention.
            let by_time = self.config.delete
                && self.config.retention_ms >= 0
                && newest >= 0
                && now_ms.saturating_sub(newest) > self.config.retention_ms;
            let by_size = self.config.delete
                && self.config.retention_bytes >= 0
                && total.saturating_sub(oldest.size()) >= self.config.retention_bytes as u64;
            let by_start = self.below_log_start(oldest);
            if !(by_time || by_size || by_start) {
                break;
            }
            total = total.saturating_sub(oldest.size());
            let segment = self.segments.remove(0);
            self.move_aside(segment, &mut removal);
        }
        self.trim_epochs_to_log_start();
        removal
    }

    /// DeleteRecords: the log start offset moves to `offset` (the high watermark for -1),
    /// durably; segments wholly below it go. Returns the new log start offset.
    pub fn delete_records(
        &mut self,
        offset: i64,
        high_watermark: i64,
    ) -> Result<(i64, Removal), StorageError> {
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        if target > self.log_start_offset() {
            write_log_start(self.storage.as_ref(), &self.dir, target)?;
            self.log_start_offset = target;
        }
        let mut removal = Removal::default();
        while self.segments.len() > 1 && self.below_log_start(&self.segments[0]) {
            let segment = self.segments.remove(0);
            self.move_aside(segment, &mut removal);
        }
        self.trim_epochs_to_log_start();
        Ok((self.log_start_offset(), removal))
    }

    /// Epochs wholly below the log start name records that are gone. The cache is only a
    /// shortcut for followers, so a failed write is logged, not returned.
    fn trim_epochs_to_log_start(&mut self) {
        let start = self.log_start_offset();
        if let Err(err) = self
            .epochs
            .truncate_from_start(self.storage.as_ref(), start)
        {
            warn!(dir = %self.dir.display(), %err, "Could not trim the leader-epoch cache.");
        }
    }

    /// Every offset of the segment is below the log start offset. An empty segment at the
    /// log start offset (compaction left nothing in it) stays: it holds the log start.
    fn below_log_start(&self, segment: &Segment) -> bool {
        segment.next_offset() <= self.log_start_offset
            && segment.base_offset < self.log_start_offset
    }

    fn move_aside(&mut self, segment: Segment, removal: &mut Removal) {
        self.dirty.remove(&segment.base_offset);
        // Aborted transactions wholly in the removed segment no longer matter to readers.
        self.producers.txns.trim(segment.next_offset());
        removal.segments += 1;
        removal.bytes += segment.size();
        for ext in ["log", "index", "timeindex"] {
            let path = self.dir.join(file_name(segment.base_offset, ext));
            if !self.storage.exists(&path) {
                continue;
            }
            let aside = path.with_extension(format!("{ext}.deleted"));
            match self.storage.rename(&path, &aside) {
                Ok(()) => removal.files.push(aside),
                Err(err) => {
                    warn!(path = %path.display(), %err, "Could not move a deleted segment aside; removing it now.");
                    remove_leftover(self.storage.as_ref(), &path);
                }
            }
        }
    }
}

pub(super) fn read_log_start(storage: &dyn Storage, dir: &Path) -> Option<i64> {
    read_offset_file(storage, dir, LOG_START_FILE)
}

/// Reads a `[offset i64 BE][crc32c u32 BE]` file; None when absent or damaged.
pub(super) fn read_offset_file(storage: &dyn Storage, dir: &Path, name: &str) -> Option<i64> {
    let file = storage.open(&dir.join(name), false).ok()?;
    let mut buf = [0u8; 12];
    file.read_exact_at(&mut buf, 0).ok()?;
    let mut value = [0u8; 8];
    value.copy_from_slice(&buf[..8]);
    let crc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    (crc32c::crc32c(&value) == crc).then(|| i64::from_be_bytes(value))
}

fn write_log_start(storage: &dyn Storage, dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_offset_file(storage, dir, LOG_START_FILE, offset)
}

/// `[offset i64 BE][crc32c u32 BE]`, written aside, fsynced and renamed into place.
pub(super) fn write_offset_file(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    offset: i64,
) -> Result<(), StorageError> {
    let value = offset.to_be_bytes();
    let mut bytes = value.to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&value).to_be_bytes());
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |e| StorageError::io(&tmp, e);
    let file = storage.open(&tmp, true).map_err(io)?;
    file.truncate(0).map_err(io)?;
    file.write_at(&bytes, 0).map_err(io)?;
    file.sync().map_err(io)?;
    storage.rename(&tmp, &dir.join(name)).map_err(io)?;
    storage.sync_dir(dir).map_err(io)
}
