//! Compaction through the partition actor (no socket): a compacted partition on the
//! simulated disk cleans its closed segments when its retention timer fires, off its
//! mailbox, and swaps them in; reads then see the latest value of every key in offset order, tombstones kept
//! (younger than delete.retention.ms), the active segment untouched, and the log start and
//! end offsets where they were.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::actors::call;
use broker::actors::partition::{
    LeaderCheck, Partition, PartitionArgs, PartitionMsg, PartitionOffsets,
};
use broker::config::FlushPolicy;
use broker::storage::batch_builder::build_batch;
use broker::storage::cleaner::CleanerLimits;
use broker::storage::sim::SimStorage;
use broker::storage::{CompactionConfig, LogConfig};
use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use ractor::{Actor, ActorRef};

const WAIT: Duration = Duration::from_secs(10);

/// (offset, key, value) of every record from `offset` to the high watermark.
async fn records(p: &ActorRef<PartitionMsg>) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let read = call(
            p,
            |reply| PartitionMsg::Read {
                offset: next,
                max_bytes: 1 << 20,
                min_one: true,
                read_committed: false,
                check: LeaderCheck::NONE,
                reply,
            },
            WAIT,
        )
        .await
        .expect("read answered")
        .expect("read ok");
        if read.records.is_empty() {
            return out;
        }
        let mut bytes = read.records.clone();
        while !bytes.is_empty() {
            let set = RecordBatchDecoder::decode(&mut bytes).expect("a batch decodes");
            for r in set.records {
                let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((r.offset, text(r.key).unwrap(), text(r.value)));
                next = r.offset + 1;
            }
        }
    }
}

async fn offsets(p: &ActorRef<PartitionMsg>) -> PartitionOffsets {
    call(p, |reply| PartitionMsg::Offsets { reply }, WAIT)
        .await
        .expect("offsets")
}

#[tokio::test]
async fn the_partition_cleans_its_closed_segments_to_the_latest_value_per_key() {
    let storage = SimStorage::new();
    let log = LogConfig {
        delete: false,
        compaction: Some(CompactionConfig {
            delete_retention_ms: 3_600_000,
            min_cleanable_dirty_ratio: 0.0,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }),
        ..LogConfig::keep_all(2048, 256, 1 << 20)
    };
    let args = PartitionArgs {
        topic: "c".into(),
        partition: 0,
        dir: PathBuf::from("/d/c-0"),
        storage: Arc::new(storage.clone()),
        log,
        flush_policy: FlushPolicy::Always,
        flush_interval: Duration::from_secs(3600),
        // The timer never fires by itself during the test: the test sends its message once
        // the "before" state is read, so how fast the appends run cannot matter.
        retention_check_interval: Duration::from_secs(3600),
        cleaner: CleanerLimits {
            map_bytes: 1 << 20,
            io_bytes_per_second: 0,
        },
        producer_expiry: Default::default(),
        replica: None,
    };
    let p = Actor::spawn(None, Partition, args).await.expect("spawn").0;

    // 200 records over 5 keys, one batch each; k0 is deleted halfway (a tombstone).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // What was written, at the offsets the appends were given.
    let mut before = Vec::new();
    for i in 0..200 {
        let key = format!("k{}", i % 5);
        let value = format!("v{i:03}");
        let value = (i != 100).then_some(value);
        let batch = build_batch(
            &[(Some(key.as_bytes()), value.as_deref().map(str::as_bytes))],
            now,
        );
        let appended = call(
            &p,
            |reply| PartitionMsg::Append {
                records: Bytes::from(batch),
                acks: -1,
                reply,
            },
            WAIT,
        )
        .await
        .expect("answered")
        .expect("appended");
        before.push((appended.base_offset, key, value));
    }
    let before_offsets = offsets(&p).await;
    assert_eq!(before_offsets.log_end_offset, 200);

    // The retention timer fires now; the pass runs on a blocking thread: wait, bounded,
    // for its swap.
    p.cast(PartitionMsg::RetentionTick).expect("tick sent");
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let after = records(&p).await;
        if after.len() < 40 {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "{} records after 20 s",
            after.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert!(
        after.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets in order"
    );
    let o = offsets(&p).await;
    assert_eq!(o.log_start_offset, 0, "cleaning is not deletion");
    assert_eq!(o.log_end_offset, before_offsets.log_end_offset);
    // Every record kept is one that was written, at its own offset.
    for r in &after {
        assert!(before.contains(r), "{r:?} was never written at that offset");
    }
    // The latest value of every key is there.
    let latest: BTreeMap<&String, &(i64, String, Option<String>)> =
        before.iter().map(|r| (&r.1, r)).collect();
    for r in latest.values() {
        assert!(after.contains(r), "latest {r:?} kept");
    }
    // The tombstone (younger than delete.retention.ms) stays while k0 has no later value;
    // here k0 was written again after it, so the tombstone itself is superseded.
    assert!(!after.iter().any(|r| r.1 == "k0" && r.2.is_none()));
}
