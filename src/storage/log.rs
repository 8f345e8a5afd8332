//! The partition log: an ordered list of segments, the last one active. It is the
//! partition's write-ahead log and its only copy of the data.
//!
//! Owned by one partition actor (`&mut self`, no locks). Offsets: the log start offset is
//! the first segment's base offset; the log end offset is the next offset to assign; the
//! flushed offset is how far an fsync has covered. Flushing is split so that the fsync can
//! run on another thread (`begin_flush` -> `FlushJob::run` -> `complete_flush`) while the
//! owner keeps appending: that is the group commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::warn;

use super::batch::BatchHeader;
use super::batch::{set_base_offset, validate_batch};
use super::batch_records::first_record_at_or_after;
use super::decompression::decompressed_limit;
use super::io::{LogFile, Storage};
use super::leader_epoch::LeaderEpochCache;
use super::log_checkpoint::{CheckpointWrite, LogCheckpoint, SegmentSummary};
use super::producer_state::{ProducerStateTable, SequenceCheck};
use super::segment::{file_name, Segment};
use super::StorageError;

/// Appended bytes after which a flush also checkpoints the active segment.
const CHECKPOINT_EVERY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub index_interval_bytes: u64,
    pub max_batch_bytes: usize,
    /// Closed segments whose newest record is older than this go (ms; negative: never).
    pub retention_ms: i64,
    /// The oldest closed segments go while the log is larger than this (bytes; negative: no limit).
    pub retention_bytes: i64,
    /// The active segment is rolled once it has been open this long (ms; negative: never).
    pub segment_ms: i64,
    /// cleanup.policy has `delete`: retention applies.
    pub delete: bool,
    /// cleanup.policy has `compact`: the cleaner keeps the latest record per key.
    pub compaction: Option<CompactionConfig>,
    /// message.timestamp.type=LogAppendTime: appends are stamped with the broker's clock.
    pub log_append_time: bool,
    /// KIP-937's CreateTime window for produced records; None for LogAppendTime topics
    /// and when both sides are unlimited.
    pub timestamp_window: Option<super::record_validator::TimestampWindow>,
}

/// A compacted topic's cleaner settings (Kafka's topic configs of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// Tombstones older than this are removed (delete.retention.ms).
    pub delete_retention_ms: i64,
    /// Clean once dirty bytes / closed bytes reach this (min.cleanable.dirty.ratio).
    pub min_cleanable_dirty_ratio: f64,
    /// Segments whose newest record is younger than this are not cleaned
    /// (min.compaction.lag.ms).
    pub min_compaction_lag_ms: i64,
    /// A log whose oldest dirty record is older than this is cleaned even below
    /// min_cleanable_dirty_ratio (max.compaction.lag.ms; i64::MAX: never forced).
    pub max_compaction_lag_ms: i64,
}

impl LogConfig {
    /// No retention: segments stay until deleted by hand.
    pub fn keep_all(segment_bytes: u64, index_interval_bytes: u64, max_batch_bytes: usize) -> Self {
        LogConfig {
            segment_bytes,
            index_interval_bytes,
            max_batch_bytes,
            retention_ms: -1,
            retention_bytes: -1,
            segment_ms: -1,
            delete: true,
            compaction: None,
            log_append_time: false,
            timestamp_window: None,
        }
    }
}

/// Milliseconds since the Unix epoch by the system clock (0 if it is before it).
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

mod compaction;
mod recovery;
mod recovery_point;
mod replica;
pub use compaction::{read_cleaner_offset, CleanerStats};
mod retention;
mod txn;
pub use retention::Removal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub records: i32,
    /// The batch was an idempotent producer's retry of one already in the log: nothing
    /// was written and the offsets are the original ones.
    pub duplicate: bool,
}

impl AppendInfo {
    /// A batch just written at `base_offset`.
    fn written(base_offset: i64, header: &BatchHeader) -> AppendInfo {
        AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            records: header.records_count,
            duplicate: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub batches: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub bytes_truncated: u64,
    /// The file and byte position where a torn or corrupt tail was cut.
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Later segments moved into `quarantine/` because an earlier one was cut.
    pub segments_quarantined: usize,
    /// Their files, where they are now.
    pub quarantined_files: Vec<PathBuf>,
    /// Segments fsynced at open because no checkpoint vouched for all of their bytes.
    pub segments_synced: usize,
    /// Bytes the log checkpoint vouched for, so not read.
    pub bytes_trusted: u64,
    /// Whether a valid log checkpoint was used.
    pub used_checkpoint: bool,
}

/// Everything an fsync needs, sendable to a blocking thread.
#[derive(Debug)]
pub struct FlushJob {
    pub files: Vec<Arc<dyn LogFile>>,
    /// The log end offset this flush makes durable.
    pub up_to: i64,
    /// A checkpoint to write once the files are durable (after a segment rolled).
    checkpoint: Option<(Arc<dyn Storage>, CheckpointWrite)>,
}

impl FlushJob {
    pub fn run(&self) -> std::io::Result<()> {
        for file in &self.files {
            file.sync()?;
        }
        if let Some((storage, checkpoint)) = &self.checkpoint {
            // Derived data: a failure costs a longer scan at the next start, nothing more.
            if let Err(err) = checkpoint.run(storage.as_ref()) {
                warn!(dir = %checkpoint.dir.display(), %err, "Could not write the log checkpoint.");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub batches: usize,
    /// Size of the batch holding the read offset, when it is below the read's bound
    /// (whether or not it fitted in max_bytes); 0 when there is none.
    pub first_batch_bytes: usize,
}

#[derive(Debug)]
pub struct PartitionLog {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: LogConfig,
    segments: Vec<Segment>,
    flushed_offset: i64,
    /// Base offsets of segments written since the last flush began.
    dirty: BTreeSet<i64>,
    failed: bool,
    producers: ProducerStateTable,
    /// Set by DeleteRecords above the first segment's base offset; durable in its file.
    log_start_offset: i64,
    /// Wall-clock ms when the active segment was opened (at start: when the log was
    /// opened), for segment.ms. Record timestamps are not used: old ones would force a roll
    /// per batch.
    active_since_ms: i64,
    /// Summaries of the closed segments, for the next log checkpoint.
    closed: Vec<SegmentSummary>,
    /// A checkpoint waiting for the next flush job to write it.
    pending_checkpoint: Option<CheckpointWrite>,
    /// The recovery point of the last checkpoint written or read.
    checkpointed: i64,
    /// A flush job is running. One at a time, always: a second one could complete first
    /// and vouch for files whose fsync has not returned.
    flush_in_flight: bool,
    /// Bytes appended since the last checkpoint: past `CHECKPOINT_EVERY_BYTES` a flush
    /// also checkpoints the active segment, so a crash rereads at most that much.
    unchecked_bytes: u64,
    /// Offsets below this were mapped by a cleaning pass (durable in `cleaner-offset`).
    cleaner_offset: i64,
    /// Cleaned segments' index files were removed: the next checkpoint writes them all.
    closed_indexes_stale: bool,
    /// Producers expired since the last checkpoint: the next flush writes one.
    producer_snapshot_stale: bool,
    /// The first offset of each leader epoch (KIP-101), durable in `leader-epoch-checkpoint`.
    epochs: LeaderEpochCache,
}

impl PartitionLog {
    /// New limits (a topic config change): segment size, batch size, retention.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        let first = self.segments.first().map(|s| s.base_offset).unwrap_or(0);
        self.log_start_offset.max(first)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Idempotent producers this partition remembers.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    fn active(&self) -> &Segment {
        // `open` guarantees at least one segment and nothing removes the last one.
        &self.segments[self.segments.len() - 1]
    }

    /// Checks the batch, assigns it the log end offset, and writes it with one write.
    pub fn append(&mut self, batch: &mut [u8]) -> Result<AppendInfo, StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        if batch.len() > self.config.max_batch_bytes {
            return Err(StorageError::BatchTooLarge {
                size: batch.len(),
                limit: self.config.max_batch_bytes,
            });
        }
        let checked = validate_batch(batch)?;
        if let SequenceCheck::Duplicate(done) = self.producers.check(&checked)? {
            return Ok(AppendInfo {
                base_offset: done.base_offset,
                last_offset: done.last_offset,
                max_timestamp: checked.max_timestamp,
                records: checked.records_count,
                duplicate: true,
            });
        }
        let (base_offset, header) = self.write_batch(batch)?;
        self.producers.record(&header, base_offset);
        Ok(AppendInfo::written(base_offset, &header))
    }

    /// Assigns the log end offset to a checked batch and writes it, rolling first when the
    /// active segment is full or old. The caller checked the batch (CRC included); the
    /// base offset is outside the CRC, so only the header is read again here.
    fn write_batch(&mut self, batch: &mut [u8]) -> Result<(i64, BatchHeader), StorageError> {
        set_base_offset(batch, self.log_end_offset());
        let header = BatchHeader::parse(batch)?;
        self.write_at_log_end(batch, &header)?;
        Ok((header.base_offset, header))
    }

    /// Writes a checked batch whose base offset is the log end offset (a follower's batch
    /// carries the leader's, checked equal), rolling first when the active segment is full
    /// or old.
    fn write_at_log_end(&mut self, batch: &[u8], header: &BatchHeader) -> Result<(), StorageError> {
        let base_offset = header.base_offset;
        let too_big = self.active().size() + batch.len() as u64 > self.config.segment_bytes;
        let too_old = self.config.segment_ms >= 0
            && wall_clock_ms().saturating_sub(self.active_since_ms) > self.config.segment_ms;
        if !self.active().is_empty() && (too_big || too_old) {
            self.roll(base_offset)?;
        }
        let index = self.segments.len() - 1;
        let before = self.segments[index].size();
        if let Err(err) = self.segments[index].append(batch, header) {
            // A full disk wrote nothing we keep once the file is cut back: the log stays
            // healthy and takes appends again when space is freed. Any other write error
            // (EIO, a torn write) fails the log until a restart recovers it.
            let cut_back = self.segments[index].truncate_to(before);
            if !(cut_back && err.is_no_space()) {
                self.failed = true;
            }
            return Err(err);
        }
        self.dirty.insert(self.segments[index].base_offset);
        self.unchecked_bytes += batch.len() as u64;
        Ok(())
    }

    fn roll(&mut self, base_offset: i64) -> Result<(), StorageError> {
        // The new file first: if it cannot be made (EMFILE while connections flood the
        // broker), nothing has changed and the roll is tried again on the next append. Any
        // other error fails the log.
        let segment = match Segment::create(
            self.storage.as_ref(),
            &self.dir,
            base_offset,
            self.config.index_interval_bytes,
        ) {
            Ok(segment) => segment,
            Err(err) => {
                if !err.is_out_of_files() {
                    self.failed = true;
                }
                return Err(err);
            }
        };
        // The closing segment's summary and index files go into the next checkpoint,
        // written by the flush job that makes this segment durable.
        let (summary, index, time_index) = self.active().summary();
        let closing = summary.base_offset;
        self.closed.retain(|s| s.base_offset != closing);
        self.closed.push(summary);
        let first = self.segments[0].base_offset;
        self.closed.retain(|s| s.base_offset >= first);
        let mut write = CheckpointWrite {
            dir: self.dir.clone(),
            indexes: vec![
                (self.dir.join(file_name(closing, "index")), index),
                (self.dir.join(file_name(closing, "timeindex")), time_index),
            ],
            checkpoint: LogCheckpoint {
                recovery_point: base_offset,
                segments: self.closed.clone(),
                producers: self.producers.clone(),
            },
        };
        if let Some(older) = self.pending_checkpoint.take() {
            write.absorb(older);
        }
        if self.closed_indexes_stale {
            let everything = self.checkpoint_of_closed(true, ProducerStateTable::default());
            write.absorb(everything);
        }
        self.pending_checkpoint = Some(write);
        self.segments.push(segment);
        self.active_since_ms = wall_clock_ms();
        Ok(())
    }

    /// The files written since the last flush began, and the offset they make durable.
    pub fn begin_flush(&mut self) -> Option<FlushJob> {
        let snapshot_only = self.dirty.is_empty() && self.producer_snapshot_stale;
        if (self.dirty.is_empty() && !snapshot_only) || self.failed || self.flush_in_flight {
            return None;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let files = self
            .segments
            .iter()
            .filter(|s| dirty.contains(&s.base_offset))
            .map(|s| s.file().clone())
            .collect();
        // No other job in flight: once this one's fsyncs return, every earlier write is
        // durable, so it may write the checkpoint.
        if self.unchecked_bytes >= CHECKPOINT_EVERY_BYTES
            || std::mem::take(&mut self.producer_snapshot_stale)
        {
            let write = self.checkpoint_at_end();
            self.pending_checkpoint = Some(write);
        }
        let checkpoint = self.pending_checkpoint.take().map(|c| {
            self.checkpointed = c.checkpoint.recovery_point;
            if c.checkpoint.recovery_point == self.log_end_offset() {
                self.unchecked_bytes = 0;
            }
            (self.storage.clone(), c)
        });
        self.flush_in_flight = true;
        Some(FlushJob {
            files,
            up_to: self.log_end_offset(),
            checkpoint,
        })
    }

    /// Takes a flush's result. A failed fsync fails the log: it is never retried as if the
    /// data had reached the disk.
    pub fn complete_flush(
        &mut self,
        up_to: i64,
        result: std::io::Result<()>,
    ) -> Result<(), StorageError> {
        self.flush_in_flight = false;
        match result {
            Ok(()) => {
                self.flushed_offset = self.flushed_offset.max(up_to);
                Ok(())
            }
            Err(source) => {
                self.failed = true;
                Err(StorageError::io(&self.dir, source))
            }
        }
    }

    /// A flush job has begun and not completed.
    pub fn is_flushing(&self) -> bool {
        self.flush_in_flight
    }

    /// Flushes now on this thread (shutdown) and writes the index files. Refused while a
    /// background flush is in flight: the caller waits for it first.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        if self.flush_in_flight {
            return Err(StorageError::FlushInFlight);
        }
        if let Some(job) = self.begin_flush() {
            let result = job.run();
            self.complete_flush(job.up_to, result)?;
        }
        // Everything is durable now: a checkpoint at the log end lets the next start read
        // nothing.
        if self.checkpointed < self.log_end_offset() || self.producer_snapshot_stale {
            self.producer_snapshot_stale = false;
            let write = self.checkpoint_at_end();
            match write.run(self.storage.as_ref()) {
                Ok(()) => {
                    self.checkpointed = self.log_end_offset();
                    self.unchecked_bytes = 0;
                }
                Err(err) => {
                    warn!(%err, "Could not write the log checkpoint; the next start scans the log.")
                }
            }
        }
        Ok(())
    }

    fn segment_for(&self, offset: i64) -> usize {
        let i = self.segments.partition_point(|s| s.base_offset <= offset);
        i.saturating_sub(1)
    }

    /// Whole batches from the batch holding `offset`, below `max_offset`, within one segment.
    pub fn read(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, StorageError> {
        let log_start_offset = self.log_start_offset();
        let log_end_offset = self.log_end_offset();
        if offset < log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let empty = ReadResult {
            records: Bytes::new(),
            batches: 0,
            first_batch_bytes: 0,
        };
        if offset >= max_offset {
            return Ok(empty);
        }
        let mut index = self.segment_for(offset);
        while index < self.segments.len() {
            let segment = &self.segments[index];
            if let Some(found) = segment.locate(offset)? {
                let first_batch_bytes = if found.header.next_offset() > max_offset {
                    0
                } else {
                    found.header.total_size()
                };
                let (records, batches) = segment.read(found, max_offset, max_bytes, min_one)?;
                return Ok(ReadResult {
                    records,
                    batches,
                    first_batch_bytes,
                });
            }
            index += 1;
        }
        Ok(empty)
    }

    /// The first record whose timestamp is >= `ts`: (offset, timestamp), as Kafka 3.8+
    /// answers ListOffsets. The first batch reaching `ts` is found from the time index,
    /// then its records are read (decompressed, streamed and bounded as the key check is).
    /// A batch that cannot be read that way answers with its base offset and max
    /// timestamp, the batch-level answer of older Kafka.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        // Records below the log start offset (DeleteRecords) are not answered, as in Kafka.
        let from = self.log_start_offset();
        let limit = decompressed_limit(self.config.max_batch_bytes);
        for segment in &self.segments {
            let mut start = segment.base_offset.max(from);
            while let Some(found) = segment.find_timestamp(ts, start)? {
                let h = found.header;
                let batch = segment.batch_bytes(&found)?;
                match first_record_at_or_after(&batch, &h, ts, from, limit) {
                    Ok(Some(exact)) => return Ok(Some(exact)),
                    // Its records at or past `ts` are all below the log start offset.
                    Ok(None) => start = h.next_offset(),
                    Err(err) => {
                        warn!(dir = %self.dir.display(), base_offset = h.base_offset, %err,
                            "A batch's records could not be read for a timestamp lookup; answering its base offset.");
                        return Ok(Some((h.base_offset.max(from), h.max_timestamp)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Checks that every index entry points at the start of a batch with that base offset;
    /// returns one line per disagreement.
    pub fn verify_indexes(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for segment in &self.segments {
            for (offset, position) in segment.offset_index().entries() {
                match segment.locate(offset) {
                    Ok(Some(found))
                        if found.header.base_offset == offset && found.position == position => {}
                    other => problems.push(format!(
                        "{}: index says offset {offset} at byte {position}, log has {other:?}",
                        segment.path().display()
                    )),
                }
            }
        }
        problems
    }

    /// (offset, timestamp) of the first record holding the largest timestamp
    /// (ListOffsets MAX_TIMESTAMP, exact as in Kafka 3.8+).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let Some(max) = self
            .segments
            .iter()
            .map(|s| s.max_timestamp().0)
            .filter(|ts| *ts >= 0)
            .max()
        else {
            return Ok(None);
        };
        self.offset_for_timestamp(max)
    }
}

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
