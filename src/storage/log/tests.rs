//! Unit tests of the partition log over the simulated and the real file storage.
use super::*;
use crate::storage::batch::BatchHeader;
use crate::storage::batch_builder::build_batch;
use crate::storage::cleaner::CleanerLimits;
use crate::storage::segment::file_name;
use crate::storage::sim::SimStorage;
use crate::storage::txn_state::AbortedTxn;
use crate::storage::FileStorage;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig::keep_all(segment_bytes, 200, 1 << 20)
}

fn batch(n: usize, ts: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    build_batch(&records, ts)
}

fn open(storage: &Arc<dyn Storage>, segment_bytes: u64) -> (PartitionLog, RecoveryReport) {
    PartitionLog::open(
        storage.clone(),
        PathBuf::from("/p/t-0"),
        config(segment_bytes),
    )
    .unwrap()
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = validate_batch(
            &bytes[pos..pos + BatchHeader::parse(&bytes[pos..]).unwrap().total_size()],
        )
        .unwrap();
        pos += h.total_size();
        out.push(h);
    }
    out
}

#[test]
fn append_assigns_offsets_and_reads_cross_segments() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let (mut log, report) = open(&storage, 1000);
    assert_eq!((report.log_end_offset, report.segments), (0, 1));
    let mut bases = Vec::new();
    for i in 0..40 {
        let info = log.append(&mut batch(3, 1000 + i * 10)).unwrap();
        bases.push(info.base_offset);
        assert_eq!(info.last_offset, info.base_offset + 2);
    }
    assert_eq!(bases, (0..40).map(|i| i * 3).collect::<Vec<_>>());
    assert!(log.segment_count() > 3, "small segments rolled");
    let mut next = 0;
    let mut seen = 0;
    while next < 120 {
        let read = log.read(next, 120, 500, true).unwrap();
        for h in headers(&read.records) {
            assert_eq!(h.base_offset, next);
            next = h.next_offset();
            seen += 1;
        }
    }
    assert_eq!(seen, 40);
    // From inside a batch, the batch that holds the offset comes first.
    let read = log.read(31, 120, 10_000, true).unwrap();
    assert_eq!(headers(&read.records)[0].base_offset, 30);
    // max_offset (the high watermark) is never passed.
    let read = log.read(0, 6, 100_000, true).unwrap();
    assert_eq!(headers(&read.records).len(), 2);
    assert!(log.read(120, 120, 1000, true).unwrap().records.is_empty());
    assert!(matches!(
        log.read(121, 200, 1000, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // min_one: a batch larger than max_bytes still comes back whole.
    let read = log.read(0, 120, 10, true).unwrap();
    assert_eq!(read.batches, 1);
    assert!(log.read(0, 120, 10, false).unwrap().records.is_empty());
}

#[test]
fn reopen_restores_everything_and_indexes_agree() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FileStorage);
    let path = dir.path().join("t-0");
    let (mut log, _) = PartitionLog::open(storage.clone(), path.clone(), config(2000)).unwrap();
    for i in 0..60 {
        log.append(&mut batch(1 + (i % 4) as usize, i)).unwrap();
    }
    let end = log.log_end_offset();
    log.flush().unwrap();
    drop(log);
    // A clean flush left a checkpoint at the log end: nothing is read at open.
    let size = {
        let (log, report) =
            PartitionLog::open(storage.clone(), path.clone(), config(2000)).unwrap();
        assert!(report.used_checkpoint);
        assert_eq!((report.log_end_offset, report.batches), (end, 0));
        assert_eq!(report.bytes_trusted, log.size_bytes());
        log.size_bytes()
    };
    // Without it, every batch is read, and the same log comes back.
    storage.remove_file(&path.join("checkpoint")).unwrap();
    let (log, report) = PartitionLog::open(storage, path, config(2000)).unwrap();
    assert!(!report.used_checkpoint);
    assert_eq!(report.log_end_offset, end);
    assert_eq!(report.batches, 60);
    assert_eq!(report.bytes_truncated, 0);
    assert_eq!(log.size_bytes(), size);
    // Every index entry points at the start of a batch with that base offset.
    for segment in &log.segments {
        for (offset, position) in segment.offset_index().entries() {
            let found = segment.locate(offset).unwrap().unwrap();
            assert_eq!(
                (found.header.base_offset, found.position),
                (offset, position)
            );
        }
    }
}

#[test]
fn a_torn_tail_keeps_every_whole_batch() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let (mut log, _) = open(&storage, 1 << 20);
    for i in 0..5 {
        log.append(&mut batch(2, i)).unwrap();
    }
    log.flush().unwrap();
    let path = PathBuf::from("/p/t-0").join(file_name(0, "log"));
    let mut bytes = sim.file_contents(&path).unwrap();
    bytes.truncate(bytes.len() - 9);
    sim.set_file_contents(&path, bytes);
    let (mut log, report) = open(&storage, 1 << 20);
    assert_eq!(report.log_end_offset, 8);
    assert_eq!(report.batches, 4);
    assert!(report.bytes_truncated > 0);
    assert_eq!(
        report.truncated_at.as_ref().map(|(p, _)| p.clone()),
        Some(path)
    );
    assert_eq!(log.append(&mut batch(1, 9)).unwrap().base_offset, 8);
}

#[test]
fn power_cut_keeps_what_was_flushed() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let (mut log, _) = open(&storage, 1 << 20);
    log.append(&mut batch(3, 0)).unwrap();
    let job = log.begin_flush().unwrap();
    assert_eq!(job.up_to, 3);
    let result = job.run();
    log.complete_flush(job.up_to, result).unwrap();
    assert_eq!(log.flushed_offset(), 3);
    log.append(&mut batch(3, 0)).unwrap();
    assert!(log.flushed_offset() < log.log_end_offset());
    sim.power_cut();
    let (log, _) = open(&storage, 1 << 20);
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn failed_fsync_and_enospc_fail_the_log_for_writes_only() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let (mut log, _) = open(&storage, 1 << 20);
    log.append(&mut batch(2, 0)).unwrap();
    log.flush().unwrap();
    log.append(&mut batch(2, 0)).unwrap();
    sim.fail_fsync(None);
    let job = log.begin_flush().unwrap();
    let result = job.run();
    assert!(log.complete_flush(job.up_to, result).is_err());
    assert!(log.is_failed());
    assert_eq!(log.flushed_offset(), 2);
    assert!(matches!(
        log.append(&mut batch(1, 0)),
        Err(StorageError::Failed)
    ));
    assert_eq!(log.read(0, 2, 1 << 20, true).unwrap().batches, 1);

    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let (mut log, _) = open(&storage, 1 << 20);
    log.append(&mut batch(2, 0)).unwrap();
    sim.fail_writes_enospc(true);
    assert!(log.append(&mut batch(2, 0)).unwrap_err().is_io());
    assert_eq!(log.log_end_offset(), 2);
    sim.clear_faults();
    sim.torn_write_after(10);
    let sim2 = SimStorage::new();
    let storage2: Arc<dyn Storage> = Arc::new(sim2.clone());
    let (mut log2, _) = open(&storage2, 1 << 20);
    log2.append(&mut batch(2, 0)).unwrap();
    sim2.torn_write_after(10);
    assert!(log2.append(&mut batch(2, 0)).is_err());
    assert_eq!(log2.log_end_offset(), 2);
    let path = PathBuf::from("/p/t-0").join(file_name(0, "log"));
    assert_eq!(
        sim2.file_contents(&path).unwrap().len() as u64,
        log2.size_bytes(),
        "the torn bytes were cut back"
    );
}

#[test]
fn segment_ms_rolls_an_old_active_segment() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut config = config(1 << 20);
    config.segment_ms = 0;
    config.retention_ms = -1;
    let (mut log, _) = PartitionLog::open(storage, PathBuf::from("/p/t-0"), config).unwrap();
    log.append(&mut batch(1, 0)).unwrap();
    log.active_since_ms -= 1; // the active segment has been open for a millisecond
    log.append(&mut batch(1, 0)).unwrap();
    assert_eq!(
        log.segment_count(),
        2,
        "rolled by age, far below segment.bytes"
    );
}

#[test]
fn timestamps() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let (mut log, _) = open(&storage, 1000);
    for i in 0..30 {
        log.append(&mut batch(2, 1000 + i * 100)).unwrap();
    }
    // Batch i holds offsets 2i and 2i+1 with timestamps 1000 + i*100 and +1.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1550).unwrap(), Some((12, 1600)));
    assert_eq!(
        log.offset_for_timestamp(1601).unwrap(),
        Some((13, 1601)),
        "the second record of a batch"
    );
    assert_eq!(log.offset_for_timestamp(100_000).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((59, 3901)));
}

#[test]
fn a_timestamp_lookup_skips_records_below_the_log_start_offset() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let (mut log, _) = open(&storage, 1 << 20);
    // One batch, offsets 0..5, timestamps 1000..1004.
    log.append(&mut batch(5, 1000)).unwrap();
    log.append(&mut batch(5, 2000)).unwrap();
    log.delete_records(3, 10).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((3, 1003)));
    assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((3, 1003)));
    log.delete_records(5, 10).unwrap();
    assert_eq!(
        log.offset_for_timestamp(1004).unwrap(),
        Some((5, 2000)),
        "the batch's qualifying record is deleted: the next batch answers"
    );
}

#[test]
fn a_batch_expanding_past_the_bound_answers_its_base_offset_without_decompressing_it_whole() {
    use crate::storage::batch_builder::build_compressed_batch;
    use kafka_protocol::records::Compression;
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    // max.message.bytes 4096: the records may expand to 1 MiB (the floor of the bound).
    let (mut log, _) = PartitionLog::open(
        storage.clone(),
        PathBuf::from("/p/bomb-0"),
        LogConfig::keep_all(1 << 20, 200, 4096),
    )
    .unwrap();
    let zeros = vec![0u8; 4 << 20];
    let small = [0u8; 100];
    let records = [(None, Some(&zeros[..])), (None, Some(&small[..]))];
    let mut bomb = build_compressed_batch(&records, 5000, Compression::Zstd);
    assert!(bomb.len() < 4096, "{} bytes on the wire", bomb.len());
    log.append(&mut bomb).unwrap();
    // The first record's head is read before the bound is reached; the second lies past
    // 4 MiB of zeros, so the scan stops at the bound and the batch-level answer is given.
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), Some((0, 5000)));
    assert_eq!(log.offset_for_timestamp(5001).unwrap(), Some((0, 5001)));
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((0, 5001)));
}

fn transactional(n: usize, producer_id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut b = batch(n, 1_000);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    crate::storage::batch_builder::set_producer(&mut b, producer_id, epoch, sequence);
    b
}

#[test]
fn open_and_aborted_transactions_survive_reopen_and_markers_fence() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let (mut log, _) = open(&storage, 1 << 20);
    log.append(&mut transactional(2, 7, 0, 0)).unwrap();
    log.append(&mut batch(1, 1_000)).unwrap();
    assert_eq!(
        log.last_stable_offset(3),
        0,
        "an open transaction holds the LSO"
    );
    log.flush().unwrap();
    drop(log);
    let (mut log, _) = open(&storage, 1 << 20);
    assert_eq!(log.last_stable_offset(3), 0, "rebuilt from the log");
    // The coordinator aborts with a bumped epoch, fencing epoch 0.
    let marker = log.append_marker(7, 1, false, 0).unwrap();
    assert_eq!(marker.base_offset, 3);
    assert_eq!(log.last_stable_offset(4), 4);
    let aborted = AbortedTxn {
        producer_id: 7,
        first_offset: 0,
        last_offset: 3,
    };
    assert_eq!(log.aborted_between(0, 4), vec![aborted]);
    assert!(matches!(
        log.append(&mut transactional(1, 7, 0, 2)),
        Err(StorageError::Sequence(_))
    ));
    assert!(
        log.append_marker(7, 0, true, 0).is_err(),
        "a marker from an older epoch is refused"
    );
    log.flush().unwrap();
    drop(log);
    let (mut log, _) = open(&storage, 1 << 20);
    assert_eq!(
        log.aborted_between(0, 4),
        vec![aborted],
        "rebuilt from the log"
    );
    assert_eq!(log.last_stable_offset(4), 4);
    // The new epoch starts at sequence 0 and opens a new transaction.
    log.append(&mut transactional(1, 7, 1, 0)).unwrap();
    assert_eq!(log.last_stable_offset(5), 4);
    log.append_marker(7, 1, true, 0).unwrap();
    assert_eq!(log.last_stable_offset(6), 6);
    assert_eq!(log.aborted_between(4, 6), vec![]);
}

fn idempotent(n: usize, producer_id: i64, sequence: i32) -> Vec<u8> {
    let mut b = batch(n, 1_000);
    crate::storage::batch_builder::set_producer(&mut b, producer_id, 0, sequence);
    b
}

#[test]
fn a_crash_after_rolls_reads_only_past_the_checkpoint_and_keeps_producer_state() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let (mut log, _) = open(&storage, 600);
    let mut sequence = 0;
    for _ in 0..40 {
        log.append(&mut idempotent(2, 9, sequence)).unwrap();
        sequence += 2;
        // A flush per append, as acks=all does: each roll's checkpoint gets written.
        let job = log.begin_flush().unwrap();
        let result = job.run();
        log.complete_flush(job.up_to, result).unwrap();
    }
    let end = log.log_end_offset();
    let segments = log.segment_count();
    assert!(segments > 4);
    drop(log); // no clean shutdown: a crash
    let (mut log, report) = open(&storage, 600);
    assert!(report.used_checkpoint);
    assert_eq!(report.log_end_offset, end);
    assert!(
        report.batches < 40 / (segments as u64 - 1) + 2,
        "only the active segment is read ({} batches)",
        report.batches
    );
    assert!(report.bytes_trusted > 0);
    // The snapshot plus the replayed tail still know the producer's last batches.
    let retry = log.append(&mut idempotent(2, 9, sequence - 2)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, end - 2);
    let gap = log.append(&mut idempotent(2, 9, sequence + 4));
    assert!(matches!(gap, Err(StorageError::Sequence(_))));
    log.append(&mut idempotent(2, 9, sequence)).unwrap();
}

#[test]
fn a_checkpoint_that_does_not_match_the_segments_is_ignored() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let (mut log, _) = open(&storage, 600);
    for i in 0..30 {
        log.append(&mut batch(2, i)).unwrap();
    }
    log.flush().unwrap();
    let end = log.log_end_offset();
    let first = log.segments[0].path().to_path_buf();
    drop(log);
    // A closed segment shorter than the checkpoint says (bytes lost behind its back).
    let file = storage.open(&first, false).unwrap();
    let len = file.len().unwrap();
    file.truncate(len - 10).unwrap();
    let (log, report) = open(&storage, 600);
    assert!(!report.used_checkpoint, "the checkpoint was not trusted");
    assert!(
        report.bytes_truncated > 0,
        "the torn batch was found by reading"
    );
    assert!(log.log_end_offset() < end);
}

pub(super) fn compacted_config() -> LogConfig {
    LogConfig {
        delete: false,
        compaction: Some(crate::storage::CompactionConfig {
            delete_retention_ms: 1_000,
            min_cleanable_dirty_ratio: 0.1,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }),
        ..config(700)
    }
}

pub(super) fn keyed(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    build_batch(&[(Some(key.as_bytes()), value.map(str::as_bytes))], ts)
}

/// (offset, key, value) of every record, read through the log.
pub(super) fn records(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    use kafka_protocol::records::RecordBatchDecoder;
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let read = log.read(next, log.log_end_offset(), 1 << 20, true).unwrap();
        if read.records.is_empty() {
            break;
        }
        let mut bytes = read.records.clone();
        while !bytes.is_empty() {
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            for r in set.records {
                let text =
                    |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((r.offset, text(r.key).unwrap(), text(r.value)));
                next = r.offset + 1;
            }
        }
        next = next.max(headers(&read.records).last().unwrap().next_offset());
    }
    out
}

/// 60 records over 5 keys, key k<i%5> = v<i>; then a tombstone for k0 at time `tombstone_ts`.
pub(super) const LIMITS: CleanerLimits = CleanerLimits {
    map_bytes: 1 << 20,
    io_bytes_per_second: 0,
};

#[test]
fn a_cleaning_pass_keeps_to_its_io_rate() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let log = compacted_log(&storage, 5_000);
    let limit = 20_000;
    let job = log
        .clean_plan(
            5_500,
            log.log_end_offset(),
            CleanerLimits {
                io_bytes_per_second: limit,
                ..LIMITS
            },
        )
        .unwrap();
    let started = std::time::Instant::now();
    let outcome = job.run(storage.as_ref()).unwrap();
    // Every segment is read at least once (mapping), so the pass moved at least that much.
    let floor = std::time::Duration::from_secs_f64(outcome.bytes_read as f64 / limit as f64);
    assert!(outcome.bytes_read > 1000);
    assert!(
        started.elapsed() >= floor,
        "{:?} < {floor:?}",
        started.elapsed()
    );
}

pub(super) fn compacted_log(storage: &Arc<dyn Storage>, tombstone_ts: i64) -> PartitionLog {
    let (mut log, _) =
        PartitionLog::open(storage.clone(), PathBuf::from("/p/c-0"), compacted_config()).unwrap();
    for i in 0..60 {
        log.append(&mut keyed(
            &format!("k{}", i % 5),
            Some(&format!("v{i}")),
            1_000 + i,
        ))
        .unwrap();
    }
    log.append(&mut keyed("k0", None, tombstone_ts)).unwrap();
    for i in 0..12 {
        // Fill past the tombstone so its segment closes.
        log.append(&mut keyed("k9", Some(&format!("w{i}")), 2_000 + i))
            .unwrap();
    }
    log.flush().unwrap();
    log
}

pub(super) fn clean(
    log: &mut PartitionLog,
    storage: &Arc<dyn Storage>,
    now_ms: i64,
) -> CleanerStats {
    let hw = log.log_end_offset();
    let job = log.clean_plan(now_ms, hw, LIMITS).expect("a pass is due");
    let outcome = job.run(storage.as_ref()).unwrap();
    log.install_cleaned(&outcome).unwrap()
}

#[test]
fn compaction_keeps_the_latest_record_per_key_and_expires_tombstones() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = compacted_log(&storage, 5_000);
    let before = records(&log);
    let end = log.log_end_offset();
    let active_base = log.active().base_offset;
    // Tombstone younger than delete.retention.ms (now 5_500, retention 1_000): kept.
    let stats = clean(&mut log, &storage, 5_500);
    assert!(stats.bytes_after < stats.bytes_before);
    let after = records(&log);
    assert_eq!(
        log.log_end_offset(),
        end,
        "the log end offset does not move"
    );
    let closed: Vec<_> = after.iter().filter(|r| r.0 < active_base).collect();
    let mut keys: Vec<&String> = closed.iter().map(|r| &r.1).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        closed.len(),
        "one record per key below the active segment"
    );
    // Each is the latest record of its key below the active segment, same offset.
    for (offset, key, value) in &closed {
        let latest = before
            .iter()
            .rfind(|r| &r.1 == key && r.0 < active_base)
            .unwrap();
        assert_eq!((offset, value), (&latest.0, &latest.2));
    }
    assert!(
        closed.iter().any(|r| r.1 == "k0" && r.2.is_none()),
        "tombstone kept for now"
    );
    // The active segment is untouched.
    let active_before: Vec<_> = before.iter().filter(|r| r.0 >= active_base).collect();
    let active_after: Vec<_> = after.iter().filter(|r| r.0 >= active_base).collect();
    assert_eq!(active_before, active_after);
    // A reopen reads the same.
    drop(log);
    let (mut log, _) =
        PartitionLog::open(storage.clone(), PathBuf::from("/p/c-0"), compacted_config()).unwrap();
    assert_eq!(records(&log), after);
    // More dirty data, a pass after the tombstone expired: k0 is gone.
    for i in 0..30 {
        log.append(&mut keyed(&format!("k{}", 1 + i % 4), Some("x"), 9_000 + i))
            .unwrap();
    }
    clean(&mut log, &storage, 7_000);
    assert!(
        !records(&log).iter().any(|r| r.1 == "k0"),
        "expired tombstone removed"
    );
}

#[test]
fn a_crash_during_the_swap_leaves_all_old_or_all_new_segments() {
    for renamed in [0usize, 1, 2, usize::MAX] {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let log = compacted_log(&storage, 5_000);
        let before = records(&log);
        let hw = log.log_end_offset();
        let outcome = log
            .clean_plan(5_500, hw, LIMITS)
            .unwrap()
            .run(storage.as_ref())
            .unwrap();
        assert!(outcome.segments.len() > 2);
        drop(log);
        // The crash: the pending cleaner offset written, some (or all) `.cleaned` files
        // renamed to `.swap`, nothing else.
        let dir = PathBuf::from("/p/c-0");
        super::retention::write_offset_file(
            storage.as_ref(),
            &dir,
            super::compaction::CLEANER_OFFSET_PENDING,
            outcome.cleaned_up_to,
        )
        .unwrap();
        for c in outcome.segments.iter().take(renamed) {
            let name = file_name(c.base_offset, "log");
            storage
                .rename(
                    &dir.join(format!("{name}.cleaned")),
                    &super::compaction::swap_path(&dir, c),
                )
                .unwrap();
        }
        let (log, _) =
            PartitionLog::open(storage.clone(), dir.clone(), compacted_config()).unwrap();
        let after = records(&log);
        if renamed >= outcome.segments.len() {
            assert!(after.len() < before.len(), "all renamed: the new segments");
            let keys: std::collections::BTreeSet<_> = after.iter().map(|r| &r.1).collect();
            assert_eq!(keys.len(), 6, "k0..k4 and k9: {keys:?}");
        } else {
            assert_eq!(after, before, "{renamed} renamed: the old segments, whole");
        }
        let leftovers = storage
            .list_dir(&dir)
            .unwrap()
            .into_iter()
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".cleaned") || n.ends_with(".swap")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
