//! Durable framed records (metadata now, group offsets later): one append-only file.
//!
//! Byte format, per record: `[length u32 BE][crc32c u32 BE of payload][payload]`, the payload
//! being the record as rmp-serde (MessagePack with field names). On open every whole valid
//! record is replayed in order; a torn or corrupt tail is cut. A length above 64 MiB is
//! corruption, never an allocation.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::io::{LogFile, Storage};
use super::StorageError;

const FRAME_HEADER: usize = 8;
const MAX_RECORD: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct RecordFile<T> {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    file: Arc<dyn LogFile>,
    end: u64,
    _records: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> RecordFile<T> {
    /// Opens (creating) the file and replays it; returns the records and bytes cut.
    pub fn open(
        storage: Arc<dyn Storage>,
        path: PathBuf,
    ) -> Result<(RecordFile<T>, Vec<T>, u64), StorageError> {
        let file = storage
            .open(&path, true)
            .map_err(|e| StorageError::io(&path, e))?;
        let len = file.len().map_err(|e| StorageError::io(&path, e))?;
        let mut records = Vec::new();
        let mut pos = 0u64;
        let mut header = [0u8; FRAME_HEADER];
        let mut problem = None;
        while pos < len {
            if len - pos < FRAME_HEADER as u64 {
                problem = Some("a frame header is cut short".to_string());
                break;
            }
            file.read_exact_at(&mut header, pos)
                .map_err(|e| StorageError::io(&path, e))?;
            let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            if size > MAX_RECORD {
                problem = Some(format!("record length {size} is above the limit"));
                break;
            }
            if pos + (FRAME_HEADER + size) as u64 > len {
                problem = Some(format!("record of {size} bytes is cut short"));
                break;
            }
            let mut payload = vec![0u8; size];
            file.read_exact_at(&mut payload, pos + FRAME_HEADER as u64)
                .map_err(|e| StorageError::io(&path, e))?;
            if crc32c::crc32c(&payload) != crc {
                problem = Some("CRC-32C mismatch".to_string());
                break;
            }
            match rmp_serde::from_slice::<T>(&payload) {
                Ok(record) => records.push(record),
                Err(e) => {
                    problem = Some(format!("record does not decode: {e}"));
                    break;
                }
            }
            pos += (FRAME_HEADER + size) as u64;
        }
        let cut = len - pos;
        if let Some(reason) = problem {
            warn!(path = %path.display(), position = pos, bytes = cut, %reason, "Cutting a torn or corrupt tail off a record file.");
            file.truncate(pos).map_err(|e| StorageError::io(&path, e))?;
            file.sync().map_err(|e| StorageError::io(&path, e))?;
        }
        let record_file = RecordFile {
            storage,
            path,
            file,
            end: pos,
            _records: PhantomData,
        };
        Ok((record_file, records, cut))
    }

    fn frame(record: &T) -> Result<Vec<u8>, StorageError> {
        let payload =
            rmp_serde::to_vec_named(record).map_err(|e| StorageError::Encode(e.to_string()))?;
        let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        Ok(frame)
    }

    /// Appends one record and fsyncs before returning.
    pub fn append(&mut self, record: &T) -> Result<(), StorageError> {
        let frame = Self::frame(record)?;
        let result = self
            .file
            .write_at(&frame, self.end)
            .and_then(|_| self.file.sync());
        if let Err(e) = result {
            let _ = self.file.truncate(self.end);
            return Err(StorageError::io(&self.path, e));
        }
        self.end += frame.len() as u64;
        Ok(())
    }

    /// Replaces the whole file with `records` (write aside, fsync, rename over).
    pub fn rewrite(&mut self, records: &[T]) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        for record in records {
            bytes.extend(Self::frame(record)?);
        }
        let tmp = self.path.with_extension("tmp");
        let io = |e| StorageError::io(&tmp, e);
        let file = self.storage.open(&tmp, true).map_err(io)?;
        file.truncate(0).map_err(io)?;
        file.write_at(&bytes, 0).map_err(io)?;
        file.sync().map_err(io)?;
        self.storage.rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            self.storage.sync_dir(dir).map_err(io)?;
        }
        drop(file);
        self.file = self
            .storage
            .open(&self.path, false)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.end = bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimStorage;
    use serde::Deserialize;
    use std::path::Path;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Rec {
        A { name: String, n: i32 },
        B(u64),
    }

    fn open(s: &SimStorage) -> (RecordFile<Rec>, Vec<Rec>, u64) {
        RecordFile::open(Arc::new(s.clone()), PathBuf::from("/m/records")).unwrap()
    }

    #[test]
    fn records_replay_in_order_and_a_torn_tail_is_cut() {
        let s = SimStorage::new();
        let (mut f, replayed, _) = open(&s);
        assert!(replayed.is_empty());
        f.append(&Rec::A {
            name: "x".into(),
            n: 1,
        })
        .unwrap();
        f.append(&Rec::B(7)).unwrap();
        let (_, replayed, cut) = open(&s);
        assert_eq!(
            replayed,
            vec![
                Rec::A {
                    name: "x".into(),
                    n: 1
                },
                Rec::B(7)
            ]
        );
        assert_eq!(cut, 0);
        let mut bytes = s.file_contents(Path::new("/m/records")).unwrap();
        let whole = bytes.len();
        bytes.truncate(whole - 2);
        s.set_file_contents(Path::new("/m/records"), bytes);
        let (mut f, replayed, cut) = open(&s);
        assert_eq!(replayed.len(), 1);
        assert!(cut > 0);
        f.append(&Rec::B(9)).unwrap();
        let (_, replayed, _) = open(&s);
        assert_eq!(
            replayed,
            vec![
                Rec::A {
                    name: "x".into(),
                    n: 1
                },
                Rec::B(9)
            ]
        );
    }

    #[test]
    fn a_flipped_byte_and_a_huge_length_are_corruption() {
        let s = SimStorage::new();
        let (mut f, _, _) = open(&s);
        f.append(&Rec::B(1)).unwrap();
        f.append(&Rec::B(2)).unwrap();
        let mut bytes = s.file_contents(Path::new("/m/records")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        s.set_file_contents(Path::new("/m/records"), bytes);
        let (_, replayed, _) = open(&s);
        assert_eq!(replayed, vec![Rec::B(1)]);
        let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        huge.extend([0u8; 16]);
        s.set_file_contents(Path::new("/m/records"), huge);
        let (_, replayed, cut) = open(&s);
        assert!(replayed.is_empty());
        assert_eq!(cut, 24);
    }

    #[test]
    fn rewrite_replaces_the_file() {
        let s = SimStorage::new();
        let (mut f, _, _) = open(&s);
        for i in 0..5 {
            f.append(&Rec::B(i)).unwrap();
        }
        f.rewrite(&[Rec::B(42)]).unwrap();
        f.append(&Rec::B(43)).unwrap();
        let (_, replayed, _) = open(&s);
        assert_eq!(replayed, vec![Rec::B(42), Rec::B(43)]);
    }
}
