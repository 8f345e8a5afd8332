//! Compaction as the partition log sees it (a child module of `log`): planning a cleaning
//! pass, swapping the cleaned segments in, and finishing or rolling back a swap that a
//! crash interrupted. The cleaning itself (`cleaner`) runs on a blocking thread.
//!
//! The swap: every `<base>.log.cleaned` (written and fsynced by the cleaner) is renamed to
//! `<base>.log.swap`, the directory fsynced, and only then is each `.swap` renamed over its
//! `.log` (an empty one means the segment is gone). At start, any `.cleaned` left means the
//! crash came before the last rename to `.swap`: every `.cleaned` and `.swap` is removed
//! and the old segments stand. Otherwise every `.swap` is complete and is put in place. So
//! a reader sees either the old segments or the new ones, never a mix.
//!
//! A segment left with nothing is removed, except the first one, which stays (empty) so
//! the log start offset does not move: cleaning is not deletion, and a consumer reading
//! from the beginning must not be sent out of range.

use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use super::retention::write_offset_file;
use super::PartitionLog;
use crate::storage::cleaner::{CleanInput, CleanJob, CleanOutcome, CleanerLimits};
use crate::storage::io::{remove_leftover, Storage};
use crate::storage::log_checkpoint::CHECKPOINT_FILE;
use crate::storage::producer_state::ProducerStateTable;
use crate::storage::segment::{file_name, Continuity, Segment};
use crate::storage::{CompactionConfig, StorageError};

pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset";
/// The cleaner offset a swap in progress will set: it becomes `cleaner-offset` at the
/// swap's commit point, so the gaps it leaves are never read without it.
pub(super) const CLEANER_OFFSET_PENDING: &str = "cleaner-offset.pending";

/// What one swap changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Offsets below the returned one may have gaps (compaction's); -1 when never cleaned.
pub fn read_cleaner_offset(storage: &dyn Storage, dir: &Path) -> i64 {
    super::retention::read_offset_file(storage, dir, CLEANER_OFFSET_FILE).unwrap_or(-1)
}

fn with_suffix(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.{suffix}", file_name(base, "log")))
}

/// The base offset of a `<base>.log.<suffix>` file.
fn base_of(path: &Path, suffix: &str) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(&format!(".log.{suffix}"))?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

fn remove_indexes(storage: &dyn Storage, dir: &Path, base: i64) {
    for ext in ["index", "timeindex"] {
        let path = dir.join(file_name(base, ext));
        if storage.exists(&path) {
            remove_leftover(storage, &path);
        }
    }
}

pub(super) fn finish_or_roll_back_swap(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<(), StorageError> {
    let io = |e| StorageError::io(dir, e);
    let entries = storage.list_dir(dir).map_err(io)?;
    let cleaned: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| base_of(p, "cleaned").is_some())
        .collect();
    let swaps: Vec<(i64, &PathBuf)> = entries
        .iter()
        .filter_map(|p| base_of(p, "swap").map(|b| (b, p)))
        .collect();
    let pending = dir.join(CLEANER_OFFSET_PENDING);
    let pending_exists = storage.exists(&pending);
    if !cleaned.is_empty() || swaps.is_empty() {
        if cleaned.is_empty() && !pending_exists {
            return Ok(()); // no swap was under way
        }
        if pending_exists {
            storage.remove_file(&pending).map_err(io)?;
        }
        for path in cleaned.iter().copied().chain(swaps.iter().map(|(_, p)| *p)) {
            storage.remove_file(path).map_err(io)?;
        }
        if !swaps.is_empty() {
            warn!(dir = %dir.display(), "Rolled back a cleaning swap a crash interrupted; the old segments stand.");
        }
        return storage.sync_dir(dir).map_err(io);
    }
    if pending_exists {
        storage
            .rename(&pending, &dir.join(CLEANER_OFFSET_FILE))
            .map_err(io)?;
    }
    let checkpoint = dir.join(CHECKPOINT_FILE);
    if storage.exists(&checkpoint) {
        storage.remove_file(&checkpoint).map_err(io)?;
    }
    let first = entries
        .iter()
        .filter_map(|p| crate::storage::segment::parse_base_offset(p, "log"))
        .min();
    for (base, swap) in &swaps {
        let log = dir.join(file_name(*base, "log"));
        remove_indexes(storage, dir, *base);
        let len = storage
            .open(swap, false)
            .and_then(|f| f.len())
            .map_err(io)?;
        if len == 0 && Some(*base) != first {
            if storage.exists(&log) {
                storage.remove_file(&log).map_err(io)?;
            }
            storage.remove_file(swap).map_err(io)?;
        } else {
            storage.rename(swap, &log).map_err(io)?;
        }
    }
    info!(dir = %dir.display(), segments = swaps.len(), "Finished a cleaning swap a crash interrupted.");
    storage.sync_dir(dir).map_err(io)
}

impl PartitionLog {
    /// A cleaning pass for a compacted topic, if one is due: the closed segments below the
    /// high watermark whose newest record is older than min.compaction.lag.ms, when their
    /// dirty share (bytes past the last pass) reaches min.cleanable.dirty.ratio or a dirty
    /// segment is older than max.compaction.lag.ms.
    pub fn clean_plan(
        &self,
        now_ms: i64,
        high_watermark: i64,
        limits: CleanerLimits,
    ) -> Option<CleanJob> {
        let config = self.config.compaction.as_ref()?;
        let closed = &self.segments[..self.segments.len() - 1];
        let eligible: Vec<&Segment> = closed
            .iter()
            .take_while(|s| {
                let (newest, _) = s.max_timestamp();
                s.next_offset() <= high_watermark
                    && (config.min_compaction_lag_ms <= 0
                        || now_ms.saturating_sub(newest) >= config.min_compaction_lag_ms)
            })
            .collect();
        let total: u64 = eligible.iter().map(|s| s.size()).sum();
        let dirty: u64 = eligible
            .iter()
            .filter(|s| s.next_offset() > self.cleaner_offset)
            .map(|s| s.size())
            .sum();
        let below_ratio = (dirty as f64) < config.min_cleanable_dirty_ratio * total as f64;
        if dirty == 0 || (below_ratio && !self.compaction_overdue(config, now_ms)) {
            return None;
        }
        Some(CleanJob {
            dir: self.dir.clone(),
            segments: eligible
                .iter()
                .map(|s| CleanInput {
                    base_offset: s.base_offset,
                    size: s.size(),
                    next_offset: s.next_offset(),
                    file: s.file().clone(),
                })
                .collect(),
            dirty_from: self.cleaner_offset,
            max_records_bytes: crate::storage::decompression::decompressed_limit(
                self.config.max_batch_bytes,
            ),
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            limits,
        })
    }

    /// max.compaction.lag.ms (KIP-354): the first batch of some closed dirty segment is
    /// older than now - max.compaction.lag.ms. As Kafka's LogCleanerManager, segments whose
    /// first batch has no timestamp do not count, and the active segment never does.
    fn compaction_overdue(&self, config: &CompactionConfig, now_ms: i64) -> bool {
        let clean_until = now_ms.saturating_sub(config.max_compaction_lag_ms.max(0));
        let closed = &self.segments[..self.segments.len() - 1];
        closed
            .iter()
            .filter(|s| s.next_offset() > self.cleaner_offset)
            .filter_map(|s| match s.locate(s.base_offset) {
                Ok(first) => first.map(|l| l.header.max_timestamp),
                Err(err) => {
                    debug!(dir = %self.dir.display(), %err, "Could not read a segment's first batch.");
                    None
                }
            })
            .any(|ts| ts > 0 && ts < clean_until)
    }

    /// Swaps a finished pass's segments in (see the module comment). A pass whose segments
    /// changed meanwhile (retention, DeleteRecords) is dropped.
    pub fn install_cleaned(
        &mut self,
        outcome: &CleanOutcome,
    ) -> Result<CleanerStats, StorageError> {
        let storage = self.storage.clone();
        let storage = storage.as_ref();
        let dir = self.dir.clone();
        let io = |e| StorageError::io(&dir, e);
        let closed = self.segments.len() - 1;
        let unchanged = outcome.segments.iter().all(|c| {
            self.segments[..closed]
                .iter()
                .any(|s| s.base_offset == c.base_offset && s.size() == c.original_size)
        });
        if !unchanged || outcome.segments.is_empty() {
            debug!(dir = %dir.display(), "A cleaning pass is dropped: its segments changed meanwhile.");
            for c in &outcome.segments {
                remove_leftover(storage, &with_suffix(&dir, c.base_offset, "cleaned"));
            }
            return Ok(CleanerStats::default());
        }
        // The checkpoint describes the old segments.
        let checkpoint = dir.join(CHECKPOINT_FILE);
        if storage.exists(&checkpoint) {
            storage.remove_file(&checkpoint).map_err(io)?;
        }
        self.checkpointed = -1;
        self.pending_checkpoint = None;
        self.closed_indexes_stale = true;
        write_offset_file(storage, &dir, CLEANER_OFFSET_PENDING, outcome.cleaned_up_to)?;
        for c in &outcome.segments {
            let from = with_suffix(&dir, c.base_offset, "cleaned");
            storage
                .rename(&from, &with_suffix(&dir, c.base_offset, "swap"))
                .map_err(io)?;
        }
        storage.sync_dir(&dir).map_err(io)?; // the commit point
        storage
            .rename(
                &dir.join(CLEANER_OFFSET_PENDING),
                &dir.join(CLEANER_OFFSET_FILE),
            )
            .map_err(io)?;
        storage.sync_dir(&dir).map_err(io)?;
        self.cleaner_offset = outcome.cleaned_up_to;
        let mut stats = CleanerStats::default();
        for c in &outcome.segments {
            let Some(index) = self
                .segments
                .iter()
                .position(|s| s.base_offset == c.base_offset)
            else {
                continue;
            };
            let log = dir.join(file_name(c.base_offset, "log"));
            let swap = with_suffix(&dir, c.base_offset, "swap");
            remove_indexes(storage, &dir, c.base_offset);
            stats.segments += 1;
            stats.bytes_before += c.original_size;
            stats.bytes_after += c.size;
            self.dirty.remove(&c.base_offset);
            if c.size == 0 && index > 0 {
                storage.remove_file(&log).map_err(io)?;
                storage.remove_file(&swap).map_err(io)?;
                self.segments.remove(index);
                continue;
            }
            storage.rename(&swap, &log).map_err(io)?;
            let (segment, _) = Segment::recover(
                storage,
                &log,
                c.base_offset,
                Continuity {
                    expected_start: c.base_offset,
                    gaps_below: i64::MAX,
                },
                self.config.index_interval_bytes,
                &mut ProducerStateTable::default(),
                None,
            )?;
            self.segments[index] = segment;
        }
        storage.sync_dir(&dir).map_err(io)?;
        let closed = self.segments.len() - 1;
        self.closed = self.segments[..closed]
            .iter()
            .map(|s| s.summary().0)
            .collect();
        Ok(stats)
    }
}
