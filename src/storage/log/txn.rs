//! The partition log's transaction side (a child module of `log`): markers, the last
//! stable offset, aborted transactions and the producers DescribeProducers lists.

use super::{wall_clock_ms, PartitionLog};
use crate::storage::batch::set_partition_leader_epoch;
use crate::storage::control_batch::build_marker;
use crate::storage::producer_state::ProducerSummary;
use crate::storage::txn_state::AbortedTxn;
use crate::storage::{AppendInfo, StorageError};

impl PartitionLog {
    /// Writes a commit or abort marker for `producer_id` (the transaction coordinator's
    /// EndTxn); a marker from an epoch older than the producer's is refused.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<AppendInfo, StorageError> {
        self.append_marker_in(producer_id, producer_epoch, commit, coordinator_epoch, None)
    }

    /// `append_marker` by a replicated leader, which stamps its leader epoch on the marker.
    pub fn append_marker_in(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: Option<i32>,
    ) -> Result<AppendInfo, StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        self.producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let mut batch = build_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            wall_clock_ms(),
        );
        if let Some(epoch) = leader_epoch {
            set_partition_leader_epoch(&mut batch, epoch);
        }
        let (base_offset, header) = self.write_batch(&mut batch)?;
        self.producers.record_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            base_offset,
            header.max_timestamp,
        );
        Ok(AppendInfo::written(base_offset, &header))
    }

    /// The highest offset a read_committed reader may see: the first offset of the oldest
    /// open transaction, or the high watermark when that is lower or none is open.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.producers
            .txns
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Aborted transactions overlapping [from, to).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers.txns.aborted_between(from, to)
    }

    /// Forgets the producers idle for `expiration_ms` as of `now_ms` (producer.id.expiration.ms);
    /// answers how many. The producer snapshot in the log checkpoint is then stale: the
    /// next flush writes a new one, so a restart does not bring them back from it.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let expired = self.producers.expire(now_ms, expiration_ms);
        if expired > 0 {
            self.producer_snapshot_stale = true;
        }
        expired
    }

    /// Producers remembered here, with their open transactions (DescribeProducers).
    pub fn producer_summaries(&self) -> Vec<ProducerSummary> {
        self.producers.summaries()
    }
}
