//! Replication on the partition log (a child module of `log`): the leader-epoch cache,
//! appends that keep the leader's offsets (a follower's), and truncation (KIP-101: a
//! follower cuts what the new leader never had; one below the leader's log start starts
//! over there).
//!
//! Truncation cuts the files, forgets the log checkpoint (it may vouch for bytes that are
//! gone) and reopens the log, so segments, indexes and producer state are rebuilt by the
//! same recovery a restart runs. It is rare (a leader change) and costs a scan of the log.

use std::io::ErrorKind;

use tracing::info;

use super::retention::{write_offset_file, LOG_START_FILE};
use super::{AppendInfo, PartitionLog};
use crate::storage::batch::split_batches;
use crate::storage::io::remove_leftover;
use crate::storage::leader_epoch::LeaderEpochCache;
use crate::storage::log_checkpoint::CHECKPOINT_FILE;
use crate::storage::segment::{file_name, Segment};
use crate::storage::StorageError;

impl PartitionLog {
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// The newest leader epoch with records (or assigned on becoming leader).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// A leader at `epoch` writes from `start_offset` on (Kafka assigns the log end when a
    /// replica becomes leader).
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        self.epochs
            .assign(self.storage.as_ref(), epoch, start_offset)
    }

    /// OffsetForLeaderEpoch: (epoch, end offset), (-1, -1) when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// Appends batches fetched from the leader as they are (not copied): their offsets and
    /// leader epochs are the leader's. They must start at the log end and follow on from
    /// each other; a batch of a newer epoch records where that epoch starts. Nothing is
    /// written unless every batch checks (CRC included). Returns the offsets written (None
    /// for no batches).
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
    ) -> Result<Option<AppendInfo>, StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        if records.is_empty() {
            return Ok(None);
        }
        // The leader already applied its size limits; the slice bounds every batch.
        let batches = split_batches(records, records.len())?;
        let mut next = self.log_end_offset();
        for (header, _) in &batches {
            if header.base_offset != next {
                return Err(StorageError::InvalidBatch(format!(
                    "a replicated batch starts at offset {} where the log ends at {next}",
                    header.base_offset
                )));
            }
            next = header.next_offset();
        }
        let mut info: Option<AppendInfo> = None;
        for (header, range) in batches {
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && self.latest_epoch().is_none_or(|latest| epoch > latest) {
                self.epochs
                    .assign(self.storage.as_ref(), epoch, header.base_offset)?;
            }
            self.write_at_log_end(&records[range.clone()], &header)?;
            self.producers.observe(&records[range], &header);
            let this = AppendInfo::written(header.base_offset, &header);
            info = Some(match info {
                Some(first) => AppendInfo {
                    last_offset: this.last_offset,
                    max_timestamp: first.max_timestamp.max(this.max_timestamp),
                    records: first.records + this.records,
                    ..first
                },
                None => this,
            });
        }
        Ok(info)
    }

    /// Drops every record at and after `offset` (the whole batch holding it): segments,
    /// indexes, producer state and leader epochs. The cut is durable before this returns.
    /// Refused while a flush job runs: its checkpoint could vouch for the cut bytes.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if self.flush_in_flight {
            return Err(StorageError::FlushInFlight);
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset() {
            return self.truncate_fully_and_start_at(offset);
        }
        let index = self.segment_for(offset);
        let position = self.segments[index]
            .locate(offset)?
            .map(|found| found.position)
            .unwrap_or(self.segments[index].size());
        info!(dir = %self.dir.display(), offset, log_end_offset = self.log_end_offset(),
            "Truncating the log to the leader's.");
        // The checkpoint first: a crash after it only costs a full scan.
        self.forget_checkpoint()?;
        let keep_cut = index == 0 || position > 0;
        let first_removed = if keep_cut { index + 1 } else { index };
        let removed: Vec<i64> = self.segments[first_removed..]
            .iter()
            .map(|s| s.base_offset)
            .collect();
        self.segments.truncate(first_removed.max(1));
        for base_offset in removed.into_iter().rev() {
            self.remove_segment_files(base_offset)?;
        }
        if keep_cut {
            let segment = &self.segments[index];
            let io = |e| StorageError::io(segment.path(), e);
            segment.file().truncate(position).map_err(io)?;
            segment.file().sync().map_err(io)?;
        }
        self.sync_dir()?;
        self.reopen()
    }

    /// Empties the log and restarts it at `offset` (a follower below the leader's log
    /// start, or above its own log end after the leader's retention).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        if self.flush_in_flight {
            return Err(StorageError::FlushInFlight);
        }
        info!(dir = %self.dir.display(), offset, "Emptying the log to restart it at the leader's log start.");
        self.forget_checkpoint()?;
        write_offset_file(self.storage.as_ref(), &self.dir, LOG_START_FILE, offset)?;
        for segment in std::mem::take(&mut self.segments) {
            self.remove_segment_files(segment.base_offset)?;
        }
        let segment = Segment::create(
            self.storage.as_ref(),
            &self.dir,
            offset,
            self.config.index_interval_bytes,
        )?;
        self.segments.push(segment);
        self.epochs.clear(self.storage.as_ref())?;
        self.sync_dir()?;
        self.reopen()
    }

    fn forget_checkpoint(&mut self) -> Result<(), StorageError> {
        self.pending_checkpoint = None;
        let path = self.dir.join(CHECKPOINT_FILE);
        match self.storage.remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
            Err(err) => Err(StorageError::io(&path, err)),
        }
    }

    fn remove_segment_files(&mut self, base_offset: i64) -> Result<(), StorageError> {
        self.dirty.remove(&base_offset);
        let log = self.dir.join(file_name(base_offset, "log"));
        match self.storage.remove_file(&log) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(StorageError::io(&log, err)),
        }
        // Indexes are derived data: an orphan is removed by the next open.
        for ext in ["index", "timeindex"] {
            remove_leftover(
                self.storage.as_ref(),
                &self.dir.join(file_name(base_offset, ext)),
            );
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io(&self.dir, e))
    }

    /// Rebuilds segments, indexes and producer state from the files, as a restart does.
    fn reopen(&mut self) -> Result<(), StorageError> {
        let (log, _) =
            PartitionLog::open(self.storage.clone(), self.dir.clone(), self.config.clone())
                .inspect_err(|_| self.failed = true)?;
        *self = log;
        Ok(())
    }
}
