//! Compaction as the partition log sees it (a child module of `log`): planning a cleaning
//! pass, swapping the cleaned segments in, and finishing or rolling back a swap that a
//! crash interrupted. The cleaning itself (`cleaner`) runs on a blocking thread.
//!
//! The cleaner merges small neighbours (Kafka's groupSegmentsBySize), so one cleaned
//! segment may replace several: the one at its base offset and every later one below its
//! end. The swap: the cleaned cleaner offset goes to `cleaner-offset.pending`, every
//! `<base>.log.cleaned` (written and fsynced by the cleaner) is renamed to
//! `<base>.log.<end>.swap`, and the directory fsynced: the commit point. Then the replaced
//! segments other than each first one are deleted and the directory fsynced, and only then
//! is each `.swap` renamed over its `<base>.log` (an empty one means the segment is gone),
//! and the directory fsynced again. At start, any `.cleaned` left means the crash came
//! before the commit: every `.cleaned` and `.swap` is removed and the old segments stand.
//! Otherwise every `.swap` is complete and names the range it replaces, so the start
//! finishes the same steps. A reader sees either the old segments or the new ones, never
//! a merged segment beside one it replaces (which would read its records twice).
//!
//! A segment left with nothing is removed, except the first one, which stays (empty) so
//! the log start offset does not move: cleaning is not deletion, and a consumer reading
//! from the beginning must not be sent out of range.

use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use super::retention::write_offset_file;
use super::PartitionLog;
use crate::storage::cleaner::{CleanInput, CleanJob, CleanOutcome, CleanedSegment, CleanerLimits};
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
    /// Segments replaced, and the segments that replaced them.
    pub segments: usize,
    pub segments_after: usize,
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

/// A 20-digit offset as in segment file names.
fn offset_of(digits: &str) -> Option<i64> {
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The base offset of a `<base>.log.<suffix>` file.
fn base_of(path: &Path, suffix: &str) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    offset_of(name.strip_suffix(&format!(".log.{suffix}"))?)
}

/// `<base>.log.<end>.swap`: a committed cleaned segment replacing the segments from its
/// base offset up to `end`.
pub(super) fn swap_path(dir: &Path, cleaned: &CleanedSegment) -> PathBuf {
    with_suffix(
        dir,
        cleaned.base_offset,
        &format!("{:020}.swap", cleaned.next_offset),
    )
}

/// (base, end) of a swap file; no end for `<base>.log.swap`, which replaces one segment
/// (as written before merging).
fn parse_swap(path: &Path) -> Option<(i64, Option<i64>)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".swap")?;
    match name.split_once(".log.") {
        Some((base, end)) => Some((offset_of(base)?, Some(offset_of(end)?))),
        None => Some((offset_of(name.strip_suffix(".log")?)?, None)),
    }
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
    let swaps: Vec<(i64, Option<i64>, &PathBuf)> = entries
        .iter()
        .filter_map(|p| parse_swap(p).map(|(base, end)| (base, end, p)))
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
        for path in cleaned.iter().copied().chain(swaps.iter().map(|s| s.2)) {
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
    let logs: Vec<i64> = entries
        .iter()
        .filter_map(|p| crate::storage::segment::parse_base_offset(p, "log"))
        .collect();
    // The segments a swap replaces go first, durably, as in `install_cleaned`. A swap
    // never replaces anything at or past the cleaner offset its pass committed, whatever
    // its name says: a name damaged on disk cannot delete segments the cleaner never read.
    let cleaner_offset = read_cleaner_offset(storage, dir);
    for (base, end, path) in &swaps {
        let Some(end) = end else { continue };
        if *end > cleaner_offset {
            warn!(path = %path.display(), cleaner_offset,
                "A cleaning swap claims offsets past the cleaner offset; only those below it are replaced.");
        }
        let end = (*end).min(cleaner_offset);
        for replaced in logs.iter().filter(|b| *b > base && **b < end) {
            remove_indexes(storage, dir, *replaced);
            storage
                .remove_file(&dir.join(file_name(*replaced, "log")))
                .map_err(io)?;
        }
    }
    storage.sync_dir(dir).map_err(io)?;
    let first = logs.iter().min().copied();
    for (base, _, swap) in &swaps {
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
                    index_bytes: s.index_bytes(),
                    file: s.file().clone(),
                })
                .collect(),
            dirty_from: self.cleaner_offset,
            max_records_bytes: crate::storage::decompression::decompressed_limit(
                self.config.max_batch_bytes,
            ),
            max_segment_bytes: self.config.segment_bytes,
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
        // Each cleaned segment replaces a run of closed segments, exactly as they were read.
        let unchanged = outcome.segments.iter().all(|c| {
            let Some(at) = self.segments[..closed]
                .iter()
                .position(|s| s.base_offset == c.base_offset)
            else {
                return false;
            };
            let run = &self.segments[at..closed.min(at + c.replaces.len())];
            run.len() == c.replaces.len()
                && run
                    .iter()
                    .zip(&c.replaces)
                    .all(|(s, (base, size))| s.base_offset == *base && s.size() == *size)
        });
        if !unchanged || outcome.segments.is_empty() {
            if unchanged {
                debug!(dir = %dir.display(), "A cleaning pass had nothing to rewrite.");
            } else {
                info!(dir = %dir.display(), "A cleaning pass is dropped: its segments changed meanwhile.");
            }
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
            storage.rename(&from, &swap_path(&dir, c)).map_err(io)?;
        }
        storage.sync_dir(&dir).map_err(io)?; // the commit point
        storage
            .rename(
                &dir.join(CLEANER_OFFSET_PENDING),
                &dir.join(CLEANER_OFFSET_FILE),
            )
            .map_err(io)?;
        // Merged away: every replaced segment but each group's first, durably gone before
        // any swap takes its place, so no restart reads a record twice.
        for (base, _) in outcome.segments.iter().flat_map(|c| &c.replaces[1..]) {
            remove_indexes(storage, &dir, *base);
            storage
                .remove_file(&dir.join(file_name(*base, "log")))
                .map_err(io)?;
        }
        storage.sync_dir(&dir).map_err(io)?;
        self.cleaner_offset = outcome.cleaned_up_to;
        let first = self.segments[0].base_offset;
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
            let swap = swap_path(&dir, c);
            remove_indexes(storage, &dir, c.base_offset);
            stats.segments += c.replaces.len();
            stats.bytes_before += c.replaces.iter().map(|(_, size)| size).sum::<u64>();
            stats.bytes_after += c.size;
            for (base, _) in &c.replaces {
                self.dirty.remove(base);
            }
            let replaced = index..index + c.replaces.len();
            if c.size == 0 && c.base_offset != first {
                storage.remove_file(&log).map_err(io)?;
                storage.remove_file(&swap).map_err(io)?;
                self.segments.drain(replaced);
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
            self.segments.splice(replaced, [segment]);
            stats.segments_after += 1;
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
