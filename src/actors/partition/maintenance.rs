//! The partition actor's housekeeping (a child module of `partition`): retention,
//! DeleteRecords, compaction passes and deleting the partition. Slow file work runs on
//! blocking threads; only renames and the swap of cleaned segments happen on the actor.

use ractor::ActorRef;
use tracing::{error, info, warn};

use super::{PartitionMsg, PartitionState};
use crate::error::PartitionError;
use crate::storage::cleaner::CleanOutcome;
use crate::storage::StorageError;

impl PartitionState {
    /// Deletes whole closed segments past retention; the files go on a blocking thread.
    pub(super) fn apply_retention(&mut self, now_ms: i64) -> usize {
        let removal = self.log.apply_retention(now_ms, self.high_watermark);
        self.remove_in_background(removal)
    }

    pub(super) fn delete_records(&mut self, offset: i64) -> Result<i64, PartitionError> {
        let (low_watermark, removal) = self
            .log
            .delete_records(offset, self.high_watermark)
            .map_err(PartitionError::from)?;
        self.remove_in_background(removal);
        Ok(low_watermark)
    }

    pub(super) fn remove_in_background(&self, removal: crate::storage::log::Removal) -> usize {
        let segments = removal.segments;
        if segments == 0 {
            return 0;
        }
        info!(
            topic = %self.args.topic,
            partition = self.args.partition,
            segments,
            bytes = removal.bytes,
            log_start_offset = self.log.log_start_offset(),
            "Deleted old segments."
        );
        let storage = self.args.storage.clone();
        crate::storage::io::spawn_blocking(self.args.storage.as_ref(), move || {
            removal.run(storage.as_ref())
        });
        segments
    }

    /// Starts a cleaning pass on a blocking thread if the topic is compacted and one is due.
    pub(super) fn maybe_clean(&mut self, myself: &ActorRef<PartitionMsg>, now_ms: i64) {
        if self.cleaning || self.failed {
            return;
        }
        let Some(job) = self
            .log
            .clean_plan(now_ms, self.high_watermark, self.args.cleaner)
        else {
            return;
        };
        self.cleaning = true;
        tracing::debug!(topic = %self.args.topic, partition = self.args.partition,
            segments = job.segments.len(), dirty_from = job.dirty_from, "Starting a cleaning pass.");
        let storage = self.args.storage.clone();
        let myself = myself.clone();
        let started = std::time::Instant::now();
        crate::storage::io::spawn_blocking(self.args.storage.as_ref(), move || {
            let outcome = job.run(storage.as_ref());
            let _ = myself.send_message(PartitionMsg::CleaningDone { outcome, started });
        });
    }

    /// Swaps a finished pass's segments in: on the actor, so no read sees half of it.
    pub(super) fn cleaning_done(
        &mut self,
        outcome: Result<CleanOutcome, StorageError>,
        started: std::time::Instant,
    ) {
        self.cleaning = false;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(err) => {
                warn!(topic = %self.args.topic, partition = self.args.partition, %err,
                    "A cleaning pass failed; the log is unchanged and the next check tries again.");
                return;
            }
        };
        match self.log.install_cleaned(&outcome) {
            Ok(stats) if stats.segments > 0 => info!(
                topic = %self.args.topic,
                partition = self.args.partition,
                segments = stats.segments,
                segments_after = stats.segments_after,
                bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after,
                bytes_read = outcome.bytes_read,
                records_removed = outcome.records_removed,
                millis = started.elapsed().as_millis() as u64,
                "Cleaned the log."
            ),
            Ok(_) => {}
            Err(err) => {
                warn!(topic = %self.args.topic, partition = self.args.partition, %err,
                    "Could not swap cleaned segments in; a restart finishes or rolls back the swap.");
                self.fail(&err);
            }
        }
    }

    pub(super) fn delete(&mut self) {
        let dir = self.args.dir.clone();
        let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return;
        };
        let doomed = dir.with_file_name(format!("{name}.{}-delete", uuid::Uuid::new_v4().simple()));
        let storage = self.args.storage.clone();
        if let Err(err) = storage.rename(&dir, &doomed) {
            warn!(dir = %dir.display(), %err, "Could not move a deleted partition's directory aside.");
            return;
        }
        // Durable before DeleteTopics is answered: otherwise a power cut brings the old
        // directory back, and a new topic of the same name would adopt its data.
        let parent = crate::storage::io::parent_dir(&dir);
        if let Err(err) = storage.sync_dir(parent) {
            error!(dir = %parent.display(), %err,
                "Could not fsync the data directory after deleting a partition; a power cut may bring it back.");
        }
        // Removing many segment files can take a while: not on the actor.
        crate::storage::io::spawn_blocking(self.args.storage.as_ref(), move || {
            if let Err(err) = storage.remove_dir_all(&doomed) {
                warn!(dir = %doomed.display(), %err, "Could not remove a deleted partition's directory.");
            }
        });
    }
}
