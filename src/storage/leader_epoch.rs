//! The leader-epoch cache (KIP-101): for each leader epoch the first offset written in it,
//! so a follower that missed a leader change can ask where its epoch ended
//! (OffsetForLeaderEpoch) and truncate what the new leader never had.
//!
//! Kept in Kafka's `leader-epoch-checkpoint` format: a version line (`0`), a count line,
//! then one `epoch start_offset` line per entry, ascending. Written aside, fsynced, renamed
//! into place and the directory fsynced, through the storage seam.

use std::path::{Path, PathBuf};

use super::io::Storage;
use super::offset_index::write_whole;
use super::StorageError;

pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
const LEADER_EPOCH_TMP: &str = "leader-epoch-checkpoint.tmp";
const VERSION: u32 = 0;
/// Bounds on what is read back from disk: an entry per leader election is far below this.
const MAX_ENTRIES: usize = 100_000;
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache of one partition log, owned by it.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the partition's checkpoint file; a missing one is an empty cache.
    pub fn open(storage: &dyn Storage, dir: &Path) -> Result<LeaderEpochCache, StorageError> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let entries = if storage.exists(&path) {
            read_entries(storage, &path)?
        } else {
            Vec::new()
        };
        Ok(LeaderEpochCache { path, entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, as Kafka's `assign`: a newer epoch
    /// (or the same one starting earlier) replaces every entry it conflicts with.
    pub fn assign(
        &mut self,
        storage: &dyn Storage,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), StorageError> {
        if epoch < 0 || start_offset < 0 {
            return Ok(());
        }
        let needed = match self.entries.last() {
            Some(last) => epoch != last.epoch || start_offset < last.start_offset,
            None => true,
        };
        if !needed {
            return Ok(());
        }
        if self.entries.last().is_some_and(|l| l.epoch > epoch) {
            // An older epoch than one already recorded: never goes backwards.
            return Ok(());
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.write(storage)
    }

    /// OffsetForLeaderEpoch: (the largest epoch <= `requested`, the offset where it ended),
    /// with the log end offset for the latest epoch and (-1, -1) when not known.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The log was cut at `end_offset`: epochs starting at or after it are gone.
    pub fn truncate_from_end(
        &mut self,
        storage: &dyn Storage,
        end_offset: i64,
    ) -> Result<(), StorageError> {
        if end_offset < 0 || !self.entries.iter().any(|e| e.start_offset >= end_offset) {
            return Ok(());
        }
        self.entries.retain(|e| e.start_offset < end_offset);
        self.write(storage)
    }

    /// The log start moved to `start_offset`: earlier epochs go, and the epoch holding it
    /// now starts there.
    pub fn truncate_from_start(
        &mut self,
        storage: &dyn Storage,
        start_offset: i64,
    ) -> Result<(), StorageError> {
        let Some(holding) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return Ok(());
        };
        if holding == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..holding);
        self.entries[0].start_offset = start_offset;
        self.write(storage)
    }

    /// Forgets everything (the log was emptied and restarts elsewhere).
    pub fn clear(&mut self, storage: &dyn Storage) -> Result<(), StorageError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.write(storage)
    }

    fn write(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let dir = super::io::parent_dir(&self.path);
        let tmp = dir.join(LEADER_EPOCH_TMP);
        let io = |e| StorageError::io(&tmp, e);
        write_whole(storage, &tmp, text.as_bytes())?;
        storage.open(&tmp, false).map_err(io)?.sync().map_err(io)?;
        storage.rename(&tmp, &self.path).map_err(io)?;
        storage.sync_dir(dir).map_err(io)
    }
}

fn read_entries(storage: &dyn Storage, path: &Path) -> Result<Vec<EpochEntry>, StorageError> {
    let bad = |reason: String| StorageError::CorruptRecordFile {
        path: path.to_path_buf(),
        position: 0,
        reason,
    };
    let io = |e| StorageError::io(path, e);
    let file = storage.open(path, false).map_err(io)?;
    let len = file.len().map_err(io)?;
    if len > MAX_FILE_BYTES {
        return Err(bad(format!("{len} bytes is above the limit")));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(io)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut lines = text.lines();
    let version = lines.next().map(str::trim);
    if version != Some("0") {
        return Err(bad(format!("unknown version {version:?}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("no entry count".into()))?;
    if count > MAX_ENTRIES {
        return Err(bad(format!("{count} entries is above the limit")));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| bad("fewer entries than counted".into()))?;
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!("malformed entry {line:?}")));
        };
        let epoch: i32 = epoch
            .parse()
            .map_err(|_| bad(format!("bad epoch {line:?}")))?;
        let start_offset: i64 = offset
            .parse()
            .map_err(|_| bad(format!("bad offset {line:?}")))?;
        if entries
            .last()
            .is_some_and(|l: &EpochEntry| l.epoch >= epoch || l.start_offset > start_offset)
        {
            return Err(bad(format!("entries out of order at {line:?}")));
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimStorage;

    fn cache(storage: &SimStorage) -> LeaderEpochCache {
        storage.create_dir_all(Path::new("/p")).unwrap();
        LeaderEpochCache::open(storage, Path::new("/p")).unwrap()
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_epochs_ascending_and_replaces_conflicts() {
        let s = SimStorage::new();
        let mut c = cache(&s);
        c.assign(&s, 0, 0).unwrap();
        c.assign(&s, 0, 5).unwrap(); // same epoch, later offset: nothing
        c.assign(&s, 2, 10).unwrap();
        c.assign(&s, 1, 20).unwrap(); // older epoch: ignored
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10)]);
        c.assign(&s, 3, 8).unwrap(); // starts before epoch 2 did: epoch 2 goes
        assert_eq!(pairs(&c), vec![(0, 0), (3, 8)]);
    }

    #[test]
    fn end_offset_for_answers_as_offset_for_leader_epoch() {
        let s = SimStorage::new();
        let mut c = cache(&s);
        assert_eq!(c.end_offset_for(0, 10), (-1, -1), "empty cache");
        c.assign(&s, 1, 5).unwrap();
        c.assign(&s, 3, 20).unwrap();
        c.assign(&s, 4, 30).unwrap();
        assert_eq!(c.end_offset_for(4, 42), (4, 42), "latest: the log end");
        assert_eq!(c.end_offset_for(3, 42), (3, 30));
        assert_eq!(c.end_offset_for(2, 42), (1, 20), "unknown epoch: its floor");
        assert_eq!(c.end_offset_for(0, 42), (0, 5), "below every epoch");
        assert_eq!(c.end_offset_for(9, 42), (-1, -1), "above every epoch");
        assert_eq!(c.end_offset_for(-1, 42), (-1, -1));
    }

    #[test]
    fn the_file_is_kafkas_format_and_survives_reopen() {
        let s = SimStorage::new();
        let mut c = cache(&s);
        s.track_directory_entries();
        c.assign(&s, 0, 0).unwrap();
        c.assign(&s, 7, 123).unwrap();
        let file = s
            .open(Path::new("/p/leader-epoch-checkpoint"), false)
            .unwrap();
        let mut bytes = vec![0u8; file.len().unwrap() as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), "0\n2\n0 0\n7 123\n");
        assert!(!s.exists(Path::new("/p/leader-epoch-checkpoint.tmp")));
        s.power_cut();
        let again = LeaderEpochCache::open(&s, Path::new("/p")).unwrap();
        assert_eq!(pairs(&again), vec![(0, 0), (7, 123)]);
    }

    #[test]
    fn truncate_from_end_drops_epochs_at_or_after_the_offset() {
        let s = SimStorage::new();
        let mut c = cache(&s);
        c.assign(&s, 1, 0).unwrap();
        c.assign(&s, 2, 10).unwrap();
        c.assign(&s, 3, 20).unwrap();
        c.truncate_from_end(&s, 25).unwrap();
        assert_eq!(c.entries().len(), 3, "epoch 3 started before the cut");
        c.truncate_from_end(&s, 10).unwrap();
        assert_eq!(pairs(&c), vec![(1, 0)]);
        let again = LeaderEpochCache::open(&s, Path::new("/p")).unwrap();
        assert_eq!(pairs(&again), vec![(1, 0)]);
    }

    #[test]
    fn truncate_from_start_moves_the_first_epoch_up() {
        let s = SimStorage::new();
        let mut c = cache(&s);
        c.assign(&s, 1, 0).unwrap();
        c.assign(&s, 2, 10).unwrap();
        c.assign(&s, 3, 20).unwrap();
        c.truncate_from_start(&s, 15).unwrap();
        assert_eq!(pairs(&c), vec![(2, 15), (3, 20)]);
        c.truncate_from_start(&s, 20).unwrap();
        assert_eq!(pairs(&c), vec![(3, 20)]);
        c.truncate_from_start(&s, 5).unwrap();
        assert_eq!(pairs(&c), vec![(3, 20)], "below the first: nothing");
    }

    #[test]
    fn damaged_or_oversized_files_are_refused() {
        let s = SimStorage::new();
        s.create_dir_all(Path::new("/p")).unwrap();
        let put = |text: &str| {
            write_whole(&s, Path::new("/p/leader-epoch-checkpoint"), text.as_bytes()).unwrap();
            LeaderEpochCache::open(&s, Path::new("/p"))
        };
        assert!(put("1\n0\n").is_err(), "unknown version");
        assert!(put("0\n999999999\n").is_err(), "count above the bound");
        assert!(put("0\n2\n0 0\n").is_err(), "fewer lines than counted");
        assert!(put("0\n2\n3 10\n2 20\n").is_err(), "epochs out of order");
        assert!(put("0\n1\n1 x\n").is_err(), "bad offset");
        assert_eq!(put("0\n1\n4 9\n").unwrap().latest_epoch(), Some(4));
    }
}
