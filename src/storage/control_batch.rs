//! Transaction markers: the control batches a transaction coordinator writes into every
//! partition of a transaction when it ends (Kafka's `EndTransactionMarker`).
//!
//! A marker is a v2 batch with the control and transactional attribute bits, the
//! producer's id and epoch, no sequence, and one record whose key is
//! `[version: i16 = 0][type: i16]` (0 abort, 1 commit) and whose value is
//! `[version: i16 = 0][coordinator epoch: i32]`.

use super::batch::{varlong, BatchHeader, HEADER_SIZE};
use super::batch_builder::{build_batch, set_producer};

const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
const ATTRIBUTES_AT: usize = 21;
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// Builds a commit or abort marker for one producer.
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend(0i16.to_be_bytes());
    key.extend((if commit { COMMIT } else { ABORT }).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend(0i16.to_be_bytes());
    value.extend(coordinator_epoch.to_be_bytes());
    let mut batch = build_batch(&[(Some(&key), Some(&value))], timestamp_ms);
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]
        .copy_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    // Rewrites the producer fields and the CRC, which now covers the new attributes.
    set_producer(&mut batch, producer_id, producer_epoch, -1);
    batch
}

/// Whether a control batch is a commit (true) or an abort (false); None when the batch is
/// not a control batch or its first record is not a marker this broker knows.
pub fn marker_is_commit(batch: &[u8]) -> Option<bool> {
    marker(batch).map(|(commit, _)| commit)
}

/// A marker's (commit, coordinator epoch); None when the batch is not a control batch or
/// its first record is not a marker this broker knows. A marker without a readable value
/// counts as coordinator epoch -1 (older than any).
pub fn marker(batch: &[u8]) -> Option<(bool, i32)> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    let mut pos = HEADER_SIZE;
    let _length = varlong(batch, &mut pos)?;
    pos += 1; // record attributes
    let _timestamp_delta = varlong(batch, &mut pos)?;
    let _offset_delta = varlong(batch, &mut pos)?;
    let key_len = varlong(batch, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        COMMIT => true,
        ABORT => false,
        _ => return None,
    };
    pos = pos.checked_add(usize::try_from(key_len).ok()?)?;
    let coordinator_epoch = varlong(batch, &mut pos)
        .filter(|len| *len >= 6)
        .and_then(|_| batch.get(pos + 2..pos + 6))
        .map_or(-1, |e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]));
    Some((commit, coordinator_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batch;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn markers_validate_and_the_kafka_codec_reads_them_as_control_batches() {
        for commit in [true, false] {
            let marker = build_marker(42, 3, commit, 0, 1_000);
            let header = validate_batch(&marker).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(header.base_sequence, -1);
            assert_eq!(marker_is_commit(&marker), Some(commit));
            let with_epoch = build_marker(42, 3, commit, 17, 1_000);
            assert_eq!(super::marker(&with_epoch), Some((commit, 17)));
            let mut bytes = bytes::Bytes::from(marker);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert!(set.records[0].control && set.records[0].transactional);
        }
        let data = build_batch(&[(None, Some(b"v"))], 0);
        assert_eq!(marker_is_commit(&data), None);
    }
}
