//! Sparse offset index of one segment: relative offset -> byte position of a batch.
//!
//! File format (derived data, rebuilt from the log at every start and never trusted over
//! it): entries of `[relative offset u32 BE][position u32 BE]`, 8 bytes each, ascending.

use std::path::Path;

use super::io::Storage;
use super::StorageError;

#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn new(base_offset: i64) -> Self {
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Records that the batch starting at `offset` begins at `position`.
    pub fn push(&mut self, offset: i64, position: u64) {
        let relative = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let position = position.min(u32::MAX as u64) as u32;
        if self.entries.last().is_none_or(|(r, _)| *r < relative) {
            self.entries.push((relative, position));
        }
    }

    /// (offset, position) of the last entry at or below `offset`; the segment start if none.
    pub fn lookup(&self, offset: i64) -> (i64, u64) {
        let relative = offset - self.base_offset;
        if relative < 0 {
            return (self.base_offset, 0);
        }
        let i = self
            .entries
            .partition_point(|(r, _)| (*r as i64) <= relative);
        if i == 0 {
            (self.base_offset, 0)
        } else {
            let (r, p) = self.entries[i - 1];
            (self.base_offset + r as i64, p as u64)
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.entries
            .iter()
            .map(|(r, p)| (self.base_offset + *r as i64, *p as u64))
    }

    pub fn write_to(&self, storage: &dyn Storage, path: &Path) -> Result<(), StorageError> {
        write_whole(storage, path, &self.encode())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * 8);
        for (r, p) in &self.entries {
            bytes.extend_from_slice(&r.to_be_bytes());
            bytes.extend_from_slice(&p.to_be_bytes());
        }
        bytes
    }

    /// Reads an index file's bytes; None unless whole entries in ascending order.
    pub fn decode(base_offset: i64, bytes: &[u8]) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let entries: Vec<(u32, u32)> = bytes
            .chunks_exact(8)
            .map(|c| {
                (
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect();
        if !entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        {
            return None;
        }
        Some(OffsetIndex {
            base_offset,
            entries,
        })
    }
}

/// Replaces a derived file's contents (no fsync: it is rebuilt after a crash).
pub(crate) fn write_whole(
    storage: &dyn Storage,
    path: &Path,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let file = storage
        .open(path, true)
        .map_err(|e| StorageError::io(path, e))?;
    file.truncate(0).map_err(|e| StorageError::io(path, e))?;
    file.write_at(bytes, 0)
        .map_err(|e| StorageError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_last_entry_at_or_below() {
        let mut idx = OffsetIndex::new(100);
        assert_eq!(idx.lookup(150), (100, 0));
        idx.push(110, 4096);
        idx.push(130, 8200);
        idx.push(130, 9000); // not ascending: ignored
        assert_eq!(idx.lookup(105), (100, 0));
        assert_eq!(idx.lookup(110), (110, 4096));
        assert_eq!(idx.lookup(129), (110, 4096));
        assert_eq!(idx.lookup(1000), (130, 8200));
        assert_eq!(idx.lookup(50), (100, 0));
        assert_eq!(idx.len(), 2);
    }
}
