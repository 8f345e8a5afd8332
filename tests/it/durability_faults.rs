//! Storage durability under faults (issue 13, items 5, 6, 7, 9, 10), over the simulated
//! disk: unsynced recovered data, directory entries a power cut undoes, mid-log corruption
//! moved into quarantine, one flush at a time, and EMFILE on a segment roll.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::actors::call;
use broker::actors::partition::{AppendOutcome, Partition, PartitionArgs, PartitionMsg};
use broker::config::FlushPolicy;
use broker::error::PartitionError;
use broker::storage::batch_builder::build_batch;
use broker::storage::log_quarantine::QUARANTINE_DIR;
use broker::storage::segment::file_name;
use broker::storage::sim::SimStorage;
use broker::storage::{LogConfig, PartitionLog, Storage};
use bytes::Bytes;
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(10);

/// One batch per segment: a second batch never fits beside the first.
fn small_segments() -> LogConfig {
    LogConfig::keep_all(100, 4096, 1 << 20)
}

fn batch(tag: &str) -> Vec<u8> {
    build_batch(
        &[(Some(b"k".as_slice()), Some(tag.as_bytes()))],
        1_700_000_000_000,
    )
}

fn open(sim: &SimStorage, dir: &Path) -> (PartitionLog, broker::storage::RecoveryReport) {
    PartitionLog::open(Arc::new(sim.clone()), dir.to_path_buf(), small_segments())
        .expect("log opens")
}

/// Flushes as the partition actor does (run the job, then complete it); true when it
/// succeeded, so an acks=all produce would be acknowledged.
fn flush(log: &mut PartitionLog) -> bool {
    let Some(job) = log.begin_flush() else {
        return !log.is_failed();
    };
    let result = job.run();
    log.complete_flush(job.up_to, result).is_ok()
}

/// The values of every batch in the log, in offset order.
fn values(log: &PartitionLog) -> Vec<i64> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let read = log
            .read(next, log.log_end_offset(), 1 << 16, true)
            .expect("read");
        assert!(read.batches > 0, "no progress at {next}");
        let h = broker::storage::BatchHeader::parse(&read.records).expect("header");
        out.push(h.base_offset);
        next = h.next_offset();
    }
    out
}

#[test]
fn recovery_fsyncs_what_it_found_before_counting_it_flushed() {
    let sim = SimStorage::new();
    sim.track_directory_entries();
    let dir = PathBuf::from("/data/t-0");
    {
        let (mut log, _) = open(&sim, &dir);
        log.append(&mut batch("a")).expect("append a");
        // kill -9: the page cache keeps "a", no fsync ever covered it.
    }
    let (mut log, _) = open(&sim, &dir);
    assert_eq!(log.flushed_offset(), 1, "recovered data counts as flushed");
    let b = log.append(&mut batch("b")).expect("append b");
    assert_eq!(
        (b.base_offset, log.segment_count()),
        (1, 2),
        "b rolled a segment"
    );
    assert!(flush(&mut log), "acks=all flush of b");
    assert!(log.flushed_offset() > b.last_offset, "b is acknowledged");
    drop(log);
    sim.power_cut();
    let (log, report) = open(&sim, &dir);
    assert_eq!(
        (values(&log), report.segments_quarantined),
        (vec![0, 1], 0),
        "the acknowledged batch b and the batch before it survive a power cut"
    );
}

#[test]
fn a_new_partition_directory_survives_a_power_cut() {
    let sim = SimStorage::new();
    sim.track_directory_entries();
    let dir = PathBuf::from("/data/t-0");
    let (mut log, _) = open(&sim, &dir);
    log.append(&mut batch("a")).expect("append");
    assert!(flush(&mut log), "flush");
    drop(log);
    sim.power_cut();
    assert!(sim.exists(&dir), "the partition directory is durable");
    let (log, _) = open(&sim, &dir);
    assert_eq!(values(&log), vec![0], "the flushed batch survives");
}

#[test]
fn a_failed_directory_fsync_on_a_roll_is_never_acknowledged() {
    let sim = SimStorage::new();
    sim.track_directory_entries();
    let dir = PathBuf::from("/data/t-0");
    let (mut log, _) = open(&sim, &dir);
    log.append(&mut batch("a")).expect("append a");
    assert!(flush(&mut log), "flush a");
    sim.fail_dir_sync("/data/t-0");
    // The roll's new segment entry cannot be made durable.
    let acknowledged = log.append(&mut batch("b")).is_ok() && flush(&mut log);
    let b_flushed = log.flushed_offset() > 1;
    drop(log);
    sim.clear_faults();
    sim.power_cut();
    let (log, _) = open(&sim, &dir);
    if acknowledged && b_flushed {
        assert_eq!(values(&log), vec![0, 1], "an acknowledged batch survives");
    }
    assert!(
        !(acknowledged && b_flushed),
        "a roll whose directory fsync failed must not be acknowledged"
    );
}

/// Three flushed segments (offsets 0, 1, 2), with the log checkpoint removed so recovery
/// reads every byte.
fn three_segments(sim: &SimStorage, dir: &Path) {
    let (mut log, _) = open(sim, dir);
    for tag in ["a", "b", "c"] {
        log.append(&mut batch(tag)).expect("append");
    }
    log.flush().expect("flush");
    drop(log);
    let checkpoint = dir.join("checkpoint");
    if sim.exists(&checkpoint) {
        sim.remove_file(&checkpoint).expect("remove checkpoint");
    }
}

#[test]
fn a_corrupt_batch_mid_log_quarantines_the_later_segments() {
    let sim = SimStorage::new();
    let dir = PathBuf::from("/data/t-0");
    three_segments(&sim, &dir);
    let first = dir.join(file_name(0, "log"));
    let mut bytes = sim.file_contents(&first).expect("first segment");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // the CRC no longer matches
    sim.set_file_contents(&first, bytes);
    let (log, report) = open(&sim, &dir);
    assert_eq!(
        log.log_end_offset(),
        0,
        "the log is cut at the corrupt batch"
    );
    assert_eq!(report.segments_quarantined, 2);
    let quarantine = dir.join(QUARANTINE_DIR);
    for base in [1, 2] {
        let name = file_name(base, "log");
        assert!(!sim.exists(&dir.join(&name)), "{name} left the log");
        assert!(
            sim.file_contents(&quarantine.join(&name))
                .is_some_and(|b| !b.is_empty()),
            "{name} is kept in quarantine with its bytes"
        );
    }
}

#[test]
fn a_missing_segment_quarantines_the_ones_after_it() {
    let sim = SimStorage::new();
    let dir = PathBuf::from("/data/t-0");
    three_segments(&sim, &dir);
    sim.remove_file(&dir.join(file_name(1, "log")))
        .expect("remove the middle segment");
    let (log, report) = open(&sim, &dir);
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(report.segments_quarantined, 1);
    let kept = dir.join(QUARANTINE_DIR).join(file_name(2, "log"));
    assert!(sim.exists(&kept), "segment 2 is in quarantine, not deleted");
}

fn args(sim: &SimStorage, policy: FlushPolicy) -> PartitionArgs {
    PartitionArgs {
        topic: "t".into(),
        partition: 0,
        dir: PathBuf::from("/d/t-0"),
        storage: Arc::new(sim.clone()),
        log: small_segments(),
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

async fn spawn(sim: &SimStorage) -> ActorRef<PartitionMsg> {
    Actor::spawn(None, Partition, args(sim, FlushPolicy::AcksAll))
        .await
        .expect("spawn")
        .0
}

async fn append(p: &ActorRef<PartitionMsg>, tag: &str) -> Result<AppendOutcome, PartitionError> {
    let records = Bytes::from(batch(tag));
    call(
        p,
        |reply| PartitionMsg::Append {
            records,
            acks: -1,
            reply,
        },
        WAIT,
    )
    .await
    .expect("partition answers")
}

/// Sends an acks=all append without waiting for its answer.
fn send_append(
    p: &ActorRef<PartitionMsg>,
    tag: &str,
) -> oneshot::Receiver<Result<AppendOutcome, PartitionError>> {
    let (tx, rx) = oneshot::channel();
    p.send_message(PartitionMsg::Append {
        records: Bytes::from(batch(tag)),
        acks: -1,
        reply: tx.into(),
    })
    .expect("send");
    rx
}

struct ReleaseOnDrop(SimStorage);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_writes();
    }
}

#[tokio::test]
async fn a_shutdown_flush_waits_for_the_background_flush() {
    let sim = SimStorage::new();
    let p = spawn(&sim).await;
    // The first segment's fsync hangs: its background flush stays in flight. Released
    // however the test ends, so a failing assertion cannot hang the runtime's shutdown.
    let _release = ReleaseOnDrop(sim.clone());
    sim.stall_syncs(&file_name(0, "log"));
    let mut a = send_append(&p, "a");
    let deadline = Instant::now() + WAIT;
    while sim.stalled_syncs() == 0 {
        assert!(
            Instant::now() < deadline,
            "the flush never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // b rolls into a new segment; then the shutdown flush.
    let mut b = send_append(&p, "b");
    let (flush_tx, mut flush_rx) = oneshot::channel();
    p.send_message(PartitionMsg::Flush {
        reply: flush_tx.into(),
    })
    .expect("send flush");
    // Handled after the flush message: by now the flush has been handled or parked.
    let offsets = call(&p, |reply| PartitionMsg::Offsets { reply }, WAIT)
        .await
        .expect("offsets");
    assert_eq!(offsets.log_end_offset, 2);
    assert!(
        a.try_recv().is_err(),
        "a is not acknowledged while its fsync has not returned"
    );
    assert!(b.try_recv().is_err(), "b waits for a fsync too");
    assert!(
        flush_rx.try_recv().is_err(),
        "the shutdown flush waits for it"
    );
    assert_eq!(offsets.flushed_offset, 0, "nothing counts as flushed yet");
    sim.release_writes();
    let done = tokio::time::timeout(WAIT, flush_rx)
        .await
        .expect("flush answers");
    assert_eq!(done.expect("reply"), Ok(()));
    for (name, rx) in [("a", a), ("b", b)] {
        let r = tokio::time::timeout(WAIT, rx).await.expect("answered");
        assert!(
            r.expect("reply").is_ok(),
            "{name} acknowledged after its fsync"
        );
    }
}

#[tokio::test]
async fn emfile_on_a_segment_roll_is_retried_not_fatal() {
    let sim = SimStorage::new();
    let p = spawn(&sim).await;
    append(&p, "a").await.expect("a");
    sim.fail_opens_emfile(true);
    assert_eq!(
        append(&p, "b").await,
        Err(PartitionError::StorageFailed),
        "a retriable error while no file can be opened"
    );
    sim.fail_opens_emfile(false);
    let c = append(&p, "c")
        .await
        .expect("c is appended once files open again");
    assert_eq!(c.base_offset, 1);
}

#[tokio::test]
async fn a_deleted_partition_does_not_come_back_after_a_power_cut() {
    let sim = SimStorage::new();
    let dir = PathBuf::from("/d/t-0");
    sim.create_dir_all(&dir).expect("mkdir");
    sim.track_directory_entries();
    let p = spawn(&sim).await;
    append(&p, "a").await.expect("a");
    call(&p, |reply| PartitionMsg::Delete { reply }, WAIT)
        .await
        .expect("deleted");
    sim.power_cut();
    assert!(
        !sim.exists(&dir),
        "a new topic of the same name would adopt the deleted partition's data"
    );
}

#[test]
fn a_removed_group_stays_removed_after_a_power_cut() {
    use broker::coordinator::group_store::{file_name as group_file, GroupFile, GroupRecord};
    let sim = SimStorage::new();
    let dir = PathBuf::from("/data/__groups");
    let (mut store, live) = GroupFile::open(Arc::new(sim.clone()), &dir, "g").expect("open");
    store
        .append("g", GroupRecord::Group { id: "g".into() }, &live)
        .expect("append");
    // The group file exists durably; only its removal is under test.
    sim.track_directory_entries();
    store.remove().expect("remove");
    sim.power_cut();
    assert!(
        !sim.exists(&dir.join(group_file("g"))),
        "a deleted group's offsets do not come back"
    );
}
