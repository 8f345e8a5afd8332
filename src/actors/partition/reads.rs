//! Reads from the partition actor (a child module of `partition`): Fetch, ListOffsets
//! and the offsets the protocol layer asks for, all bounded by the high watermark (or the
//! last stable offset for read_committed).

use bytes::Bytes;

use super::*;

impl PartitionState {
    pub(super) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        read_committed: bool,
    ) -> Result<ReadOutcome, PartitionError> {
        let log_start_offset = self.log.log_start_offset();
        let log_end_offset = self.log.log_end_offset();
        if offset < log_start_offset || offset > log_end_offset {
            return Err(PartitionError::OffsetOutOfRange);
        }
        let bound = self.fetch_bound(read_committed);
        let (records, next_batch_bytes) = if offset >= bound {
            (Bytes::new(), 0)
        } else {
            let read = self
                .log
                .read(offset, bound, max_bytes, min_one)
                .map_err(PartitionError::from)?;
            (read.records, read.first_batch_bytes)
        };
        // Whole batches past the bound are never returned, so [offset, bound) covers them.
        let aborted = if read_committed && !records.is_empty() {
            self.log.aborted_between(offset, bound)
        } else {
            Vec::new()
        };
        Ok(ReadOutcome {
            records,
            high_watermark: self.high_watermark,
            last_stable_offset: self.log.last_stable_offset(self.high_watermark),
            log_start_offset,
            aborted,
            next_batch_bytes,
        })
    }

    /// (offset, timestamp, leader epoch) for a ListOffsets timestamp. The latest offset
    /// carries the current leader epoch (Kafka's Partition.fetchOffsetForTimestamp), the
    /// others the epoch they were written in.
    pub(super) fn list_offset(
        &self,
        timestamp: i64,
        read_committed: bool,
    ) -> Result<(i64, i64, i32), PartitionError> {
        let found = match timestamp {
            LATEST_TIMESTAMP => {
                let epoch = self
                    .stamping_epoch()
                    .unwrap_or_else(|| self.epoch_of_offset(i64::MAX));
                return Ok((self.fetch_bound(read_committed), -1, epoch));
            }
            // Without tiered storage the local log start is the log start.
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                let start = self.log.log_start_offset();
                return Ok((start, -1, self.epoch_of_offset(start)));
            }
            // Nothing is tiered: Kafka answers no offset and no timestamp, without an error.
            LATEST_TIERED_TIMESTAMP => return Ok((-1, -1, -1)),
            MAX_TIMESTAMP => self.log.max_timestamp_offset()?,
            ts if ts >= 0 => self.log.offset_for_timestamp(ts)?,
            _ => return Err(PartitionError::InvalidRequest),
        };
        Ok(found
            .filter(|(offset, _)| *offset < self.high_watermark)
            .map_or((-1, -1, -1), |(offset, ts)| {
                (offset, ts, self.epoch_of_offset(offset))
            }))
    }

    pub(super) fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets {
            log_start_offset: self.log.log_start_offset(),
            high_watermark: self.high_watermark,
            last_stable_offset: self.log.last_stable_offset(self.high_watermark),
            log_end_offset: self.log.log_end_offset(),
            flushed_offset: self.log.flushed_offset(),
            size_bytes: self.log.size_bytes(),
        }
    }
}
