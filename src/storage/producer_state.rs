//! Idempotent producer state of one partition: for each producer id its epoch and the
//! sequence ranges and offsets of its last five batches (Kafka keeps five, the most a
//! producer has in flight).
//!
//! Owned by the partition log (so by one partition actor); rebuilt on every start from the
//! batch headers that recovery reads anyway, so it survives a restart without a file of
//! its own. The rules are Kafka's: a batch equal to one of the last five is a duplicate
//! and is answered with its original offsets; a batch from an older epoch is refused
//! (INVALID_PRODUCER_EPOCH); a new epoch must start at sequence 0; otherwise a batch must
//! continue right after the last sequence (OUT_OF_ORDER_SEQUENCE_NUMBER). A producer idle
//! for producer.id.expiration.ms is forgotten (`expire`), in memory and, from the next
//! log checkpoint on, in the snapshot.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::batch::BatchHeader;
use super::control_batch::marker;
use super::txn_state::TxnState;

/// How many recent batches per producer are remembered for duplicate detection.
pub const REMEMBERED_BATCHES: usize = 5;
/// Producer ids remembered per partition; the least recently written is forgotten first.
pub const MAX_PRODUCERS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next one in sequence: append it.
    Append,
    /// Already in the log: answer with these offsets, write nothing.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than its current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id} sent sequence {got}, expected {expected}")]
    OutOfOrder {
        producer_id: i64,
        got: i32,
        expected: i32,
    },
    #[error(
        "a marker for producer {producer_id} from coordinator epoch {got}, older than {current}"
    )]
    CoordinatorFenced {
        producer_id: i64,
        got: i32,
        current: i32,
    },
}

/// The coordinator epoch of a producer no marker has been seen for (and of snapshots
/// written before coordinator epochs were kept).
fn no_coordinator_epoch() -> i32 {
    -1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// Append counter value at the last write, for forgetting the least recent producer.
    last_used: u64,
    /// Max timestamp of its last batch (DescribeProducers).
    last_timestamp: i64,
    /// The transaction coordinator epoch of its last marker: a marker from an older
    /// coordinator is refused (Kafka's ProducerStateEntry.coordinatorEpoch).
    #[serde(default = "no_coordinator_epoch")]
    coordinator_epoch: i32,
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// First offset of its open transaction here, or -1.
    pub current_txn_start_offset: i64,
}

/// Serializable: the log checkpoint carries a snapshot of it (see `log_checkpoint`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    clock: u64,
    /// Open and aborted transactions of these producers.
    pub txns: TxnState,
}

fn last_sequence(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX back to 0, as in Kafka.
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch before it is appended.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A producer this partition has not seen (or has forgotten): take it as it comes.
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id: h.producer_id,
                    got: h.base_sequence,
                    expected: 0,
                })
            };
        }
        let last = last_sequence(h);
        if let Some(done) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == h.base_sequence && b.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate(*done));
        }
        let expected = entry
            .batches
            .back()
            .map(|b| {
                if b.last_sequence == i32::MAX {
                    0
                } else {
                    b.last_sequence + 1
                }
            })
            .unwrap_or(h.base_sequence);
        if h.base_sequence != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id: h.producer_id,
                got: h.base_sequence,
                expected,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Replays one batch read back from the log (recovery): data or marker.
    pub fn observe(&mut self, batch: &[u8], h: &BatchHeader) {
        if h.is_control() {
            if let Some((commit, coordinator_epoch)) = marker(batch) {
                self.record_marker(
                    h.producer_id,
                    h.producer_epoch,
                    commit,
                    coordinator_epoch,
                    h.base_offset,
                    h.max_timestamp,
                );
            }
        } else {
            self.record(h, h.base_offset);
        }
    }

    /// Checks a transaction marker: one from a producer epoch older than the producer's,
    /// or from a coordinator epoch older than its last marker's (a stale coordinator), is
    /// refused, as in Kafka.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(SequenceError::InvalidEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            }),
            Some(entry) if coordinator_epoch < entry.coordinator_epoch => {
                Err(SequenceError::CoordinatorFenced {
                    producer_id,
                    got: coordinator_epoch,
                    current: entry.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a marker now in the log at `offset`: it ends the producer's transaction
    /// here, and a newer epoch in it fences the older one (its sequences start again).
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        offset: i64,
        timestamp: i64,
    ) {
        self.txns.on_marker(producer_id, commit, offset);
        let entry = self.entry(producer_id, epoch);
        entry.last_timestamp = timestamp;
        entry.coordinator_epoch = entry.coordinator_epoch.max(coordinator_epoch);
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
    }

    fn entry(&mut self, producer_id: i64, epoch: i16) -> &mut ProducerEntry {
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_used: clock,
                last_timestamp: -1,
                coordinator_epoch: no_coordinator_epoch(),
            });
        entry.last_used = clock;
        entry
    }

    /// producer.id.expiration.ms, Kafka's rule (ProducerStateManager): a producer with no
    /// transaction open here whose last batch or marker timestamp is `expiration_ms` or
    /// more before `now_ms` is forgotten; a later batch of it is taken as an unknown
    /// producer's. Answers how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let txns = &self.txns;
        self.producers.retain(|id, entry| {
            txns.open_transaction(*id).is_some()
                || now_ms.saturating_sub(entry.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Every producer remembered here (DescribeProducers).
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut all: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerSummary {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map(|b| b.last_sequence).unwrap_or(-1),
                last_timestamp: e.last_timestamp,
                current_txn_start_offset: self.txns.open_transaction(*id).unwrap_or(-1),
            })
            .collect();
        all.sort_by_key(|p| p.producer_id);
        all
    }

    /// Records a batch that is now in the log at `base_offset`.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        if h.is_transactional() {
            self.txns.on_data(h.producer_id, base_offset);
        }
        let entry = self.entry(h.producer_id, h.producer_epoch);
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = h.max_timestamp;
        if entry.batches.len() == REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: h.base_sequence,
            last_sequence: last_sequence(h),
            base_offset,
            last_offset: base_offset + h.last_offset_delta as i64,
        });
        if self.producers.len() > MAX_PRODUCERS {
            // A producer with a transaction open here is never forgotten.
            if let Some(oldest) = self
                .producers
                .iter()
                .filter(|(id, _)| self.txns.open_transaction(**id).is_none())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| *id)
            {
                self.producers.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::BatchHeader;
    use crate::storage::batch_builder::build_batch;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: usize) -> BatchHeader {
        let values: Vec<Vec<u8>> = (0..records).map(|i| vec![i as u8]).collect();
        let kv: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
        let mut h = BatchHeader::parse(&build_batch(&kv, 0)).unwrap();
        h.producer_id = producer_id;
        h.producer_epoch = epoch;
        h.base_sequence = base_sequence;
        h
    }

    #[test]
    fn in_order_duplicate_gap_and_epochs() {
        let mut t = ProducerStateTable::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(t.check(&first), Ok(SequenceCheck::Append));
        t.record(&first, 100);
        let second = header(7, 0, 3, 2);
        assert_eq!(t.check(&second), Ok(SequenceCheck::Append));
        t.record(&second, 103);
        // A retry of either is a duplicate with its original offsets.
        let again = t.check(&header(7, 0, 0, 3)).unwrap();
        assert_eq!(
            again,
            SequenceCheck::Duplicate(BatchMetadata {
                first_sequence: 0,
                last_sequence: 2,
                base_offset: 100,
                last_offset: 102
            })
        );
        assert!(matches!(
            t.check(&header(7, 0, 3, 2)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        // A gap.
        assert_eq!(
            t.check(&header(7, 0, 9, 1)),
            Err(SequenceError::OutOfOrder {
                producer_id: 7,
                got: 9,
                expected: 5
            })
        );
        // An older epoch is refused; a newer epoch starts at 0.
        t.record(&header(7, 2, 0, 1), 105);
        assert!(matches!(
            t.check(&header(7, 1, 1, 1)),
            Err(SequenceError::InvalidEpoch { .. })
        ));
        assert!(matches!(
            t.check(&header(7, 3, 4, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(t.check(&header(7, 3, 0, 1)), Ok(SequenceCheck::Append));
        // Non-idempotent batches are not checked.
        assert_eq!(t.check(&header(-1, -1, -1, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut t = ProducerStateTable::default();
        for i in 0..8 {
            t.record(&header(1, 0, i, 1), i as i64);
        }
        assert!(matches!(
            t.check(&header(1, 0, 7, 1)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        assert!(matches!(
            t.check(&header(1, 0, 3, 1)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        assert!(matches!(
            t.check(&header(1, 0, 2, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        let mut w = ProducerStateTable::default();
        w.record(&header(2, 0, i32::MAX, 1), 0);
        assert_eq!(w.check(&header(2, 0, 0, 1)), Ok(SequenceCheck::Append));
    }

    fn stamped(producer_id: i64, base_sequence: i32, timestamp: i64) -> BatchHeader {
        let mut h = header(producer_id, 0, base_sequence, 1);
        h.max_timestamp = timestamp;
        h
    }

    /// Kafka's rule: after a marker from coordinator epoch 3, one from epoch 2 (a stale
    /// coordinator) is refused; the same or a newer one is taken; the log checkpoint's
    /// producer snapshot keeps it.
    #[test]
    fn a_marker_from_an_older_coordinator_epoch_is_fenced() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check_marker(7, 0, 0), Ok(()));
        t.record_marker(7, 0, true, 3, 10, 1_000);
        assert_eq!(
            t.check_marker(7, 0, 2),
            Err(SequenceError::CoordinatorFenced {
                producer_id: 7,
                got: 2,
                current: 3
            })
        );
        assert_eq!(t.check_marker(7, 0, 3), Ok(()));
        assert_eq!(t.check_marker(7, 1, 4), Ok(()));
        // An older producer epoch is refused first, as Kafka checks it first.
        t.record_marker(7, 1, false, 4, 11, 1_000);
        assert!(matches!(
            t.check_marker(7, 0, 1),
            Err(SequenceError::InvalidEpoch { .. })
        ));
        let snapshot = rmp_serde::to_vec_named(&t).unwrap();
        let replayed: ProducerStateTable = rmp_serde::from_slice(&snapshot).unwrap();
        assert!(replayed.check_marker(7, 1, 3).is_err());
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut t = ProducerStateTable::default();
        t.record(&stamped(1, 0, 1_000), 0);
        t.record(&stamped(2, 0, 5_000), 1);
        let mut open = stamped(3, 0, 1_000);
        open.attributes |= 0x10; // transactional
        t.record(&open, 2);
        // A marker counts as an update, at its own timestamp.
        t.record_marker(4, 0, true, 0, 3, 1_000);
        t.record_marker(5, 0, true, 0, 4, 9_000);
        assert_eq!(t.len(), 5);

        // Not yet: 1_000 + 5_000 > 5_999.
        assert_eq!(t.expire(5_999, 5_000), 0);
        // Producers 1 and 4 are idle for 5_000 ms; 3 has a transaction open here.
        assert_eq!(t.expire(6_000, 5_000), 2);
        let left: Vec<i64> = t.summaries().iter().map(|p| p.producer_id).collect();
        assert_eq!(left, vec![2, 3, 5]);

        // An expired producer is unknown: any sequence is taken, as Kafka takes it.
        assert_eq!(t.check(&stamped(1, 17, 7_000)), Ok(SequenceCheck::Append));
        // Once its transaction ends, producer 3 expires too.
        t.record_marker(3, 0, false, 0, 5, 1_500);
        assert_eq!(t.expire(20_000, 5_000), 3);
        assert!(t.is_empty());
    }
}
