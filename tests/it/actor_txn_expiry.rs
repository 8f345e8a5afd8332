//! transactional.id.expiration.ms inside a broker on the simulated disk, driven through the
//! real dispatch: 10,000 idle transactional ids are removed, from memory and from
//! `__transactions`, while one with a transaction open stays; an expired id that comes
//! back gets a fresh producer id; the registry's own timer applies the configured values.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::actors::txn_registry::TxnRegistryMsg;
use broker::config::Config;
use broker::protocol::BrokerContext;
use broker::storage::sim::SimStorage;

use super::actor_txn::{add_partition, config, init_with, start_with};

const IDS: usize = 10_000;
const HOUR_MS: u64 = 3_600_000;

async fn count(ctx: &BrokerContext) -> usize {
    ractor::call!(ctx.txns, |reply| TxnRegistryMsg::Count { reply }).expect("registry answers")
}

async fn expire_idle(ctx: &BrokerContext, now_ms: i64) -> usize {
    ractor::call!(ctx.txns, |reply| TxnRegistryMsg::ExpireIdle {
        now_ms,
        reply
    })
    .expect("registry answers")
}

fn files(storage: &SimStorage) -> Vec<std::path::PathBuf> {
    let dir = Path::new("/data/__transactions");
    storage
        .paths()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// (files, bytes) under `__transactions`.
fn store(storage: &SimStorage) -> (usize, usize) {
    let files = files(storage);
    let bytes = files
        .iter()
        .map(|p| storage.file_contents(p).map_or(0, |c| c.len()))
        .sum();
    (files.len(), bytes)
}

/// Waits, bounded, until the registry holds `want` ids and the store has `files` files.
async fn wait_for(ctx: &BrokerContext, storage: &SimStorage, want: usize, want_files: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (now, on_disk) = (count(ctx).await, files(storage).len());
        if now == want && on_disk == want_files {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s: {now} ids in memory (want {want}), {on_disk} files (want {want_files})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_transactional_ids_expire_with_their_files() {
    let storage = Arc::new(SimStorage::new());
    let config = Config {
        transactional_id_expiration_ms: HOUR_MS,
        // The test drives the clock with ExpireIdle; the timer stays out of the way.
        transaction_remove_expired_transaction_cleanup_interval_ms: 24 * HOUR_MS,
        ..config()
    };
    let (_broker, ctx) = start_with(&storage, config, true).await;

    // One id with a transaction open: never expired, however old.
    let r = init_with(&ctx, "open", 600_000, None).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        add_partition(&ctx, "open", r.producer_id.0, r.producer_epoch).await,
        0
    );
    let baseline = (count(&ctx).await, store(&storage));
    assert_eq!(baseline.0, 1);

    let mut first = (0, 0);
    for i in 0..IDS {
        let r = init_with(&ctx, &format!("idle-{i}"), 60_000, None).await;
        assert_eq!(r.error_code, 0, "InitProducerId idle-{i}");
        if i == 0 {
            first = (r.producer_id.0, r.producer_epoch);
        }
    }
    // A second InitProducerId bumps the epoch: the id's state is remembered.
    let again = init_with(&ctx, "idle-0", 60_000, None).await;
    assert_eq!((again.producer_id.0, again.producer_epoch), (first.0, 1));
    let full = (count(&ctx).await, store(&storage));
    assert_eq!(full.0, IDS + 1);
    assert_eq!(full.1 .0, IDS + 1);

    // Not yet expired: an hour has not passed.
    assert_eq!(expire_idle(&ctx, wall_clock_ms()).await, 0);
    assert_eq!(count(&ctx).await, IDS + 1);

    let removed = expire_idle(&ctx, wall_clock_ms() + HOUR_MS as i64 + 1).await;
    assert_eq!(removed, IDS);
    // The removals are durable once answered: a power cut does not bring them back.
    storage.power_cut();
    assert_eq!(store(&storage), baseline.1, "after a power cut");
    // The expired coordinators are forgotten as their stops arrive.
    wait_for(&ctx, &storage, baseline.0, baseline.1 .0).await;
    let after = (count(&ctx).await, store(&storage));
    println!(
        "transactional ids in memory / files / bytes: baseline {:?}, with {IDS} idle ids {:?}, after expiry {:?}",
        baseline, full, after
    );
    assert_eq!(after, baseline, "memory and files back to the baseline");

    // An expired id that comes back starts afresh: a new producer id, epoch 0.
    let back = init_with(&ctx, "idle-0", 60_000, None).await;
    assert_eq!(back.error_code, 0);
    assert_ne!(back.producer_id.0, first.0, "a new producer id");
    assert_eq!(back.producer_epoch, 0);
    // The open transaction is still there and usable.
    assert_eq!(
        add_partition(&ctx, "open", r.producer_id.0, r.producer_epoch).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_interval_applies_transactional_id_expiration() {
    let storage = Arc::new(SimStorage::new());
    let config = Config {
        transactional_id_expiration_ms: 1,
        transaction_remove_expired_transaction_cleanup_interval_ms: 20,
        ..config()
    };
    let (_broker, ctx) = start_with(&storage, config, false).await;
    for i in 0..3 {
        assert_eq!(
            init_with(&ctx, &format!("t-{i}"), 60_000, None)
                .await
                .error_code,
            0
        );
    }
    // Expiry removes them on the registry's own timer.
    wait_for(&ctx, &storage, 0, 0).await;
}
