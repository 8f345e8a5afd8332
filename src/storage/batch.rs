//! Kafka's v2 RecordBatch header, read in place.
//!
//! Byte format (big endian):
//! ```text
//! [0..8)   baseOffset i64          (rewritten on append; not covered by the CRC)
//! [8..12)  batchLength i32         (bytes after this field)
//! [12..16) partitionLeaderEpoch i32 (not covered by the CRC)
//! [16]     magic i8 = 2
//! [17..21) crc u32                 CRC-32C of bytes [21..end)
//! [21..23) attributes i16          bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
//! [23..27) lastOffsetDelta i32
//! [27..35) baseTimestamp i64
//! [35..43) maxTimestamp i64
//! [43..51) producerId i64
//! [51..53) producerEpoch i16
//! [53..57) baseSequence i32
//! [57..61) recordsCount i32
//! [61..)   records (possibly compressed; never decoded here)
//! ```

use std::ops::Range;

use super::StorageError;

pub const HEADER_SIZE: usize = 61;
/// baseOffset + batchLength: the bytes before `batchLength` starts counting.
pub const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;
/// Attributes bit 3: the batch's timestamps are the broker's append time.
const LOG_APPEND_TIME: i16 = 0x08;
/// Attributes bits 0-2 of a zstd batch.
pub const ZSTD: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Reads the 61-byte header; needs at least that many bytes.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, StorageError> {
        if buf.len() < HEADER_SIZE {
            return Err(StorageError::CorruptBatch(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, 17) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        };
        if header.magic != 2 {
            return Err(StorageError::InvalidBatch(format!(
                "magic {} is not 2",
                header.magic
            )));
        }
        if (header.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(StorageError::CorruptBatch(format!(
                "batch length {} is below the header size",
                header.batch_length
            )));
        }
        Ok(header)
    }

    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> u8 {
        (self.attributes & 7) as u8
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Timestamp type LogAppendTime: every record's timestamp is `max_timestamp`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & LOG_APPEND_TIME != 0
    }

    /// A record's timestamp from its delta, as a reader sees it.
    pub fn record_timestamp(&self, timestamp_delta: i64) -> i64 {
        if self.is_log_append_time() {
            self.max_timestamp
        } else {
            self.base_timestamp.saturating_add(timestamp_delta)
        }
    }
}

/// Checks one whole batch: header, length against `buf`, CRC-32C, codec, offset delta.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, StorageError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_size() != buf.len() {
        return Err(StorageError::CorruptBatch(format!(
            "batch length says {} bytes, {} present",
            header.total_size(),
            buf.len()
        )));
    }
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    if crc != header.crc {
        return Err(StorageError::CorruptBatch(format!(
            "CRC-32C {crc:#010x} does not match the stored {:#010x}",
            header.crc
        )));
    }
    if header.compression() > 4 {
        return Err(StorageError::InvalidBatch(format!(
            "unknown compression codec {}",
            header.compression()
        )));
    }
    if header.last_offset_delta < 0 || header.records_count < 0 {
        return Err(StorageError::InvalidBatch(
            "negative last offset delta or record count".into(),
        ));
    }
    Ok(header)
}

/// Splits a produce request's records into whole checked batches.
pub fn split_batches(
    buf: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<(BatchHeader, Range<usize>)>, StorageError> {
    if buf.is_empty() {
        return Err(StorageError::InvalidBatch("no record batch".into()));
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(StorageError::CorruptBatch(format!(
                "{} trailing bytes after the last whole batch",
                rest.len()
            )));
        }
        let length = be_i32(rest, 8);
        if length < 0 {
            return Err(StorageError::CorruptBatch(format!(
                "negative batch length {length}"
            )));
        }
        let size = LOG_OVERHEAD + length as usize;
        if size > max_batch_bytes {
            return Err(StorageError::BatchTooLarge {
                size,
                limit: max_batch_bytes,
            });
        }
        if size > rest.len() {
            return Err(StorageError::CorruptBatch(format!(
                "batch of {size} bytes but only {} remain",
                rest.len()
            )));
        }
        let header = validate_batch(&rest[..size])?;
        out.push((header, pos..pos + size));
        pos += size;
    }
    Ok(out)
}

/// Reads a zigzag varint (at most 10 bytes); None when the bytes end or run too long.
pub(crate) fn varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Stamps a batch with the broker's append time, as Kafka's LogValidator does for a
/// `LogAppendTime` topic: the timestamp-type attribute bit and the max timestamp are set
/// and the CRC recomputed; the records' deltas are left alone (readers take the max
/// timestamp for every record of such a batch).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_SIZE {
        return;
    }
    let attributes = be_i16(batch, 21) | LOG_APPEND_TIME;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Whether any batch header in `buf` names `codec` (headers only, no CRC check; stops at
/// the first batch that does not fit): the zstd version gates of Produce and Fetch.
pub fn any_batch_compressed_with(buf: &[u8], codec: u8) -> bool {
    let mut pos = 0usize;
    while let Some(rest) = buf.get(pos..).filter(|r| r.len() >= HEADER_SIZE) {
        let length = be_i32(rest, 8);
        if (be_i16(rest, 21) & 7) as u8 == codec {
            return true;
        }
        if length < 0 {
            return false;
        }
        pos = pos.saturating_add(LOG_OVERHEAD + length as usize);
    }
    false
}

/// Rewrites batchLength to the buffer's length and recomputes the CRC: after a batch's
/// records or CRC-covered header fields were rewritten.
pub fn seal_batch(batch: &mut [u8]) {
    if batch.len() < HEADER_SIZE {
        return;
    }
    let batch_length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites baseOffset in place; the CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= 8 {
        batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Rewrites partitionLeaderEpoch in place; the CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if batch.len() >= 16 {
        batch[12..16].copy_from_slice(&epoch.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch_builder::build_batch;

    fn sample() -> Vec<u8> {
        build_batch(&[(Some(b"k"), Some(b"v1")), (None, Some(b"v2"))], 1000)
    }

    #[test]
    fn a_built_batch_validates() {
        let b = sample();
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.max_timestamp, 1001);
    }

    #[test]
    fn corruption_is_detected() {
        let mut b = sample();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            validate_batch(&b),
            Err(StorageError::CorruptBatch(_))
        ));
        let b = sample();
        assert!(matches!(
            validate_batch(&b[..b.len() - 1]),
            Err(StorageError::CorruptBatch(_))
        ));
        assert!(matches!(
            validate_batch(&b[..30]),
            Err(StorageError::CorruptBatch(_))
        ));
        let mut m = sample();
        m[16] = 1;
        assert!(matches!(
            validate_batch(&m),
            Err(StorageError::InvalidBatch(_))
        ));
    }

    #[test]
    fn base_offset_rewrite_keeps_the_crc_valid() {
        let mut b = sample();
        set_base_offset(&mut b, 12345);
        set_partition_leader_epoch(&mut b, 7);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, 12345);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn log_append_time_sets_the_type_bit_and_max_timestamp_under_a_valid_crc() {
        let mut b = sample();
        set_log_append_time(&mut b, 1_700_000_000_000);
        let h = validate_batch(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 1_700_000_000_000);
        assert_eq!(h.base_timestamp, 1000);
        assert!(!validate_batch(&sample()).unwrap().is_log_append_time());
    }

    #[test]
    fn a_codec_is_found_in_any_batch_header() {
        use crate::storage::batch_builder::build_compressed_batch;
        use kafka_protocol::records::Compression;
        let mut two = sample();
        two.extend(build_compressed_batch(
            &[(None, Some(b"v"))],
            1,
            Compression::Zstd,
        ));
        assert!(any_batch_compressed_with(&two, 4));
        assert!(!any_batch_compressed_with(&two, 1));
        assert!(!any_batch_compressed_with(&sample(), 4));
        assert!(
            !any_batch_compressed_with(&two[..30], 4),
            "a cut header is not read"
        );
    }

    #[test]
    fn split_whole_batches_and_refuse_trailing_bytes() {
        let mut two = sample();
        two.extend(sample());
        let parts = split_batches(&two, 1 << 20).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].1.start, parts[0].1.end);
        let mut trailing = sample();
        trailing.extend([1, 2, 3]);
        assert!(split_batches(&trailing, 1 << 20).is_err());
        assert!(split_batches(&[], 1 << 20).is_err());
        assert!(matches!(
            split_batches(&sample(), 10),
            Err(StorageError::BatchTooLarge { .. })
        ));
        let mut negative = sample();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split_batches(&negative, 1 << 20).is_err());
    }
}
