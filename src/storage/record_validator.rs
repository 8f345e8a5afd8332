//! The per-record checks of a produced batch, as Kafka's LogValidator makes them: a
//! compacted topic refuses records without a key, and a CreateTime topic refuses records
//! whose timestamp is outside `message.timestamp.before.max.ms` / `after.max.ms` of the
//! broker's clock (KIP-937). Every record is looked at, so the answer can name each bad
//! one (KIP-467's `record_errors`), and the records are streamed through the bounded
//! decompression: memory is a small buffer plus the listed errors, at most
//! `MAX_RECORD_ERRORS` of them.

use super::batch::BatchHeader;
use super::batch_records::scan_records;
use super::StorageError;

/// The most record errors one batch's answer lists. Kafka lists all, bounded only by the
/// batch; here the list stays small however many records a compressed batch expands to.
/// The count of all bad records is still given (in `RecordErrors::total`).
pub const MAX_RECORD_ERRORS: usize = 1000;

/// The CreateTime window of KIP-937 (milliseconds either side of the broker's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampWindow {
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

impl TimestampWindow {
    /// None when neither side limits anything (both Long.MAX_VALUE, Kafka's defaults).
    pub fn new(before_max_ms: i64, after_max_ms: i64) -> Option<TimestampWindow> {
        (before_max_ms != i64::MAX || after_max_ms != i64::MAX).then_some(TimestampWindow {
            before_max_ms,
            after_max_ms,
        })
    }
}

/// What a topic asks of each record of a produced batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordChecks {
    /// A compacted topic: every record has a key.
    pub require_key: bool,
    /// CreateTime topics with a window; None for LogAppendTime topics.
    pub timestamp_window: Option<TimestampWindow>,
}

impl RecordChecks {
    pub fn any(&self) -> bool {
        self.require_key || self.timestamp_window.is_some()
    }
}

/// Why one record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordProblem {
    NoKey,
    /// The record's timestamp and offset (as the producer sent them).
    Timestamp {
        timestamp: i64,
        offset: i64,
    },
}

/// One refused record: its index in its batch (KIP-467's batch_index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub problem: RecordProblem,
}

/// The refused records of one batch. A timestamp error makes the whole answer
/// INVALID_TIMESTAMP, as in Kafka; otherwise it is INVALID_RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordErrors {
    /// `topic-partition`, as Kafka's messages name it.
    pub partition: String,
    /// The first `MAX_RECORD_ERRORS` refused records.
    pub listed: Vec<RecordError>,
    /// How many records were refused.
    pub total: usize,
    /// The window's bounds at the broker's clock, when a timestamp was out of it.
    pub timestamp_bounds: Option<(i64, i64)>,
}

impl RecordErrors {
    pub fn is_timestamp(&self) -> bool {
        self.timestamp_bounds.is_some()
    }

    /// One record's message, worded as Kafka's LogValidator words it.
    pub fn message(&self, error: &RecordError) -> String {
        match error.problem {
            RecordProblem::NoKey => format!(
                "Compacted topic cannot accept message without key in topic partition {}.",
                self.partition
            ),
            RecordProblem::Timestamp { timestamp, offset } => {
                let (min, max) = self.timestamp_bounds.unwrap_or((i64::MIN, i64::MAX));
                format!(
                    "Timestamp {timestamp} of message with offset {offset} is out of range. \
                     The timestamp should be within [{min}, {max}]"
                )
            }
        }
    }

    /// The partition's error_message, as Kafka's `processRecordErrors` gives it.
    pub fn summary(&self) -> String {
        if self.is_timestamp() {
            return "One or more records have been rejected due to invalid timestamp".into();
        }
        let first: Vec<String> = self
            .listed
            .iter()
            .take(3)
            .map(|e| {
                format!(
                    "RecordError(batchIndex={}, message='{}')",
                    e.batch_index,
                    self.message(e)
                )
            })
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and only \
             showing the first three errors at most: [{}]",
            self.total,
            first.join(", ")
        )
    }
}

/// Checks every record of `batch` against `checks`, decompressing at most `limit` bytes.
/// Ok(None) when every record passes; a malformed batch is an error.
pub fn check_records(
    batch: &[u8],
    header: &BatchHeader,
    limit: usize,
    checks: &RecordChecks,
    now_ms: i64,
    partition: impl FnOnce() -> String,
) -> Result<Option<RecordErrors>, StorageError> {
    if header.is_control() || !checks.any() {
        return Ok(None);
    }
    // A window stated in ms either side of now, saturating so Long.MAX_VALUE means "none".
    let bounds = checks.timestamp_window.map(|w| {
        (
            now_ms.saturating_sub(w.before_max_ms),
            now_ms.saturating_add(w.after_max_ms),
        )
    });
    let mut listed = Vec::new();
    let mut total = 0usize;
    let mut timestamp_error = false;
    let mut index: i32 = 0;
    scan_records(batch, header, limit, |r| {
        let timestamp = header.base_timestamp.wrapping_add(r.timestamp_delta);
        // The key is checked first and a record gets one error, as in Kafka.
        let problem = if checks.require_key && r.key_len < 0 {
            Some(RecordProblem::NoKey)
        } else {
            match bounds {
                // -1 is Kafka's NO_TIMESTAMP: not checked.
                Some((min, max)) if timestamp != -1 && (timestamp < min || timestamp > max) => {
                    timestamp_error = true;
                    Some(RecordProblem::Timestamp {
                        timestamp,
                        offset: header.base_offset.wrapping_add(r.offset_delta),
                    })
                }
                _ => None,
            }
        };
        if let Some(problem) = problem {
            total += 1;
            if listed.len() < MAX_RECORD_ERRORS {
                listed.push(RecordError {
                    batch_index: index,
                    problem,
                });
            }
        }
        index = index.saturating_add(1);
        None::<()> // every record is looked at
    })?;
    if total == 0 {
        return Ok(None);
    }
    Ok(Some(RecordErrors {
        partition: partition(),
        listed,
        total,
        timestamp_bounds: bounds.filter(|_| timestamp_error),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batch;
    use crate::storage::batch_builder::{build_batch, KeyValue};

    fn check(batch: &[u8], checks: RecordChecks, now_ms: i64) -> Option<RecordErrors> {
        let h = validate_batch(batch).unwrap();
        check_records(batch, &h, 1 << 20, &checks, now_ms, || "t-0".into()).unwrap()
    }

    const KEYS: RecordChecks = RecordChecks {
        require_key: true,
        timestamp_window: None,
    };

    #[test]
    fn keyless_records_are_listed_by_their_index_in_the_batch() {
        let keyed = build_batch(&[(Some(b"k"), Some(b"v"))], 0);
        assert_eq!(check(&keyed, KEYS, 0), None);
        let mixed = build_batch(
            &[
                (None, Some(b"a")),
                (Some(b"k"), Some(b"b")),
                (None, Some(b"c")),
            ],
            0,
        );
        let errors = check(&mixed, KEYS, 0).unwrap();
        let indexes: Vec<i32> = errors.listed.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![0, 2]);
        assert_eq!(errors.total, 2);
        assert!(!errors.is_timestamp());
        assert_eq!(
            errors.message(&errors.listed[0]),
            "Compacted topic cannot accept message without key in topic partition t-0."
        );
        assert!(errors.summary().contains("due to 2 record errors in total"));
        // Nothing is checked when the topic asks nothing.
        assert_eq!(check(&mixed, RecordChecks::default(), 0), None);
    }

    #[test]
    fn the_listed_errors_are_capped_and_the_total_counts_all() {
        let records: Vec<KeyValue<'_>> = (0..MAX_RECORD_ERRORS + 5).map(|_| (None, None)).collect();
        let batch = build_batch(&records, 0);
        let errors = check(&batch, KEYS, 0).unwrap();
        assert_eq!(errors.listed.len(), MAX_RECORD_ERRORS);
        assert_eq!(errors.total, MAX_RECORD_ERRORS + 5);
    }

    #[test]
    fn compressed_batches_are_checked_through_the_bounded_decompression() {
        use crate::storage::batch_builder::build_compressed_batch;
        use kafka_protocol::records::Compression;
        let records: Vec<KeyValue<'_>> = (0..100)
            .map(|i| ((i % 10 != 0).then_some(b"k".as_slice()), None))
            .collect();
        let batch = build_compressed_batch(&records, 0, Compression::Zstd);
        let errors = check(&batch, KEYS, 0).unwrap();
        let indexes: Vec<i32> = errors.listed.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        // Past the decompression limit: the batch is refused whole.
        let h = validate_batch(&batch).unwrap();
        let err = check_records(&batch, &h, 16, &KEYS, 0, String::new).unwrap_err();
        assert!(matches!(err, StorageError::InvalidBatch(_)), "{err}");
    }

    #[test]
    fn timestamps_outside_the_window_are_listed() {
        let ts = 1_700_000_000_000;
        let batch = build_batch(&[(Some(b"k"), Some(b"v"))], ts);
        let window = |before, after| RecordChecks {
            require_key: false,
            timestamp_window: TimestampWindow::new(before, after),
        };
        assert_eq!(check(&batch, window(1000, 1000), ts), None);
        // The record is 2 s old for a window of 1 s before now.
        let errors = check(&batch, window(1000, i64::MAX), ts + 2000).unwrap();
        assert!(errors.is_timestamp());
        assert_eq!(errors.listed[0].batch_index, 0);
        assert_eq!(
            errors.message(&errors.listed[0]),
            format!(
                "Timestamp {ts} of message with offset 0 is out of range. The timestamp should \
                 be within [{}, {}]",
                ts + 1000,
                i64::MAX
            )
        );
        // 2 s in the future for a window of 1 s after now.
        assert!(check(&batch, window(i64::MAX, 1000), ts - 2000).is_some());
        assert_eq!(check(&batch, window(i64::MAX, i64::MAX), 0), None);
        assert_eq!(TimestampWindow::new(i64::MAX, i64::MAX), None);
    }
}
