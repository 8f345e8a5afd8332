//! Bounded, streamed decompression of a batch's records: the one place the broker
//! decompresses (the compacted-topic key check, the cleaner, recompression to a topic's
//! `compression.type`).
//!
//! A compressed batch is at most `max.message.bytes` on the wire but can expand without
//! limit (374 KB of zstd is 8 GiB of zeros). Every codec is read through its streaming
//! decoder behind `Bounded`, which asks for at most one byte more than the limit and fails
//! once that byte arrives, so no more than `limit + 1` bytes are ever produced. The limit
//! is `EXPANSION_FACTOR` times the topic's `max.message.bytes` (see `decompressed_limit`).

use std::io::{self, Read};

use super::batch::{BatchHeader, HEADER_SIZE};
use super::StorageError;

/// How many times its topic's `max.message.bytes` a batch may expand to. Producers size
/// batches by their uncompressed bytes (librdkafka's `batch.size`, the Java producer's
/// estimate), so a real batch is rarely above max.message.bytes even uncompressed; 64
/// leaves room for very repetitive data (JSON logs compress 10-20x) while an expansion
/// past it is only seen from a decompression bomb.
pub const EXPANSION_FACTOR: usize = 64;
/// The limit never goes below this (tiny max.message.bytes) ...
const MIN_LIMIT: usize = 1 << 20;
/// ... nor above this (the cleaner holds one decompressed batch in memory).
const MAX_LIMIT: usize = 1 << 30;
/// zstd frames declare their window, which the decoder allocates: 2^24 (16 MiB) covers
/// every level up to 19 (Kafka's default is 3, window 2^21), and zstd shrinks the window
/// to the content when the size is known, as it is for a producer's batch; a frame asking
/// for more is refused rather than allocated.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The most bytes a batch of a topic with this max.message.bytes may decompress to.
pub fn decompressed_limit(max_batch_bytes: usize) -> usize {
    max_batch_bytes
        .saturating_mul(EXPANSION_FACTOR)
        .clamp(MIN_LIMIT, MAX_LIMIT)
}

/// The error `Bounded` fails with, told apart from a codec's own errors.
#[derive(Debug, thiserror::Error)]
#[error("records expand past the limit of {0} bytes")]
struct ExpandsPastLimit(usize);

fn too_large(limit: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, ExpandsPastLimit(limit))
}

/// A reader that fails once more than `limit` bytes have come out of `inner`.
struct Bounded<R> {
    inner: R,
    left: usize,
    limit: usize,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than may come, so an expansion past the limit is seen, and never
        // more than that is decompressed (Read::take(limit + 1)).
        let want = buf.len().min(self.left.saturating_add(1));
        let n = self.inner.read(&mut buf[..want])?;
        if n > self.left {
            return Err(too_large(self.limit));
        }
        self.left -= n;
        Ok(n)
    }
}

/// Kafka's snappy framing (xerial's SnappyOutputStream): a 16-byte magic header, then
/// blocks of `[u32 BE compressed length][raw snappy block]`. Without the header the whole
/// input is one raw snappy block, as Kafka's Java client also accepts. Each block's
/// declared length is held against what is left of the limit before it is allocated.
struct XerialSnappy<'a> {
    input: &'a [u8],
    raw: bool,
    block: Vec<u8>,
    pos: usize,
    left: usize,
    limit: usize,
}

pub(super) const SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

impl<'a> XerialSnappy<'a> {
    fn new(input: &'a [u8], limit: usize) -> Self {
        let (input, raw) = match input.strip_prefix(SNAPPY_MAGIC) {
            Some(rest) => (rest, false),
            None => (input, true),
        };
        XerialSnappy {
            input,
            raw,
            block: Vec::new(),
            pos: 0,
            left: limit,
            limit,
        }
    }

    fn next_block(&mut self) -> io::Result<bool> {
        if self.input.is_empty() {
            return Ok(false);
        }
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let compressed = if self.raw {
            std::mem::take(&mut self.input)
        } else {
            let (len, rest) = self
                .input
                .split_first_chunk::<4>()
                .ok_or_else(|| bad("a snappy block length is cut short"))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len > rest.len() {
                return Err(bad("a snappy block runs past the batch"));
            }
            let (block, rest) = rest.split_at(len);
            self.input = rest;
            block
        };
        let size = snap::raw::decompress_len(compressed).map_err(io::Error::other)?;
        if size > self.left {
            return Err(too_large(self.limit));
        }
        self.left -= size;
        self.block.resize(size, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(io::Error::other)?;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The batch's record bytes, decompressed as they are read; the reader fails once more
/// than `limit` bytes come out.
pub fn records_reader<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: usize,
) -> Result<Box<dyn Read + 'a>, StorageError> {
    let input = batch.get(HEADER_SIZE..).unwrap_or_default();
    let inner: Box<dyn Read + 'a> = match header.compression() {
        0 => Box::new(input),
        1 => Box::new(flate2::read::MultiGzDecoder::new(input)),
        2 => Box::new(XerialSnappy::new(input, limit)),
        3 => Box::new(lz4::Decoder::new(input).map_err(codec_error)?),
        4 => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(codec_error)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(codec_error)?;
            Box::new(decoder)
        }
        other => {
            return Err(StorageError::InvalidBatch(format!(
                "unknown compression codec {other}"
            )))
        }
    };
    Ok(Box::new(Bounded {
        inner,
        left: limit,
        limit,
    }))
}

/// A decompression (or bound) failure as the batch error Kafka answers: INVALID_RECORD.
pub fn codec_error(e: io::Error) -> StorageError {
    if let Some(past) = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<ExpandsPastLimit>())
    {
        return StorageError::InvalidBatch(past.to_string());
    }
    StorageError::InvalidBatch(format!("records do not decompress: {e}"))
}

/// The whole decompressed body, at most `limit` bytes (the cleaner rebuilds batches from it).
pub fn records_body(
    batch: &[u8],
    header: &BatchHeader,
    limit: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut body = Vec::new();
    records_reader(batch, header, limit)?
        .read_to_end(&mut body)
        .map_err(codec_error)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batch;
    use crate::storage::batch_builder::build_compressed_batch;
    use kafka_protocol::records::Compression;

    use crate::storage::batch_builder::ALL_CODECS as CODECS;

    /// One batch of one record whose value is `value_len` zeros, in `compression`.
    fn batch_of(compression: Compression, value_len: usize) -> Vec<u8> {
        let value = vec![0u8; value_len];
        build_compressed_batch(&[(Some(b"k"), Some(&value))], 1_000, compression)
    }

    #[test]
    fn every_codec_stops_at_the_limit() {
        for compression in CODECS {
            let batch = batch_of(compression, 300_000);
            let header = validate_batch(&batch).unwrap();
            let body = records_body(&batch, &header, 1 << 20).unwrap();
            let size = body.len();
            assert!(size > 300_000, "{compression:?}");
            // Exactly the limit is fine; one byte less is refused, with the limit named.
            assert_eq!(records_body(&batch, &header, size).unwrap(), body);
            for limit in [size - 1, 1000, 0] {
                let err = records_body(&batch, &header, limit).unwrap_err();
                assert!(
                    matches!(&err, StorageError::InvalidBatch(m) if m.contains("expand past the limit")),
                    "{compression:?} {limit}: {err}"
                );
            }
        }
    }

    #[test]
    fn a_bounded_reader_produces_at_most_one_byte_past_the_limit() {
        let mut reader = Bounded {
            inner: io::repeat(0),
            left: 10,
            limit: 10,
        };
        let mut buf = [0u8; 10];
        reader.read_exact(&mut buf).unwrap();
        assert!(reader.read(&mut [0u8; 64]).is_err());
        // A whole read of an endless stream stops with the error too.
        let mut endless = Bounded {
            inner: io::repeat(0),
            left: 1000,
            limit: 1000,
        };
        assert!(endless.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn garbage_is_an_invalid_batch_for_every_codec() {
        for compression in CODECS.into_iter().skip(1) {
            let mut batch = batch_of(compression, 1000);
            let end = batch.len();
            for b in &mut batch[HEADER_SIZE + 4..end] {
                *b ^= 0x5a;
            }
            let header = BatchHeader::parse(&batch).unwrap();
            let result = records_body(&batch, &header, 1 << 20);
            assert!(
                matches!(result, Err(StorageError::InvalidBatch(_))),
                "{compression:?}: {result:?}"
            );
        }
    }

    #[test]
    fn a_snappy_block_declaring_more_than_the_limit_is_refused_before_it_is_allocated() {
        // A raw snappy preamble (varint length) claiming 4 GiB, with no data behind it.
        let mut input = SNAPPY_MAGIC.to_vec();
        let block = [0xff, 0xff, 0xff, 0xff, 0x0f];
        input.extend_from_slice(&(block.len() as u32).to_be_bytes());
        input.extend_from_slice(&block);
        let mut reader = XerialSnappy::new(&input, 1 << 20);
        let err = reader.read(&mut [0u8; 16]).unwrap_err();
        assert!(err.to_string().contains("expand past"), "{err}");
    }
}
