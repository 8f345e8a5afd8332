//! One segment: `<20-digit zero-padded base offset>.log` holding whole v2 record batches
//! back to back, exactly as produced (base offset assigned), with its sparse offset and
//! time indexes in memory (written beside it as `.index` and `.timeindex`).
//!
//! Not shared: owned by one `PartitionLog`, which is owned by one partition actor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::warn;

use super::batch::{validate_batch, BatchHeader, HEADER_SIZE};
use super::io::{LogFile, Storage};
use super::log_checkpoint::{SegmentSummary, TrustedSegment};
use super::offset_index::OffsetIndex;
use super::producer_state::ProducerStateTable;
use super::time_index::TimeIndex;
use super::StorageError;

pub fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// The base offset a segment file name stands for, if it is one of ours.
pub fn parse_base_offset(path: &Path, extension: &str) -> Option<i64> {
    if path.extension()? != extension {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// What scanning a segment at open found.
#[derive(Debug, Clone, Default)]
pub struct ScanOutcome {
    pub batches: u64,
    pub bytes_truncated: u64,
    /// Byte position where a torn or corrupt batch started, if any.
    pub cut_at: Option<u64>,
    pub reason: Option<String>,
    /// Bytes taken on the log checkpoint's word, not read.
    pub trusted_bytes: u64,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    path: PathBuf,
    file: Arc<dyn LogFile>,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    max_timestamp_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    index_interval: u64,
}

/// One batch found by a scan: its header and byte position.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub header: BatchHeader,
    pub position: u64,
}

/// Where a recovered segment's first batch must start, and below which offset a batch
/// may start past where the previous one ended (gaps left by compaction).
#[derive(Debug, Clone, Copy)]
pub struct Continuity {
    pub expected_start: i64,
    pub gaps_below: i64,
}

impl Segment {
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
    ) -> Result<Segment, StorageError> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = storage
            .open(&path, true)
            .map_err(|e| StorageError::io(&path, e))?;
        // The new file's entry must be durable before anything in it is acknowledged.
        storage
            .sync_dir(dir)
            .map_err(|e| StorageError::io(dir, e))?;
        Ok(Segment::empty(path, file, base_offset, index_interval))
    }

    fn empty(path: PathBuf, file: Arc<dyn LogFile>, base_offset: i64, index_interval: u64) -> Self {
        Segment {
            base_offset,
            path,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            offset_index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            bytes_since_index: 0,
            index_interval: index_interval.max(1),
        }
    }

    /// Opens an existing segment and reads every batch: length, magic, CRC-32C, and that
    /// each batch starts where the previous one ended (`expected_start` for the first), or
    /// after a gap where that end is below `gaps_below` (compaction's gaps).
    /// Everything from the first bad batch on is cut off the file. A `trusted` prefix (the
    /// log checkpoint vouches for it) is taken as recorded and only the rest is read.
    pub fn recover(
        storage: &dyn Storage,
        path: &Path,
        base_offset: i64,
        continuity: Continuity,
        index_interval: u64,
        producers: &mut ProducerStateTable,
        trusted: Option<TrustedSegment>,
    ) -> Result<(Segment, ScanOutcome), StorageError> {
        let file = storage
            .open(path, false)
            .map_err(|e| StorageError::io(path, e))?;
        let len = file.len().map_err(|e| StorageError::io(path, e))?;
        let mut segment = Segment::empty(path.to_path_buf(), file, base_offset, index_interval);
        let Continuity {
            expected_start,
            gaps_below,
        } = continuity;
        segment.next_offset = expected_start;
        let mut outcome = ScanOutcome::default();
        let mut pos = 0u64;
        if let Some(t) = trusted {
            let s = t.summary;
            segment.size = s.size;
            segment.next_offset = s.next_offset;
            segment.max_timestamp = s.max_timestamp;
            segment.max_timestamp_offset = s.max_timestamp_offset;
            segment.offset_index = t.offset_index;
            segment.time_index = t.time_index;
            // The next batch read or written gets an index entry.
            segment.bytes_since_index = segment.index_interval;
            outcome.trusted_bytes = s.size;
            pos = s.size;
        }
        let mut header_buf = [0u8; HEADER_SIZE];
        let mut batch_buf = Vec::new();
        while pos < len {
            let problem = if len - pos < HEADER_SIZE as u64 {
                Some(format!(
                    "{} bytes at the end are less than a batch header",
                    len - pos
                ))
            } else {
                segment
                    .file
                    .read_exact_at(&mut header_buf, pos)
                    .map_err(|e| StorageError::io(path, e))?;
                match BatchHeader::parse(&header_buf) {
                    Err(e) => Some(e.to_string()),
                    Ok(h) if pos + h.total_size() as u64 > len => Some(format!(
                        "batch at offset {} needs {} bytes, {} remain",
                        h.base_offset,
                        h.total_size(),
                        len - pos
                    )),
                    // Compaction leaves gaps between batches, never overlaps.
                    Ok(h)
                        if h.base_offset < segment.next_offset
                            || (h.base_offset > segment.next_offset
                                && segment.next_offset >= gaps_below) =>
                    {
                        Some(format!(
                            "batch base offset {} where {} was expected",
                            h.base_offset, segment.next_offset
                        ))
                    }
                    Ok(h) => {
                        batch_buf.resize(h.total_size(), 0);
                        segment
                            .file
                            .read_exact_at(&mut batch_buf, pos)
                            .map_err(|e| StorageError::io(path, e))?;
                        match validate_batch(&batch_buf) {
                            Err(e) => Some(e.to_string()),
                            Ok(h) => {
                                segment.track(&h, pos);
                                producers.observe(&batch_buf, &h);
                                outcome.batches += 1;
                                pos += h.total_size() as u64;
                                None
                            }
                        }
                    }
                }
            };
            if let Some(reason) = problem {
                outcome.cut_at = Some(pos);
                outcome.bytes_truncated = len - pos;
                outcome.reason = Some(reason);
                segment
                    .file
                    .truncate(pos)
                    .map_err(|e| StorageError::io(path, e))?;
                segment.file.sync().map_err(|e| StorageError::io(path, e))?;
                break;
            }
        }
        segment.size = pos;
        Ok((segment, outcome))
    }

    /// Updates offsets, timestamps and indexes for a batch now at `position`.
    fn track(&mut self, h: &BatchHeader, position: u64) {
        if position == 0 || self.bytes_since_index >= self.index_interval {
            self.offset_index.push(h.base_offset, position);
            self.bytes_since_index = 0;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.max_timestamp_offset = h.last_offset();
            self.time_index.push(h.max_timestamp, h.base_offset);
        }
        self.bytes_since_index += h.total_size() as u64;
        self.next_offset = h.next_offset();
        self.size = position + h.total_size() as u64;
    }

    /// Writes one checked batch (base offset already assigned) at the end.
    pub fn append(&mut self, batch: &[u8], header: &BatchHeader) -> Result<(), StorageError> {
        let position = self.size;
        self.file
            .write_at(batch, position)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.track(header, position);
        Ok(())
    }

    /// Cuts the file back to `size` bytes after a failed write; true when that worked.
    pub fn truncate_to(&self, size: u64) -> bool {
        match self.file.truncate(size) {
            Ok(()) => true,
            Err(err) => {
                warn!(path = %self.path.display(), %err, "Could not cut a failed write off a segment.");
                false
            }
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> (i64, i64) {
        (self.max_timestamp, self.max_timestamp_offset)
    }

    pub fn file(&self) -> &Arc<dyn LogFile> {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes its offset and time indexes take on disk (8 and 12 per entry), which the
    /// cleaner bounds when it merges segments.
    pub fn index_bytes(&self) -> u64 {
        (self.offset_index.len() * 8 + self.time_index.len() * 12) as u64
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    /// This segment as the log checkpoint records it, with its index files' bytes.
    pub fn summary(&self) -> (SegmentSummary, Vec<u8>, Vec<u8>) {
        let index = self.offset_index.encode();
        let time_index = self.time_index.encode();
        let summary = SegmentSummary {
            base_offset: self.base_offset,
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            max_timestamp_offset: self.max_timestamp_offset,
            index_crc: crc32c::crc32c(&index),
            time_index_crc: crc32c::crc32c(&time_index),
        };
        (summary, index, time_index)
    }

    pub fn write_indexes(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.offset_index
            .write_to(storage, &dir.join(file_name(self.base_offset, "index")))?;
        self.time_index
            .write_to(storage, &dir.join(file_name(self.base_offset, "timeindex")))
    }

    /// The whole batch at `position` (found by a scan, so its length is known).
    pub fn batch_bytes(&self, found: &Located) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; found.header.total_size()];
        self.file
            .read_exact_at(&mut buf, found.position)
            .map_err(|e| StorageError::io(&self.path, e))?;
        Ok(buf)
    }

    fn header_at(&self, position: u64) -> Result<BatchHeader, StorageError> {
        let mut buf = [0u8; HEADER_SIZE];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(&self.path, e))?;
        BatchHeader::parse(&buf)
    }

    /// The batch that holds `offset` (or the first one after it), found from the offset
    /// index and a scan of headers. None when `offset` is at or past the segment's end.
    pub fn locate(&self, offset: i64) -> Result<Option<Located>, StorageError> {
        let (_, mut position) = self.offset_index.lookup(offset);
        while position < self.size {
            let header = self.header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some(Located { header, position }));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Whole batches from `start`, below `max_offset`, at most `max_bytes` unless `min_one`
    /// and the first batch alone is larger. Read with one positioned read.
    pub fn read(
        &self,
        start: Located,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<(Bytes, usize), StorageError> {
        if start.header.next_offset() > max_offset {
            return Ok((Bytes::new(), 0));
        }
        let available = (self.size - start.position) as usize;
        let first = start.header.total_size();
        let want = if first > max_bytes {
            if !min_one {
                return Ok((Bytes::new(), 0));
            }
            first
        } else {
            max_bytes.min(available)
        };
        let mut buf = BytesMut::zeroed(want);
        self.file
            .read_exact_at(&mut buf, start.position)
            .map_err(|e| StorageError::io(&self.path, e))?;
        // Keep only whole batches below max_offset.
        let mut end = 0usize;
        let mut batches = 0usize;
        while end + HEADER_SIZE <= buf.len() {
            let header = BatchHeader::parse(&buf[end..])?;
            let next = end + header.total_size();
            if next > buf.len() || header.next_offset() > max_offset {
                break;
            }
            end = next;
            batches += 1;
        }
        buf.truncate(end);
        Ok((buf.freeze(), batches))
    }

    /// First batch (at or after `from_offset`) whose max timestamp is >= `ts`.
    pub fn find_timestamp(
        &self,
        ts: i64,
        from_offset: i64,
    ) -> Result<Option<Located>, StorageError> {
        if self.max_timestamp < ts {
            return Ok(None);
        }
        let start = from_offset.max(self.time_index.scan_start(ts));
        let Some(found) = self.locate(start)? else {
            return Ok(None);
        };
        let mut position = found.position;
        while position < self.size {
            let header = self.header_at(position)?;
            if header.max_timestamp >= ts {
                return Ok(Some(Located { header, position }));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }
}
