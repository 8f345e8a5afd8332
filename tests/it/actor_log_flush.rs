//! log.flush.interval.ms: with flush_policy = "interval" an acks=1 append is fsynced by the
//! partition's flush timer, not before it fires. Paused clock; the timer is the partition's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::actors::call;
use broker::actors::partition::{Partition, PartitionArgs, PartitionMsg};
use broker::config::FlushPolicy;
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;
use broker::storage::LogConfig;
use bytes::Bytes;
use ractor::Actor;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn log_flush_interval_ms_fsyncs_acks_1_appends_when_its_timer_fires() {
    let storage = SimStorage::new();
    let args = |storage: &SimStorage| PartitionArgs {
        topic: "t".into(),
        partition: 0,
        dir: PathBuf::from("/d/t-0"),
        storage: Arc::new(storage.clone()),
        log: LogConfig::keep_all(1 << 20, 4096, 1 << 20),
        flush_policy: FlushPolicy::Interval,
        flush_interval: Duration::from_secs(5),
        retention_check_interval: Duration::from_secs(3600),
        cleaner: broker::storage::cleaner::CleanerLimits {
            map_bytes: 1 << 20,
            io_bytes_per_second: 0,
        },
        producer_expiry: Default::default(),
        replica: None,
    };
    let (p, _) = Actor::spawn(None, Partition, args(&storage))
        .await
        .expect("spawn");
    let records = Bytes::from(build_batch(
        &[(Some(b"k".as_slice()), Some(b"v".as_slice())); 3],
        1_700_000_000_000,
    ));
    call(
        &p,
        |reply| PartitionMsg::Append {
            records,
            acks: 1,
            reply,
        },
        WAIT,
    )
    .await
    .expect("answered")
    .expect("appended");
    let before = storage.sync_count();

    tokio::time::advance(Duration::from_secs(4)).await;
    let offsets = call(&p, |reply| PartitionMsg::Offsets { reply }, WAIT)
        .await
        .expect("offsets");
    assert_eq!(offsets.log_end_offset, 3);
    assert_eq!(
        storage.sync_count(),
        before,
        "no fsync before log.flush.interval.ms has passed"
    );

    tokio::time::advance(Duration::from_secs(2)).await;
    // The flush runs on a blocking thread: wait, bounded, for its fsync.
    let deadline = Instant::now() + WAIT;
    while storage.sync_count() == before {
        assert!(
            Instant::now() < deadline,
            "the flush timer did not fsync the append"
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    // What the timer fsynced survives a power cut.
    p.stop(None);
    storage.power_cut();
    let (p, _) = Actor::spawn(None, Partition, args(&storage))
        .await
        .expect("respawn");
    let offsets = call(&p, |reply| PartitionMsg::Offsets { reply }, WAIT)
        .await
        .expect("offsets");
    assert_eq!(offsets.log_end_offset, 3);
}
