//! producer.id.expiration.ms at the partition actor on the simulated disk: idle idempotent
//! producers are forgotten, in memory and in the log checkpoint's producer snapshot (a
//! restart does not bring them back), one with a transaction open is kept, and a later
//! batch of an expired producer is taken as an unknown producer's, as Kafka takes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::actors::call;
use broker::actors::partition::{PartitionArgs, PartitionMsg, ProducerExpiry};
use broker::config::FlushPolicy;
use broker::storage::batch_builder::{build_batch, set_producer};
use broker::storage::sim::SimStorage;
use bytes::Bytes;
use ractor::ActorRef;

use super::actor_partition::{append, args, spawn};

const T0: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3_600_000;
const WAIT: Duration = Duration::from_secs(10);

fn expiring(storage: &SimStorage, expiry: ProducerExpiry) -> PartitionArgs {
    let mut a = args(
        Arc::new(storage.clone()),
        PathBuf::from("/d/t-0"),
        FlushPolicy::AcksAll,
    );
    a.producer_expiry = expiry;
    a
}

/// One record from `producer_id` at `sequence`, stamped `timestamp`.
fn batch_of(producer_id: i64, sequence: i32, timestamp: i64, transactional: bool) -> Bytes {
    let value = format!("p{producer_id}-{sequence}");
    let mut b = build_batch(&[(None, Some(value.as_bytes()))], timestamp);
    set_producer(&mut b, producer_id, 0, sequence);
    if transactional {
        // attributes (bytes 21..23), bit 4; the CRC covers them, so it is set again.
        b[22] |= 0x10;
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Bytes::from(b)
}

async fn producers(p: &ActorRef<PartitionMsg>) -> Vec<i64> {
    call(p, |reply| PartitionMsg::Producers { reply }, WAIT)
        .await
        .expect("producers")
        .iter()
        .map(|s| s.producer_id)
        .collect()
}

async fn expire(p: &ActorRef<PartitionMsg>, now_ms: i64) -> usize {
    call(
        p,
        |reply| PartitionMsg::ExpireProducers { now_ms, reply },
        WAIT,
    )
    .await
    .expect("expiry answered")
}

async fn flush(p: &ActorRef<PartitionMsg>) {
    call(p, |reply| PartitionMsg::Flush { reply }, WAIT)
        .await
        .expect("flush answered")
        .expect("flushed");
}

fn checkpoint_bytes(storage: &SimStorage) -> usize {
    storage
        .file_contents(Path::new("/d/t-0/checkpoint"))
        .map_or(0, |c| c.len())
}

#[tokio::test]
async fn idle_producers_expire_from_memory_and_from_the_snapshot() {
    let storage = SimStorage::new();
    let expiry = ProducerExpiry {
        expiration_ms: HOUR_MS,
        // The test drives the clock with ExpireProducers.
        check_interval: Duration::from_secs(24 * 3600),
    };
    let p = spawn(expiring(&storage, expiry)).await;
    for id in 1..=1000 {
        append(&p, batch_of(id, 0, T0, false), -1).await.unwrap();
    }
    // One written later, and one with a transaction open: neither is idle.
    append(&p, batch_of(5000, 0, T0 + HOUR_MS / 2, false), -1)
        .await
        .unwrap();
    append(&p, batch_of(6000, 0, T0, true), -1).await.unwrap();
    // A gap from a known producer is refused: OUT_OF_ORDER_SEQUENCE_NUMBER.
    let gap = append(&p, batch_of(5, 7, T0, false), -1).await;
    assert_eq!(gap.unwrap_err().code(), 45);
    // The checkpoint now holds all 1002 producers.
    flush(&p).await;
    let full = (producers(&p).await.len(), checkpoint_bytes(&storage));
    assert_eq!(full.0, 1002);

    assert_eq!(
        expire(&p, T0 + HOUR_MS - 1).await,
        0,
        "not idle long enough"
    );
    assert_eq!(expire(&p, T0 + HOUR_MS).await, 1000);
    assert_eq!(producers(&p).await, vec![5000, 6000]);
    // The expiry's own flush rewrote the snapshot; Flush waits for it.
    flush(&p).await;
    let after = checkpoint_bytes(&storage);
    println!(
        "producers in memory / checkpoint bytes: {} / {} before expiry, 2 / {after} after",
        full.0, full.1
    );
    assert!(
        after < full.1 / 10,
        "checkpoint {} -> {after} bytes",
        full.1
    );

    // A restart reads the snapshot: the expired producers stay forgotten.
    p.stop_and_wait(None, None).await.unwrap();
    let p = spawn(expiring(&storage, expiry)).await;
    assert_eq!(producers(&p).await, vec![5000, 6000]);
    // An expired producer is unknown now: its batch is taken whatever its sequence.
    append(&p, batch_of(5, 7, T0 + 2 * HOUR_MS, false), -1)
        .await
        .expect("an unknown producer's batch is taken");
    assert_eq!(producers(&p).await, vec![5, 5000, 6000]);
}

#[tokio::test]
async fn the_check_interval_applies_producer_id_expiration() {
    let storage = SimStorage::new();
    let expiry = ProducerExpiry {
        expiration_ms: 1,
        check_interval: Duration::from_millis(20),
    };
    let p = spawn(expiring(&storage, expiry)).await;
    for id in 1..=3 {
        append(&p, batch_of(id, 0, T0, false), -1).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let left = producers(&p).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not expired after 10 s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
