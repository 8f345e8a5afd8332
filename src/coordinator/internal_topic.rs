//! What the internal topics' stores share (`__consumer_offsets`, `__transaction_state`):
//! appending keyed records with acks=all through the leader's partition actor, walking the
//! keyed records of a partition's batches, and replaying a partition from its log start to
//! its high watermark.

use std::time::Duration;

use bytes::Bytes;
use ractor::ActorRef;

use super::offsets_topic::{batch_of, KeyedRecord};
use crate::actors::partition::{LeaderCheck, PartitionMsg, PartitionOffsets};
use crate::actors::{call, CallError};
use crate::error::PartitionError;
use crate::storage::batch::{split_batches, HEADER_SIZE};
use crate::storage::batch_records::parse_records;
use crate::storage::decompression::records_body;
use crate::storage::StorageError;

/// Appends `records` as one uncompressed batch with acks=all to the partition whose leader
/// `partition` is; Ok once the in-sync replicas have it, within `timeout`.
pub async fn append_acks_all<E>(
    partition: &ActorRef<PartitionMsg>,
    records: &[KeyedRecord],
    timeout: Duration,
) -> Result<(), E>
where
    E: From<CallError> + From<PartitionError>,
{
    if records.is_empty() {
        return Ok(());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let batch = Bytes::from(batch_of(records, now_ms));
    let append = |reply| PartitionMsg::Append {
        records: batch,
        acks: -1,
        reply,
    };
    call(partition, append, timeout).await??;
    Ok(())
}

/// Bytes one read of a replay asks for.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

/// Calls `apply(key, value)` for each keyed record of `batches` (whole batches, as a Read
/// returns them), in offset order; control batches and records without a key are skipped.
/// A decompressed body above `max_body` bytes, or a malformed batch, is an error.
pub fn for_each_keyed_record(
    batches: &[u8],
    max_body: usize,
    mut apply: impl FnMut(&[u8], Option<&[u8]>) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    if batches.is_empty() {
        return Ok(());
    }
    for (header, range) in split_batches(batches, max_body)? {
        let batch = &batches[range];
        if header.is_control() || batch.len() < HEADER_SIZE {
            continue;
        }
        let body = records_body(batch, &header, max_body)?;
        for record in parse_records(&body)? {
            let Some(key) = record.key.clone() else {
                continue;
            };
            let value = record.value.clone().map(|v| &body[v]);
            apply(&body[key], value)?;
        }
    }
    Ok(())
}

/// Hands `apply` the batches of the partition whose leader `partition` is, from its log
/// start to its high watermark. Answers false, reading nothing, while the high watermark
/// is behind the log end offset: what the new leader holds past it may be records the
/// previous leader acknowledged, so the caller tries again later.
pub async fn replay_to_high_watermark<E>(
    partition: &ActorRef<PartitionMsg>,
    timeout: Duration,
    mut apply: impl FnMut(&[u8]) -> Result<(), StorageError>,
) -> Result<bool, E>
where
    E: From<CallError> + From<PartitionError> + From<StorageError>,
{
    let offsets: PartitionOffsets =
        call(partition, |reply| PartitionMsg::Offsets { reply }, timeout).await?;
    if offsets.high_watermark < offsets.log_end_offset {
        return Ok(false);
    }
    let mut next = offsets.log_start_offset;
    while next < offsets.high_watermark {
        let read = |reply| PartitionMsg::Read {
            offset: next,
            max_bytes: REPLAY_READ_BYTES,
            min_one: true,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        };
        let read = call(partition, read, timeout).await??;
        if read.records.is_empty() {
            break;
        }
        apply(&read.records)?;
        let split = split_batches(&read.records, usize::MAX)?;
        let after = split.last().map_or(-1, |(h, _)| h.last_offset());
        if after < next {
            break;
        }
        next = after + 1;
    }
    Ok(true)
}
