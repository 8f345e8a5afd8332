//! A topic's `compression.type` applied to produced batches, as Kafka's LogValidator does:
//! `producer` keeps the producer's codec; any other value is the codec every stored batch
//! uses, so a batch in another codec is decompressed and recompressed (`uncompressed`
//! stores it uncompressed). Control batches are never recompressed.
//!
//! Only the records section changes: the 61-byte header is kept (producer id, epoch, base
//! sequence, transactional bit, timestamps, last offset delta, record count) except the
//! codec bits, the batch length and the CRC, and the records' bytes (offset and timestamp
//! deltas, keys, values, headers) are copied through unchanged, so producer state and
//! deduplication see the batch the producer sent.
//!
//! Memory is bounded on both sides: the records are streamed out of the bounded decoder
//! of `decompression` (at most `decompressed_limit(max.message.bytes)` bytes) straight into
//! the target encoder, whose output may not pass max.message.bytes: a batch whose
//! recompressed form is larger is MESSAGE_TOO_LARGE, as Kafka answers
//! (RecordTooLargeException after recompression). Nothing else is held but the codecs'
//! own buffers.

use std::io::{self, Read, Write};

use super::batch::{seal_batch, split_batches, BatchHeader, HEADER_SIZE};
use super::decompression::{codec_error, decompressed_limit, records_reader, SNAPPY_MAGIC};
use super::StorageError;

/// Kafka's codec ids (the low three bits of a batch's attributes).
pub const UNCOMPRESSED: u8 = 0;
pub const GZIP: u8 = 1;
pub const SNAPPY: u8 = 2;
pub const LZ4: u8 = 3;
pub const ZSTD: u8 = 4;

/// The codec a `compression.type` value stores batches in; None for `producer` (and for a
/// value that is not a codec, which topic config validation never lets in).
pub fn target_codec(compression_type: &str) -> Option<u8> {
    match compression_type.trim() {
        "uncompressed" => Some(UNCOMPRESSED),
        "gzip" => Some(GZIP),
        "snappy" => Some(SNAPPY),
        "lz4" => Some(LZ4),
        "zstd" => Some(ZSTD),
        _ => None,
    }
}

/// Whether a batch with this header is stored in another codec than its own.
fn needs_recompression(header: &BatchHeader, target: u8) -> bool {
    !header.is_control() && header.compression() != target
}

/// A cheap look at a produce request's records, without checking CRCs: whether any batch
/// would be recompressed. False for records that do not even split into headers (the
/// partition's validation answers those as today).
pub fn any_batch_needs_recompression(records: &[u8], target: u8) -> bool {
    let mut rest = records;
    while rest.len() >= HEADER_SIZE {
        let Ok(header) = BatchHeader::parse(rest) else {
            return false;
        };
        if needs_recompression(&header, target) {
            return true;
        }
        rest = &rest[header.total_size().min(rest.len())..];
    }
    false
}

/// A produce request's records with every batch in the `target` codec; None when every
/// batch already is (or is a control batch). The batches are checked as the partition
/// checks them (length, CRC, max.message.bytes) before any is decompressed.
pub fn recompress_records(
    records: &[u8],
    target: u8,
    max_batch_bytes: usize,
) -> Result<Option<Vec<u8>>, StorageError> {
    let batches = split_batches(records, max_batch_bytes)?;
    if !batches.iter().any(|(h, _)| needs_recompression(h, target)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    for (header, range) in batches {
        let batch = &records[range];
        if needs_recompression(&header, target) {
            out.extend_from_slice(&recompress_batch(batch, &header, target, max_batch_bytes)?);
        } else {
            out.extend_from_slice(batch);
        }
    }
    Ok(Some(out))
}

/// One checked batch with its records in the `target` codec. At most
/// `decompressed_limit(max_batch_bytes)` bytes are decompressed (beyond: INVALID_RECORD)
/// and the result is at most `max_batch_bytes` (beyond: MESSAGE_TOO_LARGE).
pub fn recompress_batch(
    batch: &[u8],
    header: &BatchHeader,
    target: u8,
    max_batch_bytes: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut reader = records_reader(batch, header, decompressed_limit(max_batch_bytes))?;
    let mut out = Capped {
        out: Vec::with_capacity(batch.len().min(max_batch_bytes)),
        max: max_batch_bytes,
    };
    out.out.extend_from_slice(&batch[..HEADER_SIZE]);
    let copy = |w: &mut dyn Write| -> Result<(), StorageError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(codec_error(e)),
            };
            w.write_all(&buf[..n]).map_err(write_error)?;
        }
    };
    let mut out = encode(target, out, copy)?.out;
    let attributes = i16::from_be_bytes([out[21], out[22]]);
    let attributes = (attributes & !7) | target as i16;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    seal_batch(&mut out);
    Ok(out)
}

/// Streams the records `copy` writes through the `target` encoder into `sink`.
fn encode(
    target: u8,
    sink: Capped,
    copy: impl FnOnce(&mut dyn Write) -> Result<(), StorageError>,
) -> Result<Capped, StorageError> {
    let finish = |r: io::Result<Capped>| r.map_err(write_error);
    match target {
        UNCOMPRESSED => {
            let mut sink = sink;
            copy(&mut sink)?;
            Ok(sink)
        }
        // Kafka's defaults: gzip level 6 (GZIPOutputStream), lz4 independent blocks as the
        // kafka-protocol codec writes them, zstd level 3.
        GZIP => {
            let mut encoder = flate2::write::GzEncoder::new(sink, flate2::Compression::default());
            copy(&mut encoder)?;
            finish(encoder.finish())
        }
        SNAPPY => {
            let mut encoder = XerialSnappyWriter::new(sink).map_err(write_error)?;
            copy(&mut encoder)?;
            finish(encoder.finish())
        }
        LZ4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(4)
                .block_mode(lz4::BlockMode::Independent)
                .build(sink)
                .map_err(write_error)?;
            copy(&mut encoder)?;
            let (sink, result) = encoder.finish();
            finish(result.map(|_| sink))
        }
        ZSTD => {
            let mut encoder = zstd::stream::write::Encoder::new(sink, 3).map_err(write_error)?;
            copy(&mut encoder)?;
            finish(encoder.finish())
        }
        other => Err(StorageError::InvalidBatch(format!(
            "unknown compression codec {other}"
        ))),
    }
}

/// The error `Capped` fails with, told apart from an encoder's own errors.
#[derive(Debug, thiserror::Error)]
#[error("the recompressed batch passes {limit} bytes")]
struct OutputPastLimit {
    size: usize,
    limit: usize,
}

fn write_error(e: io::Error) -> StorageError {
    if let Some(past) = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<OutputPastLimit>())
    {
        return StorageError::BatchTooLarge {
            size: past.size,
            limit: past.limit,
        };
    }
    StorageError::InvalidBatch(format!("records do not recompress: {e}"))
}

/// The rebuilt batch: fails once it would pass `max` bytes (max.message.bytes counts the
/// whole batch, header included).
struct Capped {
    out: Vec<u8>,
    max: usize,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let size = self.out.len().saturating_add(buf.len());
        if size > self.max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                OutputPastLimit {
                    size,
                    limit: self.max,
                },
            ));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Kafka's snappy framing, as xerial's SnappyOutputStream writes it (and
/// `decompression::XerialSnappy` reads it): a 16-byte magic header, then blocks of
/// `[u32 BE compressed length][raw snappy block]` of at most 32 KiB uncompressed each.
struct XerialSnappyWriter<W: Write> {
    inner: W,
    block: Vec<u8>,
    compressed: Vec<u8>,
    encoder: snap::raw::Encoder,
}

const SNAPPY_BLOCK: usize = 32 * 1024;

impl<W: Write> XerialSnappyWriter<W> {
    fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(SNAPPY_MAGIC)?;
        Ok(XerialSnappyWriter {
            inner,
            block: Vec::with_capacity(SNAPPY_BLOCK),
            compressed: vec![0; snap::raw::max_compress_len(SNAPPY_BLOCK)],
            encoder: snap::raw::Encoder::new(),
        })
    }

    fn write_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let n = self
            .encoder
            .compress(&self.block, &mut self.compressed)
            .map_err(io::Error::other)?;
        self.inner.write_all(&(n as u32).to_be_bytes())?;
        self.inner.write_all(&self.compressed[..n])?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.write_block()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for XerialSnappyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(SNAPPY_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == SNAPPY_BLOCK {
            self.write_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batch;
    use crate::storage::batch_builder::build_compressed_batch;
    use crate::storage::control_batch::build_marker;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    use crate::storage::batch_builder::ALL_CODECS as CODECS;

    /// A transactional producer's batch of 50 JSON-like records with keys, null values,
    /// headers and uneven timestamps.
    fn producer_batch(compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..50)
            .map(|i| {
                let mut headers = IndexMap::new();
                headers.insert(
                    StrBytes::from_string(format!("h{i}")),
                    Some(Bytes::from(format!("{i}"))),
                );
                headers.insert(StrBytes::from_static_str("null"), None);
                Record {
                    transactional: true,
                    control: false,
                    partition_leader_epoch: 0,
                    producer_id: 4242,
                    producer_epoch: 7,
                    timestamp_type: TimestampType::Creation,
                    offset: i,
                    sequence: 100 + i as i32,
                    timestamp: 1_700_000_000_000 + i * i,
                    key: (i % 5 != 0).then(|| Bytes::from(format!("key-{i}"))),
                    value: (i % 7 != 0).then(|| {
                        Bytes::from(format!(
                            "{{\"id\":{i},\"name\":\"user-{i}\",\"pad\":\"{}\"}}",
                            "x".repeat(i as usize)
                        ))
                    }),
                    headers,
                    delete_horizon: false,
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    fn codec_id(c: Compression) -> u8 {
        CODECS.iter().position(|x| *x == c).unwrap() as u8
    }

    fn decoded(batch: Vec<u8>) -> Vec<Record> {
        RecordBatchDecoder::decode(&mut Bytes::from(batch))
            .unwrap()
            .records
    }

    #[test]
    fn every_codec_pair_keeps_every_record_and_header_field() {
        for from in CODECS {
            let batch = producer_batch(from);
            let header = validate_batch(&batch).unwrap();
            for to in CODECS {
                let target = codec_id(to);
                let out = recompress_records(&batch, target, 1 << 20).unwrap();
                if from == to {
                    assert!(out.is_none(), "{from:?} stays as sent");
                    continue;
                }
                let out = out.unwrap();
                let h = validate_batch(&out).expect("a valid batch with a good CRC");
                assert_eq!(h.compression(), target, "{from:?} -> {to:?}");
                let same = BatchHeader {
                    batch_length: header.batch_length,
                    crc: header.crc,
                    attributes: header.attributes,
                    ..h
                };
                assert_eq!(same, header, "{from:?} -> {to:?}: header fields kept");
                assert_eq!(h.attributes & !7, header.attributes & !7);
                assert!(h.is_transactional());
                assert_eq!(
                    decoded(out),
                    decoded(batch.clone()),
                    "{from:?} -> {to:?}: records kept"
                );
            }
        }
    }

    #[test]
    fn control_batches_and_batches_already_in_the_target_codec_stay() {
        let marker = build_marker(9, 1, true, 5, 1_000);
        for target in [UNCOMPRESSED, GZIP, ZSTD] {
            assert!(!any_batch_needs_recompression(&marker, target));
            assert_eq!(recompress_records(&marker, target, 1 << 20).unwrap(), None);
        }
        // Two batches in one request: only the one in another codec changes.
        let zstd = producer_batch(Compression::Zstd);
        let gzip = producer_batch(Compression::Gzip);
        let both = [zstd.clone(), gzip].concat();
        assert!(any_batch_needs_recompression(&both, ZSTD));
        assert!(!any_batch_needs_recompression(&zstd, ZSTD));
        let out = recompress_records(&both, ZSTD, 1 << 20).unwrap().unwrap();
        assert_eq!(&out[..zstd.len()], &zstd[..]);
        let split = split_batches(&out, 1 << 20).unwrap();
        assert_eq!(split.len(), 2);
        assert!(split.iter().all(|(h, _)| h.compression() == ZSTD));
    }

    #[test]
    fn a_recompressed_batch_past_max_message_bytes_is_message_too_large() {
        let zeros = vec![0u8; 300_000];
        let batch = build_compressed_batch(&[(Some(b"k"), Some(&zeros))], 1_000, Compression::Zstd);
        assert!(batch.len() < 10_000);
        let err = recompress_records(&batch, UNCOMPRESSED, 100_000).unwrap_err();
        assert!(
            matches!(err, StorageError::BatchTooLarge { limit: 100_000, size } if size > 100_000),
            "{err}"
        );
        // The same batch fits a topic with room for it.
        let out = recompress_records(&batch, UNCOMPRESSED, 1 << 20)
            .unwrap()
            .unwrap();
        assert!(out.len() > 300_000 && out.len() < 301_000);
    }

    #[test]
    fn a_decompression_bomb_is_refused_at_the_decompression_limit() {
        // 4 MiB of zeros, a few KB compressed: past decompressed_limit(10_000) = 1 MiB.
        let zeros = vec![0u8; 4 << 20];
        let bomb = build_compressed_batch(&[(Some(b"k"), Some(&zeros))], 1_000, Compression::Zstd);
        let err = recompress_records(&bomb, GZIP, 10_000).unwrap_err();
        assert!(
            matches!(&err, StorageError::InvalidBatch(m) if m.contains("expand past the limit")),
            "{err}"
        );
    }

    #[test]
    fn compression_type_values_name_their_codecs() {
        assert_eq!(target_codec("producer"), None);
        assert_eq!(target_codec("uncompressed"), Some(UNCOMPRESSED));
        assert_eq!(target_codec("gzip"), Some(GZIP));
        assert_eq!(target_codec("snappy"), Some(SNAPPY));
        assert_eq!(target_codec("lz4"), Some(LZ4));
        assert_eq!(target_codec("zstd"), Some(ZSTD));
    }
}
