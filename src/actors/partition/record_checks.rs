//! The per-record checks of a produce (a child module of `partition`): Kafka's
//! LogValidator checks, made before any batch of the request is written.

use crate::storage::decompression::decompressed_limit;
use crate::storage::record_validator::{check_records, RecordChecks};

use super::*;

impl PartitionState {
    /// Kafka's per-record checks (a compacted topic's keys, KIP-937's timestamp window):
    /// the first batch with refused records answers for the request, naming them.
    /// Streamed and bounded: a batch expanding past the limit is INVALID_RECORD.
    pub(super) fn check_records(
        &self,
        records: &[u8],
        batches: &[(crate::storage::BatchHeader, std::ops::Range<usize>)],
    ) -> Result<(), PartitionError> {
        let log = &self.args.log;
        let checks = RecordChecks {
            require_key: log.compaction.is_some(),
            timestamp_window: log.timestamp_window,
        };
        if !checks.any() {
            return Ok(());
        }
        let limit = decompressed_limit(log.max_batch_bytes);
        let now_ms = crate::storage::log::wall_clock_ms();
        for (header, range) in batches {
            let name = || format!("{}-{}", self.args.topic, self.args.partition);
            if let Some(errors) = check_records(
                &records[range.clone()],
                header,
                limit,
                &checks,
                now_ms,
                name,
            )? {
                return Err(PartitionError::InvalidRecords(Box::new(errors)));
            }
        }
        Ok(())
    }
}
