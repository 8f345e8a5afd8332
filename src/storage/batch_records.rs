//! The records inside a v2 batch, read in place (after decompression when the batch is
//! compressed): what the cleaner needs. A batch can be
//! rebuilt from a subset of its records keeping its base offset, last offset delta,
//! timestamps, producer fields and codec, as Kafka's cleaner does.

use std::ops::Range;

use std::io::{self, Read};

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{seal_batch, varlong, BatchHeader, HEADER_SIZE};
use super::decompression::{codec_error as decompress_error, records_reader};
use super::StorageError;

/// One record of a batch body: where its bytes are, its offset delta, its key.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The whole record, length prefix included.
    pub bytes: Range<usize>,
    pub offset_delta: i64,
    pub key: Option<Range<usize>>,
    /// A null value: a tombstone.
    pub tombstone: bool,
    /// Where the value is; None for a tombstone.
    pub value: Option<Range<usize>>,
}

fn codec_error(e: anyhow::Error) -> StorageError {
    StorageError::InvalidBatch(format!("records do not compress: {e}"))
}

fn compress(codec: u8, raw: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.extend_from_slice(raw);
        Ok(())
    };
    match codec {
        0 => out.extend_from_slice(raw),
        1 => Gzip::compress(&mut out, fill).map_err(codec_error)?,
        2 => Snappy::compress(&mut out, fill).map_err(codec_error)?,
        3 => Lz4::compress(&mut out, fill).map_err(codec_error)?,
        4 => Zstd::compress(&mut out, fill).map_err(codec_error)?,
        other => {
            return Err(StorageError::InvalidBatch(format!(
                "unknown compression codec {other}"
            )))
        }
    }
    Ok(out.to_vec())
}

/// Splits a (decompressed) body into its records; an error when a record is malformed.
pub fn parse_records(body: &[u8]) -> Result<Vec<RawRecord>, StorageError> {
    let bad = |what: &str| StorageError::InvalidBatch(format!("malformed record: {what}"));
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < body.len() {
        let start = pos;
        let length = varlong(body, &mut pos).ok_or_else(|| bad("length"))?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|e| *e <= body.len())
            .ok_or_else(|| bad("length past the batch"))?;
        pos += 1; // attributes
        varlong(body, &mut pos).ok_or_else(|| bad("timestamp delta"))?;
        let offset_delta = varlong(body, &mut pos).ok_or_else(|| bad("offset delta"))?;
        let key_len = varlong(body, &mut pos).ok_or_else(|| bad("key length"))?;
        let key = if key_len < 0 {
            None
        } else {
            let k_end = usize::try_from(key_len)
                .ok()
                .and_then(|l| pos.checked_add(l))
                .filter(|e| *e <= end)
                .ok_or_else(|| bad("key past the record"))?;
            let k = pos..k_end;
            pos = k_end;
            Some(k)
        };
        let value_len = varlong(body, &mut pos).ok_or_else(|| bad("value length"))?;
        if pos > end {
            return Err(bad("value past the record"));
        }
        let value = match usize::try_from(value_len) {
            Ok(len) => Some(
                pos.checked_add(len)
                    .filter(|e| *e <= end)
                    .map(|e| pos..e)
                    .ok_or_else(|| bad("value past the record"))?,
            ),
            Err(_) => None,
        };
        out.push(RawRecord {
            bytes: start..end,
            offset_delta,
            key,
            tombstone: value_len < 0,
            value,
        });
        pos = end;
    }
    Ok(out)
}

/// A zigzag varlong read from a stream; `None` at a clean end of the stream.
pub(crate) fn read_varlong(r: &mut (impl Read + ?Sized)) -> io::Result<Option<i64>> {
    let mut value = 0u64;
    for (i, shift) in (0..70).step_by(7).enumerate() {
        let mut byte = [0u8];
        if r.read(&mut byte)? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "malformed record: a varint is cut short",
            ));
        }
        value |= ((byte[0] & 0x7f) as u64) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(Some(((value >> 1) as i64) ^ -((value & 1) as i64)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "malformed record: a varint is too long",
    ))
}

/// The fields of a record before its key, as a streamed read sees them.
pub(crate) struct RecordHead {
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key_len: i64,
}

/// Reads the batch's records one by one, decompressed as they are read, and hands each
/// one's head to `visit` until it answers `Some`. Only lengths are looked at and the rest
/// of each record is dropped, so memory stays a small buffer whatever the batch expands
/// to, and at most `limit` bytes are decompressed (beyond that: INVALID_RECORD).
pub(crate) fn scan_records<T>(
    batch: &[u8],
    header: &BatchHeader,
    limit: usize,
    mut visit: impl FnMut(&RecordHead) -> Option<T>,
) -> Result<Option<T>, StorageError> {
    let mut reader = io::BufReader::with_capacity(16 * 1024, records_reader(batch, header, limit)?);
    let bad = |what: &str| StorageError::InvalidBatch(format!("malformed record: {what}"));
    let field = |r: &mut dyn Read, what: &str| {
        read_varlong(r)
            .map_err(decompress_error)?
            .ok_or_else(|| StorageError::InvalidBatch(format!("malformed record: {what}")))
    };
    while let Some(length) = read_varlong(&mut reader).map_err(decompress_error)? {
        let length = u64::try_from(length).map_err(|_| bad("negative length"))?;
        let mut record = (&mut reader).take(length);
        let mut attributes = [0u8];
        record
            .read_exact(&mut attributes)
            .map_err(|_| bad("attributes"))?;
        let head = RecordHead {
            timestamp_delta: field(&mut record, "timestamp delta")?,
            offset_delta: field(&mut record, "offset delta")?,
            key_len: field(&mut record, "key length")?,
        };
        if let Some(found) = visit(&head) {
            return Ok(Some(found));
        }
        if head.key_len > 0 && head.key_len as u64 > record.limit() {
            return Err(bad("key past the record"));
        }
        let rest = record.limit();
        // The rest of the record (key, value, headers) is read and dropped.
        let skipped = io::copy(&mut record, &mut io::sink()).map_err(decompress_error)?;
        if skipped != rest {
            return Err(bad("length past the batch"));
        }
    }
    Ok(None)
}

/// (offset, timestamp) of the first record of the batch at or after `from_offset` whose
/// timestamp is >= `ts`, as ListOffsets answers it (Kafka 3.8+, KAFKA-16310); every
/// record of a LogAppendTime batch has the batch's max timestamp. Streamed and bounded by
/// `limit`.
pub fn first_record_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    ts: i64,
    from_offset: i64,
    limit: usize,
) -> Result<Option<(i64, i64)>, StorageError> {
    scan_records(batch, header, limit, |r| {
        let offset = header.base_offset.saturating_add(r.offset_delta);
        let timestamp = header.record_timestamp(r.timestamp_delta);
        (timestamp >= ts && offset >= from_offset).then_some((offset, timestamp))
    })
}

/// The batch rebuilt with only `kept` records of its (decompressed) `body`, recompressed
/// with its own codec; base offset, last offset delta, timestamps and producer fields
/// stay, so offsets and producer state read the same.
pub fn rebuild(
    batch: &[u8],
    header: &BatchHeader,
    body: &[u8],
    kept: &[&RawRecord],
) -> Result<Vec<u8>, StorageError> {
    let mut raw = Vec::with_capacity(body.len());
    for r in kept {
        raw.extend_from_slice(&body[r.bytes.clone()]);
    }
    let records = compress(header.compression(), &raw)?;
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(&records);
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    seal_batch(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batch;
    use crate::storage::decompression::records_body;
    use bytes::Bytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn compressed(compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 10 + i,
                sequence: i as i32,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("k{}", i % 2))),
                value: (i != 3).then(|| Bytes::from(format!("v{i}"))),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn records_are_found_and_a_subset_rebuilds_with_the_same_codec_and_offsets() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = compressed(compression);
            let header = validate_batch(&batch).unwrap();
            let body = records_body(&batch, &header, 1 << 20).unwrap();
            let records = parse_records(&body).unwrap();
            assert_eq!(records.len(), 4);
            assert!(records[3].tombstone && !records[2].tombstone);
            assert_eq!(&body[records[1].key.clone().unwrap()], b"k1");
            let kept = [&records[1], &records[3]];
            let rebuilt = rebuild(&batch, &header, &body, &kept).unwrap();
            let h = validate_batch(&rebuilt).unwrap();
            assert_eq!(h.compression(), header.compression(), "{compression:?}");
            assert_eq!(
                (h.base_offset, h.last_offset(), h.records_count),
                (10, 13, 2)
            );
            let mut bytes = Bytes::from(rebuilt);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![11, 13]);
            assert_eq!(set.records[0].timestamp, 1_001);
            assert_eq!(set.records[1].value, None);
        }
    }

    fn zigzag(v: i64, out: &mut Vec<u8>) {
        crate::storage::batch_builder::put_varlong(out, v);
    }

    #[test]
    fn a_key_length_past_the_record_is_an_error_not_a_panic() {
        for key_len in [i64::MAX, i64::MAX / 2, 1 << 40, 9] {
            let mut record = vec![0u8]; // attributes
            zigzag(0, &mut record); // timestamp delta
            zigzag(0, &mut record); // offset delta
            zigzag(key_len, &mut record);
            record.extend_from_slice(b"abc");
            let mut body = Vec::new();
            zigzag(record.len() as i64, &mut body);
            body.extend_from_slice(&record);
            assert!(parse_records(&body).is_err(), "key length {key_len}");
        }
    }
}
