//! Opening a partition log (a child module of `log`): recovery of every segment, the
//! checkpoint's shortcut, quarantine of what follows a cut, and the fsyncs that make what
//! recovery found durable before it counts as flushed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::warn;

use super::compaction::{self, read_cleaner_offset};
use super::retention::{read_log_start, LOG_START_FILE};
use super::{wall_clock_ms, LogConfig, PartitionLog, RecoveryReport};
use crate::storage::io::{create_dir_durable, parent_dir, remove_leftover, Storage};
use crate::storage::leader_epoch::{LeaderEpochCache, LEADER_EPOCH_FILE};
use crate::storage::log_checkpoint::{plan, read_checkpoint, SegmentSummary, CHECKPOINT_FILE};
use crate::storage::log_quarantine::{quarantine_segments, Quarantined, QUARANTINE_DIR};
use crate::storage::producer_state::ProducerStateTable;
use crate::storage::segment::{file_name, parse_base_offset, Continuity, Segment};
use crate::storage::StorageError;

impl PartitionLog {
    /// Opens the partition's directory and recovers every segment (see `Segment::recover`).
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        // The partition's directory entry in the data dir must be durable, even when a
        // crash left it created but not yet fsynced.
        let existed = storage.exists(&dir);
        create_dir_durable(storage.as_ref(), &dir).map_err(|e| StorageError::io(&dir, e))?;
        if existed {
            let data_dir = parent_dir(&dir);
            storage
                .sync_dir(data_dir)
                .map_err(|e| StorageError::io(data_dir, e))?;
        }
        // A cleaning swap interrupted by a crash: all old segments or all new, never a mix.
        compaction::finish_or_roll_back_swap(storage.as_ref(), &dir)?;
        let entries = storage
            .list_dir(&dir)
            .map_err(|e| StorageError::io(&dir, e))?;
        let mut bases: Vec<i64> = entries
            .iter()
            .filter_map(|p| parse_base_offset(p, "log"))
            .collect();
        bases.sort_unstable();
        for entry in &entries {
            if entry.extension().is_some_and(|e| e == "deleted") {
                // Moved aside by retention before a crash: finish the removal.
                remove_leftover(storage.as_ref(), entry);
                continue;
            }
            if entry.file_name().is_some_and(|n| {
                n == LOG_START_FILE
                    || n == "log-start-offset.tmp"
                    || n == CHECKPOINT_FILE
                    || n == "checkpoint.tmp"
                    || n == QUARANTINE_DIR
                    || n == LEADER_EPOCH_FILE
                    || n == "leader-epoch-checkpoint.tmp"
                    || n.to_str()
                        .is_some_and(|n| n.starts_with(compaction::CLEANER_OFFSET_FILE))
            }) {
                continue;
            }
            let orphan_index = ["index", "timeindex"].iter().any(|ext| {
                parse_base_offset(entry, ext).is_some_and(|base| !bases.contains(&base))
            });
            if orphan_index {
                remove_leftover(storage.as_ref(), entry);
            } else if parse_base_offset(entry, "log").is_none()
                && parse_base_offset(entry, "index").is_none()
                && parse_base_offset(entry, "timeindex").is_none()
            {
                warn!(path = %entry.display(), "Ignoring a file that is not part of the log.");
            }
        }
        let mut report = RecoveryReport::default();
        let checkpoint = read_checkpoint(storage.as_ref(), &dir);
        let mut trusted = checkpoint
            .as_ref()
            .and_then(|c| plan(storage.as_ref(), &dir, c, &bases));
        let (mut producers, checkpointed) = match (checkpoint, &trusted) {
            (Some(c), Some(_)) => (c.producers, c.recovery_point),
            (Some(_), None) => {
                warn!(dir = %dir.display(), "The log checkpoint does not match the segments; scanning the whole log.");
                (ProducerStateTable::default(), -1)
            }
            _ => (ProducerStateTable::default(), -1),
        };
        report.used_checkpoint = trusted.is_some();
        // Offset gaps below this are compaction's; above it the log must be contiguous, so
        // a segment whose predecessor lost its unflushed tail is cut, not left after a gap.
        let cleaner_offset = read_cleaner_offset(storage.as_ref(), &dir);
        let mut segments: Vec<Segment> = Vec::new();
        let mut cut = false;
        let mut cut_reason = String::new();
        let mut quarantine: Vec<Quarantined> = Vec::new();
        // Segments read (not all vouched for by the checkpoint): fsynced before serving.
        let mut unsynced: Vec<usize> = Vec::new();
        let mut before_last = None;
        for (i, base) in bases.iter().copied().enumerate() {
            let path = dir.join(file_name(base, "log"));
            let aside = Quarantined {
                base_offset: base,
                next_base_offset: bases.get(i + 1).copied(),
            };
            if cut {
                // An earlier segment lost its tail: later ones cannot follow on from it.
                quarantine.push(aside);
                continue;
            }
            let expected = segments.last().map(|s| s.next_offset()).unwrap_or(base);
            // A gap is what compaction leaves behind below the cleaner offset; an overlap,
            // or a gap above it, is damage.
            if base < expected || (base > expected && expected >= cleaner_offset) {
                cut_reason = format!(
                    "{} starts at offset {base} where {expected} was expected",
                    path.display()
                );
                quarantine.push(aside);
                cut = true;
                continue;
            }
            if Some(&base) == bases.last() {
                before_last = Some(producers.clone());
            }
            let (segment, outcome) = Segment::recover(
                storage.as_ref(),
                &path,
                base,
                Continuity {
                    expected_start: expected.max(base),
                    gaps_below: cleaner_offset,
                },
                config.index_interval_bytes,
                &mut producers,
                trusted.as_mut().and_then(|t| t.remove(&base)),
            )?;
            report.batches += outcome.batches;
            report.bytes_trusted += outcome.trusted_bytes;
            if outcome.trusted_bytes < segment.size() {
                unsynced.push(segments.len());
            }
            if let Some(position) = outcome.cut_at {
                warn!(
                    path = %path.display(),
                    position,
                    bytes = outcome.bytes_truncated,
                    reason = outcome.reason.as_deref().unwrap_or(""),
                    "Truncated a torn or corrupt tail of a segment."
                );
                report.bytes_truncated += outcome.bytes_truncated;
                report.truncated_at = Some((path.clone(), position));
                cut_reason = format!(
                    "{} was cut at byte {position}: {}",
                    path.display(),
                    outcome.reason.as_deref().unwrap_or("")
                );
                cut = true;
            }
            segments.push(segment);
        }
        report.segments_quarantined = quarantine.len();
        report.quarantined_files =
            quarantine_segments(storage.as_ref(), &dir, &quarantine, &cut_reason)?;
        // What recovery found is what a restart serves and counts as flushed: it must be on
        // disk, not only in the page cache a kill -9 left behind.
        for &i in &unsynced {
            let segment = &segments[i];
            segment
                .file()
                .sync()
                .map_err(|e| StorageError::io(segment.path(), e))?;
        }
        report.segments_synced = unsynced.len();
        if segments.is_empty() {
            segments.push(Segment::create(
                storage.as_ref(),
                &dir,
                0,
                config.index_interval_bytes,
            )?);
        }
        // Removals and creations above (and a crash's unsynced entries) made durable.
        storage
            .sync_dir(&dir)
            .map_err(|e| StorageError::io(&dir, e))?;
        report.segments = segments.len();
        let log_end_offset = segments.last().map(|s| s.next_offset()).unwrap_or(0);
        let recorded_start = read_log_start(storage.as_ref(), &dir);
        let log_start_offset = recorded_start
            .unwrap_or(0)
            .max(segments[0].base_offset)
            .min(log_end_offset);
        report.log_start_offset = log_start_offset;
        report.log_end_offset = log_end_offset;
        // Epochs that start past what recovery kept name records that are gone.
        let mut epochs = LeaderEpochCache::open(storage.as_ref(), &dir)?;
        epochs.truncate_from_end(storage.as_ref(), log_end_offset)?;
        let closed: Vec<SegmentSummary> = segments[..segments.len() - 1]
            .iter()
            .map(|s| s.summary().0)
            .collect();
        let mut log = PartitionLog {
            storage,
            dir,
            config,
            segments,
            // Every segment is fsynced above or vouched for by the checkpoint.
            flushed_offset: log_end_offset,
            dirty: BTreeSet::new(),
            failed: false,
            producers,
            log_start_offset,
            active_since_ms: wall_clock_ms(),
            closed,
            pending_checkpoint: None,
            checkpointed,
            flush_in_flight: false,
            unchecked_bytes: 0,
            cleaner_offset,
            closed_indexes_stale: false,
            producer_snapshot_stale: false,
            epochs,
        };
        // Closed segments that had to be read get a checkpoint with the next flush, with
        // the producer state as it was before the active segment.
        if let Some(before_active) = before_last.filter(|_| !cut) {
            if log.segments.len() > 1 && log.checkpointed < log.active().base_offset {
                log.pending_checkpoint = Some(log.checkpoint_of_closed(true, before_active));
            }
        }
        Ok((log, report))
    }
}
