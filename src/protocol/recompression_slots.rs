//! Where produced batches are recompressed to their topic's `compression.type`: on
//! tokio's blocking pool, awaited by the connection before the append is sent (so batches
//! still reach each partition in request order). Not on the partition actor, which would
//! stall every other request to the partition; not inline in the connection task, where a
//! 1 MiB batch (milliseconds of CPU) would stall every connection sharing the worker thread.
//!
//! At most one recompression per CPU core runs at once, broker-wide: the work is CPU-bound,
//! so more would gain nothing, and each one holds up to a zstd window (16 MiB) and
//! `max.message.bytes` of output, so this also bounds their memory whatever the number of
//! connections. The others wait holding only their request's bytes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::debug;

use crate::error::PartitionError;
use crate::storage::recompression::recompress_records;

fn slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            Arc::new(Semaphore::new(cores))
        })
        .clone()
}

/// The records with every batch in `codec`, or the error code to answer for the partition.
/// Waiting for a slot ends at the request's `deadline` (REQUEST_TIMED_OUT, retriable).
pub async fn recompressed(
    records: Bytes,
    codec: u8,
    max_batch_bytes: usize,
    deadline: Option<Instant>,
) -> Result<Bytes, i16> {
    let slot = slots().acquire_owned();
    let slot = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, slot).await {
            Ok(slot) => slot,
            Err(_) => return Err(ResponseError::RequestTimedOut.code()),
        },
        None => slot.await,
    };
    let Ok(slot) = slot else {
        return Err(ResponseError::UnknownServerError.code());
    };
    let work = tokio::task::spawn_blocking(move || {
        // Held by the work itself: a client gone away does not free the slot early.
        let _slot = slot;
        recompress_records(&records, codec, max_batch_bytes)
            .map(|out| out.map_or(records, Bytes::from))
    });
    match work.await {
        Ok(Ok(records)) => Ok(records),
        Ok(Err(err)) => {
            debug!(%err, "Refused a produce whose batches do not recompress.");
            Err(PartitionError::from(err).code())
        }
        Err(_) => Err(ResponseError::UnknownServerError.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batch;
    use crate::storage::batch_builder::build_compressed_batch;
    use crate::storage::recompression::ZSTD;
    use kafka_protocol::records::Compression;

    #[tokio::test]
    async fn recompressions_wait_for_a_free_slot_until_the_deadline() {
        let batch = build_compressed_batch(&[(Some(b"k"), Some(b"v"))], 1_000, Compression::Gzip);
        let records = Bytes::from(batch);
        // Every slot taken: the produce's deadline passes while it waits.
        let all = slots();
        let cores = all.available_permits() as u32;
        let held = all.clone().acquire_many_owned(cores).await.unwrap();
        let waited = recompressed(records.clone(), ZSTD, 1 << 20, Some(Instant::now())).await;
        assert_eq!(waited, Err(ResponseError::RequestTimedOut.code()));
        drop(held);
        let done = recompressed(
            records,
            ZSTD,
            1 << 20,
            Some(Instant::now() + std::time::Duration::from_secs(30)),
        )
        .await
        .unwrap();
        assert_eq!(validate_batch(&done).unwrap().compression(), ZSTD);
    }
}
