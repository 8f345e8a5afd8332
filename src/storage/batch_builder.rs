//! Builds v2 record batches: for tests and tools that need real batches without a Kafka
//! client. Uncompressed ones are written here byte by byte; Each record is
//! `[length varint][attributes i8][timestampDelta varlong][offsetDelta varint]
//!  [keyLength varint][key][valueLength varint][value][headerCount varint]`.

/// One record to build: (key, value), either may be null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

use kafka_protocol::records::Compression;

/// Every codec a batch can carry, in attribute order (0 none .. 4 zstd), for tests that
/// go through them all.
pub const ALL_CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Builds one batch: base offset 0, no producer id, timestamps `base_timestamp + index`.
pub fn build_batch(records: &[KeyValue<'_>], base_timestamp: i64) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8);
        put_varlong(&mut rec, i as i64);
        put_varlong(&mut rec, i as i64);
        put_bytes(&mut rec, *key);
        put_bytes(&mut rec, *value);
        put_varlong(&mut rec, 0);
        put_varlong(&mut body, rec.len() as i64);
        body.extend(rec);
    }
    let count = records.len() as i32;
    let mut batch = Vec::with_capacity(61 + body.len());
    batch.extend(0i64.to_be_bytes());
    batch.extend(((49 + body.len()) as i32).to_be_bytes());
    batch.extend(0i32.to_be_bytes());
    batch.push(2);
    batch.extend(0u32.to_be_bytes());
    batch.extend(0i16.to_be_bytes());
    batch.extend((count - 1).max(0).to_be_bytes());
    batch.extend(base_timestamp.to_be_bytes());
    batch.extend((base_timestamp + (count - 1).max(0) as i64).to_be_bytes());
    batch.extend((-1i64).to_be_bytes());
    batch.extend((-1i16).to_be_bytes());
    batch.extend((-1i32).to_be_bytes());
    batch.extend(count.to_be_bytes());
    batch.extend(body);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// The batch `build_batch` builds, with its records compressed by `compression`
/// (kafka-protocol's encoder).
pub fn build_compressed_batch(
    records: &[KeyValue<'_>],
    base_timestamp: i64,
    compression: Compression,
) -> Vec<u8> {
    let timed: Vec<(KeyValue<'_>, i64)> = records
        .iter()
        .enumerate()
        .map(|(i, kv)| (*kv, base_timestamp + i as i64))
        .collect();
    build_timed_batch(&timed, compression)
}

/// One batch whose records carry the given timestamps (in any order), compressed by
/// `compression` (kafka-protocol's encoder).
pub fn build_timed_batch(records: &[(KeyValue<'_>, i64)], compression: Compression) -> Vec<u8> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, ((key, value), timestamp))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: *timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    // Reached from tests and tools only (no broker path builds compressed batches here):
    // the records are ours and in memory, and encoding them into a BytesMut cannot fail.
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .expect("kafka-protocol encodes a batch it was given whole");
    buf.to_vec()
}

/// Makes a built batch an idempotent producer's: sets producer id, epoch and base
/// sequence, and recomputes the CRC.
pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    if batch.len() < 61 {
        return;
    }
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    super::batch::seal_batch(batch);
}

/// Appends `v` as a zigzag varlong, the record fields' encoding.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn the_kafka_codec_reads_what_we_build() {
        let built = build_batch(&[(Some(b"k1"), Some(b"hello")), (None, None)], 500);
        let mut bytes = bytes::Bytes::from(built);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[0].key.as_deref(), Some(b"k1".as_slice()));
        assert_eq!(set.records[0].value.as_deref(), Some(b"hello".as_slice()));
        assert_eq!(set.records[1].value, None);
        assert_eq!(set.records[1].timestamp, 501);
        assert_eq!(set.records[1].offset, 1);
    }
}
