//! Partition actor driven directly (no socket): appends, reads, offsets, the high watermark
//! invariants, group commit and failing storage, and recovery from a torn tail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use broker::actors::call;
use broker::actors::partition::{
    AppendOutcome, LeaderCheck, Partition, PartitionArgs, PartitionMsg, PartitionOffsets,
    EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use broker::config::FlushPolicy;
use broker::error::PartitionError;
use broker::storage::batch::BatchHeader;
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;
use broker::storage::{FileStorage, LogConfig, Storage};
use bytes::Bytes;
use ractor::{Actor, ActorRef};

const WAIT: Duration = Duration::from_secs(10);

use broker::storage::batch_builder::KeyValue as Rec;

pub(crate) fn args(storage: Arc<dyn Storage>, dir: PathBuf, policy: FlushPolicy) -> PartitionArgs {
    PartitionArgs {
        topic: "t".into(),
        partition: 0,
        dir,
        storage,
        log: LogConfig::keep_all(4096, 256, 1 << 20),
        flush_policy: policy,
        flush_interval: Duration::from_secs(3600),
        retention_check_interval: Duration::from_secs(3600),
        cleaner: broker::storage::cleaner::CleanerLimits {
            map_bytes: 1 << 20,
            io_bytes_per_second: 0,
        },
        producer_expiry: Default::default(),
        replica: None,
    }
}

pub(crate) async fn spawn(args: PartitionArgs) -> ActorRef<PartitionMsg> {
    Actor::spawn(None, Partition, args).await.expect("spawn").0
}

/// A partition at /d/t-0 over the simulated disk.
async fn on_sim(storage: &SimStorage, policy: FlushPolicy) -> ActorRef<PartitionMsg> {
    spawn(args(
        Arc::new(storage.clone()),
        PathBuf::from("/d/t-0"),
        policy,
    ))
    .await
}

fn batch(n: usize, tag: &str) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let records: Vec<Rec> = values
        .iter()
        .map(|v| (Some(b"k".as_slice()), Some(v.as_bytes())))
        .collect();
    Bytes::from(build_batch(&records, 1_700_000_000_000))
}

pub(crate) async fn append(
    p: &ActorRef<PartitionMsg>,
    records: Bytes,
    acks: i16,
) -> Result<AppendOutcome, PartitionError> {
    call(
        p,
        |reply| PartitionMsg::Append {
            records,
            acks,
            reply,
        },
        WAIT,
    )
    .await
    .expect("partition answers")
}

async fn offsets(p: &ActorRef<PartitionMsg>) -> PartitionOffsets {
    call(p, |reply| PartitionMsg::Offsets { reply }, WAIT)
        .await
        .expect("offsets")
}

async fn read(p: &ActorRef<PartitionMsg>, offset: i64, max_bytes: usize) -> Vec<BatchHeader> {
    let read = call(
        p,
        |reply| PartitionMsg::Read {
            offset,
            max_bytes,
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
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < read.records.len() {
        let h = BatchHeader::parse(&read.records[pos..]).expect("whole batch");
        headers.push(h);
        pos += h.total_size();
    }
    headers
}

fn check_invariants(o: &PartitionOffsets) {
    assert!(o.log_start_offset <= o.high_watermark, "{o:?}");
    assert!(o.high_watermark <= o.log_end_offset, "{o:?}");
}

#[tokio::test]
async fn appends_get_contiguous_offsets_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn(args(
        Arc::new(FileStorage),
        dir.path().join("t-0"),
        FlushPolicy::AcksAll,
    ))
    .await;
    let mut expected_base = 0;
    for i in 0..50 {
        let n = 1 + i % 7;
        let out = append(&p, batch(n, &format!("b{i}")), 1).await.unwrap();
        assert_eq!(out.base_offset, expected_base);
        assert_eq!(out.last_offset, expected_base + n as i64 - 1);
        expected_base += n as i64;
        let o = offsets(&p).await;
        check_invariants(&o);
        assert_eq!(o.high_watermark, expected_base, "acks=1 is visible at once");
    }
    // Read everything back from 0 in pages, crossing segments (4 KiB segments).
    let mut next = 0;
    while next < expected_base {
        let headers = read(&p, next, 1000).await;
        assert!(!headers.is_empty());
        for h in headers {
            assert_eq!(h.base_offset, next, "batches are contiguous");
            next = h.next_offset();
        }
    }
    assert_eq!(next, expected_base);
    // A read from inside a batch starts with the batch that holds the offset.
    let from_middle = read(&p, 2, 1_000_000).await;
    assert!(from_middle[0].base_offset <= 2 && from_middle[0].last_offset() >= 2);
    // At the high watermark: nothing, and no error.
    assert!(read(&p, expected_base, 1000).await.is_empty());
    // Past the log end offset: OFFSET_OUT_OF_RANGE.
    let past = call(
        &p,
        |reply| PartitionMsg::Read {
            offset: expected_base + 1,
            max_bytes: 1000,
            min_one: true,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(past.unwrap_err(), PartitionError::OffsetOutOfRange);
    let latest = call(
        &p,
        |reply| PartitionMsg::ListOffset {
            timestamp: LATEST_TIMESTAMP,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(latest.0, expected_base);
    let earliest = call(
        &p,
        |reply| PartitionMsg::ListOffset {
            timestamp: EARLIEST_TIMESTAMP,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(earliest.0, 0);
}

#[tokio::test]
async fn corrupt_and_oversized_batches_are_refused_with_kafka_errors() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    let mut bad = batch(3, "x").to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let err = append(&p, Bytes::from(bad), 1).await.unwrap_err();
    assert!(matches!(err, PartitionError::CorruptMessage(_)), "{err:?}");
    assert_eq!(err.code(), 2);
    let truncated = batch(3, "x").slice(..40);
    assert_eq!(append(&p, truncated, 1).await.unwrap_err().code(), 2);
    let values: Vec<Vec<u8>> = vec![vec![7u8; 600 * 1024]; 2];
    let records: Vec<Rec> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let big = Bytes::from(build_batch(&records, 0));
    assert_eq!(append(&p, big, 1).await.unwrap_err().code(), 10);
    // Nothing of those reached the log.
    assert_eq!(offsets(&p).await.log_end_offset, 0);
    assert_eq!(append(&p, batch(2, "ok"), 1).await.unwrap().base_offset, 0);
}

#[tokio::test]
async fn acks_all_waits_for_an_fsync_and_one_fsync_serves_many() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    let before = storage.sync_count();
    // Send 20 acks=all appends without awaiting, then await them all.
    let mut waits = Vec::new();
    for i in 0..20 {
        let records = batch(5, &format!("w{i}"));
        waits.push(
            broker::actors::ask(&p, |reply| PartitionMsg::Append {
                records,
                acks: -1,
                reply,
            })
            .unwrap(),
        );
    }
    let mut bases = Vec::new();
    for w in waits {
        bases.push(w.await.unwrap().unwrap().base_offset);
    }
    assert_eq!(bases, (0..20).map(|i| i * 5).collect::<Vec<_>>());
    let syncs = storage.sync_count() - before;
    assert!(
        syncs >= 1,
        "an acks=all append was answered without any fsync"
    );
    assert!(syncs < 20, "group commit: {syncs} fsyncs for 20 appends");
    let o = offsets(&p).await;
    assert_eq!(o.flushed_offset, 100);
    // Everything acknowledged survives a power cut.
    p.stop(None);
    storage.power_cut();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    assert_eq!(offsets(&p).await.log_end_offset, 100);
}

#[tokio::test]
async fn always_policy_keeps_the_high_watermark_at_the_fsynced_offset() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::Always).await;
    for i in 0..10 {
        let out = append(&p, batch(3, &format!("a{i}")), 1).await.unwrap();
        let o = offsets(&p).await;
        check_invariants(&o);
        assert!(o.high_watermark > out.last_offset);
        assert!(
            o.high_watermark <= o.flushed_offset,
            "visible before durable: {o:?}"
        );
    }
    p.stop(None);
    storage.power_cut();
    let p = on_sim(&storage, FlushPolicy::Always).await;
    assert_eq!(offsets(&p).await.log_end_offset, 30);
}

#[tokio::test]
async fn a_failed_fsync_is_never_acknowledged_and_reads_keep_working() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    append(&p, batch(4, "good"), -1).await.unwrap();
    storage.fail_fsync(None);
    let err = append(&p, batch(4, "lost"), -1).await.unwrap_err();
    assert_eq!(err, PartitionError::StorageFailed);
    assert_eq!(err.code(), 56);
    storage.clear_faults();
    // Not retried as if nothing happened: the log stays failed for writes.
    assert_eq!(
        append(&p, batch(1, "later"), 1).await.unwrap_err().code(),
        56
    );
    // What was durable is still served.
    let headers = read(&p, 0, 1 << 20).await;
    assert_eq!(headers[0].base_offset, 0);
    assert_eq!(headers[0].records_count, 4);
    // After a restart (recovery from the log) the partition takes writes again.
    p.stop(None);
    storage.power_cut();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    assert_eq!(offsets(&p).await.log_end_offset, 4);
    assert_eq!(
        append(&p, batch(1, "again"), -1).await.unwrap().base_offset,
        4
    );
}

#[tokio::test]
async fn enospc_fails_appends_until_space_is_freed_and_reads_keep_working() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    append(&p, batch(2, "a"), 1).await.unwrap();
    storage.fail_writes_enospc(true);
    assert_eq!(append(&p, batch(2, "b"), 1).await.unwrap_err().code(), 56);
    let o = offsets(&p).await;
    assert_eq!((o.log_end_offset, o.high_watermark), (2, 2));
    assert_eq!(read(&p, 0, 1 << 20).await.len(), 1);
    // Space is freed: appends work again, right after the last acknowledged one.
    storage.clear_faults();
    assert_eq!(append(&p, batch(2, "c"), -1).await.unwrap().base_offset, 2);
    assert_eq!(read(&p, 0, 1 << 20).await.len(), 2);
}

#[tokio::test]
async fn a_torn_write_fails_the_log_and_recovery_keeps_what_was_acknowledged() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    append(&p, batch(3, "a"), -1).await.unwrap();
    storage.torn_write_after(17);
    assert_eq!(append(&p, batch(3, "b"), -1).await.unwrap_err().code(), 56);
    storage.clear_faults();
    assert_eq!(append(&p, batch(3, "c"), -1).await.unwrap_err().code(), 56);
    p.stop(None);
    storage.power_cut();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    assert_eq!(offsets(&p).await.log_end_offset, 3);
    assert_eq!(append(&p, batch(1, "d"), -1).await.unwrap().base_offset, 3);
}

#[tokio::test]
async fn a_parked_fetch_is_woken_by_an_append() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    let woken = broker::actors::ask(&p, |notify| PartitionMsg::WaitForData {
        offset: 0,
        read_committed: false,
        notify,
    })
    .unwrap();
    append(&p, batch(1, "wake"), 1).await.unwrap();
    tokio::time::timeout(WAIT, woken)
        .await
        .expect("woken within the bound")
        .expect("notified, not dropped");
    // Already-available data answers at once.
    let now = broker::actors::ask(&p, |notify| PartitionMsg::WaitForData {
        offset: 0,
        read_committed: false,
        notify,
    })
    .unwrap();
    tokio::time::timeout(WAIT, now).await.unwrap().unwrap();
}

#[tokio::test]
async fn recovery_keeps_every_whole_batch_of_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("t-0");
    let p = spawn(args(
        Arc::new(FileStorage),
        pdir.clone(),
        FlushPolicy::AcksAll,
    ))
    .await;
    for i in 0..5 {
        append(&p, batch(2, &format!("r{i}")), -1).await.unwrap();
    }
    call(&p, |reply| PartitionMsg::Flush { reply }, WAIT)
        .await
        .unwrap()
        .unwrap();
    p.stop(None);
    // Cut the newest segment in the middle of its last batch.
    let mut logs: Vec<_> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let newest = logs.last().unwrap();
    let len = std::fs::metadata(newest).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let p = spawn(args(Arc::new(FileStorage), pdir, FlushPolicy::AcksAll)).await;
    let o = offsets(&p).await;
    assert_eq!(
        o.log_end_offset, 8,
        "four whole batches of two records remain"
    );
    assert_eq!(o.high_watermark, 8);
    let headers = read(&p, 0, 1 << 20).await;
    assert_eq!(
        headers.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 2, 4, 6]
    );
    // The next append continues right after the last whole batch.
    assert_eq!(
        append(&p, batch(1, "next"), 1).await.unwrap().base_offset,
        8
    );
}

fn idempotent(n: usize, producer_id: i64, epoch: i16, base_sequence: i32) -> Bytes {
    let mut b = batch(n, &format!("p{producer_id}-{base_sequence}")).to_vec();
    broker::storage::batch_builder::set_producer(&mut b, producer_id, epoch, base_sequence);
    Bytes::from(b)
}

#[tokio::test]
async fn idempotent_retries_are_written_once_and_gaps_and_old_epochs_refused() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    let first = append(&p, idempotent(3, 42, 0, 0), -1).await.unwrap();
    let second = append(&p, idempotent(2, 42, 0, 3), -1).await.unwrap();
    assert_eq!((first.base_offset, second.base_offset), (0, 3));
    // A retry of the first batch: its original offsets, nothing written.
    let retry = append(&p, idempotent(3, 42, 0, 0), -1).await.unwrap();
    assert_eq!((retry.base_offset, retry.last_offset), (0, 2));
    assert_eq!(offsets(&p).await.log_end_offset, 5);
    // A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert_eq!(
        append(&p, idempotent(1, 42, 0, 9), -1)
            .await
            .unwrap_err()
            .code(),
        45
    );
    // A newer epoch starts again at 0; then the old epoch is fenced: INVALID_PRODUCER_EPOCH (47).
    assert_eq!(
        append(&p, idempotent(1, 42, 1, 0), -1)
            .await
            .unwrap()
            .base_offset,
        5
    );
    assert_eq!(
        append(&p, idempotent(1, 42, 0, 5), -1)
            .await
            .unwrap_err()
            .code(),
        47
    );
    // Another producer is independent.
    assert_eq!(
        append(&p, idempotent(1, 7, 0, 0), -1)
            .await
            .unwrap()
            .base_offset,
        6
    );

    // After a crash the state is rebuilt from the log: the retry is still a duplicate.
    p.stop(None);
    storage.power_cut();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    assert_eq!(offsets(&p).await.log_end_offset, 7);
    let retry = append(&p, idempotent(2, 42, 0, 3), -1).await;
    assert_eq!(
        retry.unwrap_err().code(),
        47,
        "epoch 0 stays fenced after the restart"
    );
    let retry = append(&p, idempotent(1, 42, 1, 0), -1).await.unwrap();
    assert_eq!(
        retry.base_offset, 5,
        "a retry after the restart gets its original offset"
    );
    assert_eq!(
        append(&p, idempotent(1, 42, 1, 1), -1)
            .await
            .unwrap()
            .base_offset,
        7
    );
    assert_eq!(offsets(&p).await.log_end_offset, 8);
}

fn retaining(storage: &SimStorage, retention_ms: i64, retention_bytes: i64) -> PartitionArgs {
    let mut a = args(
        Arc::new(storage.clone()),
        PathBuf::from("/d/t-0"),
        FlushPolicy::AcksAll,
    );
    a.log.retention_ms = retention_ms;
    a.log.retention_bytes = retention_bytes;
    a
}

fn segment_files(storage: &SimStorage) -> usize {
    storage
        .paths()
        .iter()
        .filter(|p| p.starts_with("/d/t-0") && p.extension().is_some_and(|e| e == "log"))
        .count()
}

async fn retention(p: &ActorRef<PartitionMsg>, now_ms: i64) -> (usize, i64) {
    call(
        p,
        |reply| PartitionMsg::ApplyRetention { now_ms, reply },
        WAIT,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn retention_by_size_deletes_the_oldest_closed_segments() {
    let storage = SimStorage::new();
    let p = spawn(retaining(&storage, -1, 8_000)).await;
    for i in 0..60 {
        append(&p, batch(5, &format!("s{i}-{}", "x".repeat(100))), 1)
            .await
            .unwrap();
    }
    let before = segment_files(&storage);
    assert!(before > 4, "4 KiB segments rolled: {before}");
    let (deleted, log_start) = retention(&p, 0).await;
    assert!(deleted > 0);
    let o = offsets(&p).await;
    check_invariants(&o);
    assert_eq!(o.log_start_offset, log_start);
    assert!(
        log_start > 0 && log_start % 5 == 0,
        "starts at a batch: {log_start}"
    );
    // What is left is within the limit plus the active segment, and reads start at the log start.
    let headers = read(&p, log_start, 1 << 20).await;
    assert_eq!(headers[0].base_offset, log_start);
    let below = call(
        &p,
        |reply| PartitionMsg::Read {
            offset: 0,
            max_bytes: 1000,
            min_one: true,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        below.unwrap_err().code(),
        1,
        "OFFSET_OUT_OF_RANGE below the log start offset"
    );
    let earliest = call(
        &p,
        |reply| PartitionMsg::ListOffset {
            timestamp: EARLIEST_TIMESTAMP,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(earliest.0, log_start);
    // The files go (off the actor); a restart starts at the same place.
    p.stop(None);
    let p = spawn(retaining(&storage, -1, 8_000)).await;
    assert_eq!(offsets(&p).await.log_start_offset, log_start);
    assert_eq!(offsets(&p).await.log_end_offset, 300);
}

#[tokio::test]
async fn retention_by_time_keeps_the_active_segment_and_never_passes_the_high_watermark() {
    let storage = SimStorage::new();
    let p = spawn(retaining(&storage, 60_000, -1)).await;
    // Records stamped 1_700_000_000_000 + i (build_batch's base timestamp).
    for i in 0..40 {
        append(&p, batch(5, &format!("t{i}")), 1).await.unwrap();
    }
    let t0 = 1_700_000_000_000i64;
    // Not yet old: nothing goes.
    assert_eq!(retention(&p, t0 + 30_000).await.0, 0);
    // Everything is old: every closed segment goes, the active one stays.
    let (deleted, log_start) = retention(&p, t0 + 10_000_000).await;
    assert!(deleted > 0);
    let o = offsets(&p).await;
    check_invariants(&o);
    assert!(log_start <= o.high_watermark);
    assert!(
        o.log_end_offset > log_start,
        "the active segment is never deleted"
    );
    assert!(!read(&p, log_start, 1 << 20).await.is_empty());
}

#[tokio::test]
async fn delete_records_moves_the_log_start_offset_durably() {
    let storage = SimStorage::new();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    for i in 0..40 {
        append(&p, batch(5, &format!("d{i}")), 1).await.unwrap();
    }
    let low = call(
        &p,
        |reply| PartitionMsg::DeleteRecords { offset: 123, reply },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(low, 123);
    assert_eq!(offsets(&p).await.log_start_offset, 123);
    // Reading at the log start offset returns the batch that holds it.
    let headers = read(&p, 123, 1 << 20).await;
    assert!(headers[0].base_offset <= 123 && headers[0].last_offset() >= 123);
    // Beyond the high watermark: OFFSET_OUT_OF_RANGE; never backwards.
    let err = call(
        &p,
        |reply| PartitionMsg::DeleteRecords { offset: 500, reply },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(err.unwrap_err().code(), 1);
    let same = call(
        &p,
        |reply| PartitionMsg::DeleteRecords { offset: 50, reply },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(same, 123);
    // -1 means the high watermark.
    let all = call(
        &p,
        |reply| PartitionMsg::DeleteRecords { offset: -1, reply },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(all, 200);
    // The appends were acks=1: make them durable, then cut the power.
    call(&p, |reply| PartitionMsg::Flush { reply }, WAIT)
        .await
        .unwrap()
        .unwrap();
    p.stop(None);
    storage.power_cut();
    let p = on_sim(&storage, FlushPolicy::AcksAll).await;
    let o = offsets(&p).await;
    assert_eq!(
        (o.log_start_offset, o.log_end_offset),
        (200, 200),
        "the log start offset survived"
    );
    assert_eq!(
        append(&p, batch(1, "next"), 1).await.unwrap().base_offset,
        200
    );
}
