//! The follower side of a replicated partition (a child module of `partition`): the
//! leader's batches appended as they are, the leader's high watermark followed, and
//! KIP-279 truncation (deferred while a flush job runs, since its checkpoint could vouch
//! for the cut bytes).

use bytes::Bytes;
use ractor::ActorRef;
use tracing::warn;

use super::replication::Role;
use super::{FollowerOffsets, PartitionMsg, PartitionState};
use crate::config::FlushPolicy;
use crate::error::PartitionError;
use crate::storage::StorageError;

impl PartitionState {
    pub(super) fn append_as_follower(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        records: Bytes,
        leader_epoch: i32,
        leader_high_watermark: i64,
    ) -> Result<FollowerOffsets, PartitionError> {
        self.check_leader_epoch(leader_epoch)?;
        if !matches!(self.role(), Some(Role::Follower { .. })) {
            return Err(PartitionError::NotAvailable);
        }
        if self.failed || self.log.is_failed() {
            return Err(PartitionError::StorageFailed);
        }
        match self.log.append_as_follower(&records) {
            Ok(_) => {}
            Err(err @ (StorageError::InvalidBatch(_) | StorageError::CorruptBatch(_))) => {
                warn!(topic = %self.args.topic, partition = self.args.partition, %err,
                    "Refused batches fetched from the leader.");
                return Err(err.into());
            }
            Err(err) => {
                self.fail(&err);
                return Err(PartitionError::StorageFailed);
            }
        }
        if self.args.flush_policy == FlushPolicy::Always {
            self.start_flush(myself);
        } else {
            self.schedule_tick(myself);
        }
        self.follow_high_watermark(leader_high_watermark);
        Ok(self.follower_offsets())
    }

    /// A follower's high watermark is the leader's, as far as its own log reaches.
    fn follow_high_watermark(&mut self, leader_high_watermark: i64) {
        let own = if self.args.flush_policy == FlushPolicy::Always {
            self.log.flushed_offset()
        } else {
            self.log.log_end_offset()
        };
        let target = leader_high_watermark.min(own);
        if target > self.high_watermark {
            self.high_watermark = target;
            self.wake_fetches();
        }
    }

    pub(super) fn follower_offsets(&self) -> FollowerOffsets {
        FollowerOffsets {
            log_end_offset: self.log.log_end_offset(),
            high_watermark: self.high_watermark,
            log_start_offset: self.log.log_start_offset(),
        }
    }

    /// KIP-279: the follower cuts what the leader does not have (`fully`: it restarts at
    /// the leader's log start). The high watermark follows the log end down.
    pub(super) fn truncate(
        &mut self,
        offset: i64,
        fully: bool,
    ) -> Result<FollowerOffsets, PartitionError> {
        let result = if fully {
            self.log.truncate_fully_and_start_at(offset)
        } else {
            self.log.truncate_to(offset)
        };
        if let Err(err) = result {
            self.fail(&err);
            return Err(PartitionError::StorageFailed);
        }
        self.high_watermark = self
            .high_watermark
            .min(self.log.log_end_offset())
            .max(self.log.log_start_offset());
        Ok(self.follower_offsets())
    }

    /// A flush job finished: a truncation that waited for it runs now.
    pub(super) fn run_pending_truncation(&mut self) {
        if self.flush_in_flight {
            return;
        }
        let Some((offset, fully, reply)) = self
            .replication
            .as_mut()
            .and_then(|r| r.pending_truncation.take())
        else {
            return;
        };
        let _ = reply.send(self.truncate(offset, fully));
    }
}
