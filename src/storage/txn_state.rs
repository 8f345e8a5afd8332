//! Transactions as one partition sees them: which producers have a transaction open here
//! (and the offset of its first batch), and the aborted transactions a read_committed
//! reader must drop.
//!
//! The last stable offset is the first offset of the oldest open transaction (or the high
//! watermark when none is open). Like the producer state it is rebuilt from the batch
//! headers and markers that recovery reads anyway, so it needs no file of its own.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// An aborted transaction: a read_committed reader drops this producer's data batches
/// from `first_offset` up to the abort marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct TxnState {
    /// producer id -> offset of the first batch of its open transaction.
    open: HashMap<i64, i64>,
    /// In marker order, so by `last_offset`.
    aborted: VecDeque<AbortedTxn>,
}

impl TxnState {
    /// A transactional data batch was written at `base_offset`.
    pub fn on_data(&mut self, producer_id: i64, base_offset: i64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// A marker was written at `marker_offset`; it closes the producer's open transaction.
    pub fn on_marker(&mut self, producer_id: i64, commit: bool, marker_offset: i64) {
        if let Some(first_offset) = self.open.remove(&producer_id) {
            if !commit {
                self.aborted.push_back(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: marker_offset,
                });
            }
        }
    }

    /// First offset of the oldest open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open.values().copied().min()
    }

    /// The first offset of `producer_id`'s open transaction here, if any.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// Aborted transactions that overlap [from, to): what a fetch of that range returns.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Markers come in offset order: skip those that ended before `from`.
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted
            .range(start..)
            .filter(|t| t.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start offset.
    pub fn trim(&mut self, log_start_offset: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|t| t.last_offset < log_start_offset)
        {
            self.aborted.pop_front();
        }
    }

    pub fn aborted_count(&self) -> usize {
        self.aborted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_commit_and_abort() {
        let mut t = TxnState::default();
        t.on_data(1, 10);
        t.on_data(1, 12);
        t.on_data(2, 11);
        assert_eq!(t.first_unstable_offset(), Some(10));
        t.on_marker(1, false, 13);
        assert_eq!(t.first_unstable_offset(), Some(11));
        t.on_marker(2, true, 14);
        assert_eq!(t.first_unstable_offset(), None);
        let aborted = AbortedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 13,
        };
        assert_eq!(t.aborted_between(0, 100), vec![aborted]);
        assert_eq!(t.aborted_between(13, 100), vec![aborted]);
        assert!(t.aborted_between(14, 100).is_empty());
        assert!(t.aborted_between(0, 10).is_empty());
        // A marker for a producer with nothing open changes nothing.
        t.on_marker(3, false, 15);
        assert_eq!(t.aborted_count(), 1);
        t.trim(14);
        assert_eq!(t.aborted_count(), 0);
    }
}
