//! Sparse time index of one segment: the largest timestamp seen so far -> the relative
//! offset of the batch where it was reached.
//!
//! File format (derived data, rebuilt from the log at every start): entries of
//! `[timestamp i64 BE][relative offset u32 BE]`, 12 bytes each, both ascending.

use std::path::Path;

use super::io::Storage;
use super::offset_index::write_whole;
use super::StorageError;

#[derive(Debug, Clone, Default)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn new(base_offset: i64) -> Self {
        TimeIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Adds an entry if `max_timestamp_so_far` grew since the last one.
    pub fn push(&mut self, max_timestamp_so_far: i64, offset: i64) {
        let relative = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        if self
            .entries
            .last()
            .is_none_or(|(t, r)| *t < max_timestamp_so_far && *r <= relative)
        {
            self.entries.push((max_timestamp_so_far, relative));
        }
    }

    /// An offset from which a scan for the first batch with max timestamp >= `ts` may
    /// start: every batch before it has a smaller timestamp.
    pub fn scan_start(&self, ts: i64) -> i64 {
        let i = self.entries.partition_point(|(t, _)| *t < ts);
        if i == 0 {
            self.base_offset
        } else {
            // Entry i-1's batch and all before it stay below ts: start after it.
            self.base_offset + self.entries[i - 1].1 as i64
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn write_to(&self, storage: &dyn Storage, path: &Path) -> Result<(), StorageError> {
        write_whole(storage, path, &self.encode())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * 12);
        for (t, r) in &self.entries {
            bytes.extend_from_slice(&t.to_be_bytes());
            bytes.extend_from_slice(&r.to_be_bytes());
        }
        bytes
    }

    /// Reads an index file's bytes; None unless whole entries in ascending order.
    pub fn decode(base_offset: i64, bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let entries: Vec<(i64, u32)> = bytes
            .chunks_exact(12)
            .map(|c| {
                let mut t = [0u8; 8];
                t.copy_from_slice(&c[..8]);
                (
                    i64::from_be_bytes(t),
                    u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                )
            })
            .collect();
        if !entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        {
            return None;
        }
        Some(TimeIndex {
            base_offset,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_start_never_skips_a_batch_that_reaches_the_timestamp() {
        let mut idx = TimeIndex::new(0);
        idx.push(100, 0);
        idx.push(200, 10);
        idx.push(150, 20); // not larger: ignored
        idx.push(300, 30);
        assert_eq!(idx.scan_start(50), 0);
        assert_eq!(idx.scan_start(100), 0);
        assert_eq!(idx.scan_start(150), 0);
        assert_eq!(idx.scan_start(250), 10);
        assert_eq!(idx.scan_start(301), 30);
    }
}
