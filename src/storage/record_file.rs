//! Durable framed records (the metadata log, group offsets, transaction state): one
//! append-only file.
//!
//! Byte format, per record: `[length u32 BE][crc32c u32 BE of payload][payload]`, the payload
//! being the record as rmp-serde (MessagePack with field names). A payload above 64 MiB is
//! refused when written (nothing is written), so the reader never meets one that was
//! acknowledged; reading one is corruption, never an allocation.
//!
//! On open every whole valid record is replayed in order. What follows the last valid
//! record is judged (`scan`):
//! - a torn tail, the last append cut short by a crash (never acknowledged, since an append
//!   is acknowledged only after its fsync), is cut, as before;
//! - anything else is corruption in the middle of the file: open fails naming the file and
//!   byte, so the broker refuses to start; `broker check` reports it and only
//!   `broker check --repair` cuts it (`RecordFile::repair`).
//!
//! The damage at byte P is a torn tail when the bytes from P to the end are no more than one
//! frame could be (8 + 64 MiB) and either they are all zeros (the file grew, the data never
//! landed) or both of these hold: a whole frame at P does not end before the file does (a
//! bad CRC followed by more data is corruption), and no whole valid frame starts anywhere
//! after P.
//!
//! A store whose file may no longer be the one on disk (a rewrite failed after its rename)
//! is failed: it refuses every later write, so nothing is acknowledged into a replaced file.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{error, warn};

use super::io::{create_dir_durable, parent_dir, remove_leftover, LogFile, Storage};
use super::StorageError;

pub(crate) const FRAME_HEADER: usize = 8;
pub(crate) const MAX_RECORD: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct RecordFile<T> {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    file: Arc<dyn LogFile>,
    end: u64,
    /// Set when the handle may not be the file on disk any more: writes are refused.
    failed: bool,
    _records: PhantomData<fn() -> T>,
}

/// What is wrong at the end of a record file's valid records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where the valid records end.
    pub position: u64,
    pub reason: String,
    /// The last append cut short by a crash: cutting it drops nothing acknowledged.
    pub torn_tail: bool,
}

/// The records of a record file and what follows them, if anything.
#[derive(Debug)]
pub struct Scan<T> {
    pub records: Vec<T>,
    pub len: u64,
    pub damage: Option<Damage>,
}

/// Why the frame at `pos` of `bytes` is not a valid record, or its length and record.
fn frame_at<T: DeserializeOwned>(bytes: &[u8], pos: usize) -> Result<(usize, T), String> {
    let rest = &bytes[pos..];
    let Some((header, rest)) = rest.split_first_chunk::<FRAME_HEADER>() else {
        return Err("a frame header is cut short".into());
    };
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if size > MAX_RECORD {
        return Err(format!("record length {size} is above the limit"));
    }
    let Some(payload) = rest.get(..size) else {
        return Err(format!("record of {size} bytes is cut short"));
    };
    if crc32c::crc32c(payload) != crc {
        return Err("CRC-32C mismatch".into());
    }
    rmp_serde::from_slice::<T>(payload)
        .map(|record| (FRAME_HEADER + size, record))
        .map_err(|e| format!("record does not decode: {e}"))
}

/// Whether the damage at the start of `tail` (the bytes from the damaged frame to the end
/// of the file) is a torn last append (see the module comment). The search for a valid
/// frame after the damage checks at most a few times the tail's bytes against CRCs; a
/// tail that needs more is judged corrupt (the broker then refuses to start rather than
/// cut something it could not clear).
fn is_torn_tail<T: DeserializeOwned>(tail: &[u8]) -> bool {
    // Zeros are what a crash leaves where the file grew but the data never landed.
    if tail.iter().all(|b| *b == 0) {
        return true;
    }
    if let Some(header) = tail.first_chunk::<FRAME_HEADER>() {
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if size <= MAX_RECORD && FRAME_HEADER + size < tail.len() {
            return false; // a whole frame that is bad, with more data after it
        }
    }
    let mut budget = tail.len().saturating_mul(4).saturating_add(1 << 20);
    for at in 1..tail.len() {
        let Some(header) = tail[at..].first_chunk::<FRAME_HEADER>() else {
            break;
        };
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if size > MAX_RECORD || FRAME_HEADER + size > tail.len() - at {
            continue;
        }
        if size > budget {
            return false;
        }
        budget -= size;
        if frame_at::<T>(tail, at).is_ok() {
            return false;
        }
    }
    true
}

/// Reads every valid record of `file` and judges what follows them. Memory: the records,
/// plus one frame (at most 64 MiB) at a time; a damaged tail is read whole only when it is
/// small enough to be one frame.
pub fn scan<T: DeserializeOwned>(file: &dyn LogFile, path: &Path) -> Result<Scan<T>, StorageError> {
    let io = |e| StorageError::io(path, e);
    let len = file.len().map_err(io)?;
    let mut records = Vec::new();
    let mut pos = 0u64;
    let mut header = [0u8; FRAME_HEADER];
    while pos < len {
        let left = len - pos;
        let frame_len = if left < FRAME_HEADER as u64 {
            left
        } else {
            file.read_exact_at(&mut header, pos).map_err(io)?;
            let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
            (FRAME_HEADER as u64 + size.min(MAX_RECORD as u64 + 1)).min(left)
        };
        let mut frame = vec![0u8; frame_len as usize];
        file.read_exact_at(&mut frame, pos).map_err(io)?;
        match frame_at::<T>(&frame, 0) {
            Ok((size, record)) => {
                records.push(record);
                pos += size as u64;
            }
            Err(reason) => {
                let torn_tail = left <= (FRAME_HEADER + MAX_RECORD) as u64 && {
                    let mut tail = vec![0u8; left as usize];
                    file.read_exact_at(&mut tail, pos).map_err(io)?;
                    is_torn_tail::<T>(&tail)
                };
                let damage = Damage {
                    position: pos,
                    reason,
                    torn_tail,
                };
                return Ok(Scan {
                    records,
                    len,
                    damage: Some(damage),
                });
            }
        }
    }
    Ok(Scan {
        records,
        len,
        damage: None,
    })
}

impl<T: Serialize + DeserializeOwned> RecordFile<T> {
    /// Opens (creating) the file and replays it; returns the records and the bytes of a
    /// torn tail cut. Corruption before the end is an error naming the file and byte.
    pub fn open(
        storage: Arc<dyn Storage>,
        path: PathBuf,
    ) -> Result<(RecordFile<T>, Vec<T>, u64), StorageError> {
        Self::open_cutting(storage, path, false)
    }

    /// `broker check --repair`: opens the file cutting it at its first damage, torn tail
    /// or not (the records after a corrupt one are dropped).
    pub fn repair(
        storage: Arc<dyn Storage>,
        path: PathBuf,
    ) -> Result<(RecordFile<T>, Vec<T>, u64), StorageError> {
        Self::open_cutting(storage, path, true)
    }

    fn open_cutting(
        storage: Arc<dyn Storage>,
        path: PathBuf,
        cut_corruption: bool,
    ) -> Result<(RecordFile<T>, Vec<T>, u64), StorageError> {
        let created = !storage.exists(&path);
        let file = storage
            .open(&path, true)
            .map_err(|e| StorageError::io(&path, e))?;
        if created {
            // The new file's entry must survive a power cut before anything in it is
            // acknowledged.
            sync_parent(storage.as_ref(), &path)?;
        }
        let Scan {
            records,
            len,
            damage,
        } = scan::<T>(file.as_ref(), &path)?;
        let end = damage.as_ref().map_or(len, |d| d.position);
        if let Some(damage) = damage {
            if !damage.torn_tail && !cut_corruption {
                error!(path = %path.display(), position = damage.position, reason = %damage.reason,
                    "A record file is corrupt before its end; it is left as it is. Run `broker check --repair` to cut it there.");
                return Err(StorageError::CorruptRecordFile {
                    path,
                    position: damage.position,
                    reason: damage.reason,
                });
            }
            warn!(path = %path.display(), position = end, bytes = len - end, reason = %damage.reason,
                torn_tail = damage.torn_tail, "Cutting a record file at its first damage.");
            file.truncate(end).map_err(|e| StorageError::io(&path, e))?;
            file.sync().map_err(|e| StorageError::io(&path, e))?;
        }
        let record_file = RecordFile {
            storage,
            path,
            file,
            end,
            failed: false,
            _records: PhantomData,
        };
        Ok((record_file, records, len - end))
    }

    /// True once a failed rewrite left the store refusing writes.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// One record as its frame (header and payload), refused above the size limit.
    pub(crate) fn frame(record: &T) -> Result<Vec<u8>, StorageError> {
        let payload =
            rmp_serde::to_vec_named(record).map_err(|e| StorageError::Encode(e.to_string()))?;
        // What the reader would refuse is never written.
        if payload.len() > MAX_RECORD {
            return Err(StorageError::RecordTooLarge {
                size: payload.len(),
                limit: MAX_RECORD,
            });
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        Ok(frame)
    }

    /// Appends one record and fsyncs before returning.
    pub fn append(&mut self, record: &T) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        let frame = Self::frame(record)?;
        let result = self
            .file
            .write_at(&frame, self.end)
            .and_then(|_| self.file.sync());
        if let Err(e) = result {
            if self.file.truncate(self.end).is_err() {
                // A half-written frame stays before the next append's: refuse writes.
                self.failed = true;
            }
            return Err(StorageError::io(&self.path, e));
        }
        self.end += frame.len() as u64;
        Ok(())
    }

    /// Replaces the whole file with `records` (write aside, fsync, rename over, fsync the
    /// directory). A failure before the rename leaves the file and this handle as they
    /// were; one after it fails the store, which refuses writes from then on, so no append
    /// goes to the replaced file.
    pub fn rewrite(&mut self, records: &[T]) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed);
        }
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend(Self::frame(record)?);
        }
        let tmp = self.path.with_extension("tmp");
        let io = |e| StorageError::io(&tmp, e);
        let written = self.storage.open(&tmp, true).and_then(|file| {
            file.truncate(0)?;
            file.write_at(&bytes, 0)?;
            file.sync()
        });
        if let Err(e) = written.and_then(|_| self.storage.rename(&tmp, &self.path)) {
            // The path still names the old file, which this handle has open.
            remove_leftover(self.storage.as_ref(), &tmp);
            return Err(io(e));
        }
        let reopened = sync_parent(self.storage.as_ref(), &self.path).and_then(|_| {
            self.storage
                .open(&self.path, false)
                .map_err(|e| StorageError::io(&self.path, e))
        });
        match reopened {
            Ok(file) => {
                self.file = file;
                self.end = bytes.len() as u64;
                Ok(())
            }
            Err(err) => {
                error!(path = %self.path.display(), %err,
                    "A record file rewrite failed after its rename; the store refuses writes until restart.");
                self.failed = true;
                Err(err)
            }
        }
    }
}

/// fsync of the directory holding `path`, so a created or renamed entry is durable.
fn sync_parent(storage: &dyn Storage, path: &Path) -> Result<(), StorageError> {
    let dir = parent_dir(path);
    storage.sync_dir(dir).map_err(|e| StorageError::io(dir, e))
}

/// Creates a record store's directory (`__meta`, `__groups`, `__transactions`) and makes
/// its entry durable in the parent directory.
pub fn create_store_dir(storage: &dyn Storage, dir: &Path) -> Result<(), StorageError> {
    create_dir_durable(storage, dir).map_err(|e| StorageError::io(dir, e))
}
