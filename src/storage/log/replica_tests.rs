//! Unit tests of the log's replication side: follower appends, leader epochs, truncation.
use super::*;
use crate::storage::batch::{set_base_offset, set_partition_leader_epoch};
use crate::storage::batch_builder::{build_batch, set_producer};
use crate::storage::sim::SimStorage;

const DIR: &str = "/p/t-0";

fn open(storage: &Arc<dyn Storage>, segment_bytes: u64) -> PartitionLog {
    let config = LogConfig::keep_all(segment_bytes, 200, 1 << 20);
    PartitionLog::open(storage.clone(), PathBuf::from(DIR), config)
        .unwrap()
        .0
}

/// A batch of `n` records as a leader wrote it: at `base`, in `epoch`.
fn leader_batch(n: usize, base: i64, epoch: i32) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("v{base}-{i}").into_bytes())
        .collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let mut b = build_batch(&records, 1_000 + base);
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    b
}

/// (base offset, leader epoch) of every batch from `from`.
fn batches(log: &PartitionLog, from: i64) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let read = log.read(next, i64::MAX, 1 << 20, true).unwrap();
        let mut pos = 0;
        if read.records.is_empty() {
            break;
        }
        while pos < read.records.len() {
            let h = BatchHeader::parse(&read.records[pos..]).unwrap();
            out.push((h.base_offset, h.partition_leader_epoch));
            next = h.next_offset();
            pos += h.total_size();
        }
    }
    out
}

fn follow(log: &mut PartitionLog, layout: &[(usize, i32)]) {
    for &(n, epoch) in layout {
        let base = log.log_end_offset();
        log.append_as_follower(&leader_batch(n, base, epoch))
            .unwrap()
            .unwrap();
    }
}

#[test]
fn follower_appends_keep_the_leaders_offsets_and_record_each_epoch() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, 1 << 20);
    let mut two = leader_batch(2, 0, 3);
    two.extend_from_slice(&leader_batch(3, 2, 3));
    let info = log.append_as_follower(&two).unwrap().unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.records),
        (0, 4, 5)
    );
    follow(&mut log, &[(2, 5)]);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(batches(&log, 0), vec![(0, 3), (2, 3), (5, 5)]);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(3), (3, 5));
    assert_eq!(log.end_offset_for_epoch(4), (3, 5));
    assert_eq!(log.end_offset_for_epoch(5), (5, 7));
    assert_eq!(log.append_as_follower(&[]).unwrap(), None);
}

#[test]
fn a_batch_that_does_not_follow_on_is_refused_and_nothing_is_written() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, 1 << 20);
    follow(&mut log, &[(2, 1)]);
    let mut gap = leader_batch(1, 2, 1);
    gap.extend_from_slice(&leader_batch(1, 9, 1));
    assert!(matches!(
        log.append_as_follower(&gap),
        Err(StorageError::InvalidBatch(_))
    ));
    assert!(
        log.append_as_follower(&leader_batch(1, 1, 1)).is_err(),
        "overlap"
    );
    assert_eq!(
        log.log_end_offset(),
        2,
        "the good first batch was not written either"
    );
}

#[test]
fn truncation_across_segments_drops_later_segments_and_epochs() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, 300);
    follow(&mut log, &[(3, 1); 6]);
    follow(&mut log, &[(3, 2); 6]);
    let segments = log.segment_count();
    assert!(segments >= 4, "small segments rolled: {segments}");
    log.truncate_to(19).unwrap();
    assert_eq!(log.log_end_offset(), 18, "the whole batch holding 19 went");
    assert!(log.segment_count() < segments);
    assert_eq!(log.end_offset_for_epoch(1), (1, 18));
    assert_eq!(
        log.end_offset_for_epoch(2),
        (-1, -1),
        "epoch 2 started at 18: gone"
    );
    let bases: Vec<i64> = batches(&log, 0).iter().map(|b| b.0).collect();
    assert_eq!(bases, (0..6).map(|i| i * 3).collect::<Vec<_>>());
    // The follower carries on from the cut with the new leader's epoch.
    follow(&mut log, &[(2, 4)]);
    assert_eq!(batches(&log, 18), vec![(18, 4)]);
    assert!(log.verify_indexes().is_empty());
}

#[test]
fn a_truncation_survives_reopen_and_a_power_cut() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let mut log = open(&storage, 300);
    follow(&mut log, &[(3, 1); 8]);
    log.flush().unwrap();
    sim.track_directory_entries();
    log.truncate_to(7).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    drop(log);
    sim.power_cut();
    let log = open(&storage, 300);
    assert_eq!(log.log_end_offset(), 6, "the cut bytes stay cut");
    assert_eq!(batches(&log, 0), vec![(0, 1), (3, 1)]);
    assert_eq!(log.leader_epochs().entries().len(), 1);
}

#[test]
fn truncation_at_a_segment_boundary_and_to_the_start() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, 300);
    follow(&mut log, &[(3, 0); 8]);
    let second = log.segments[1].base_offset;
    log.truncate_to(second).unwrap();
    assert_eq!(log.log_end_offset(), second);
    assert_eq!(
        log.segment_count(),
        1,
        "the segment starting at the cut went"
    );
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.leader_epochs().entries().is_empty());
    follow(&mut log, &[(1, 2)]);
    assert_eq!(batches(&log, 0), vec![(0, 2)]);
}

#[test]
fn truncation_rebuilds_the_producer_state() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, 1 << 20);
    let idempotent = |base: i64, seq: i32| {
        let mut b = leader_batch(2, base, 1);
        set_producer(&mut b, 42, 0, seq);
        b
    };
    log.append_as_follower(&idempotent(0, 0)).unwrap();
    log.append_as_follower(&idempotent(2, 2)).unwrap();
    log.truncate_to(2).unwrap();
    // Sequence 2 is gone with its batch: the producer's retry is new, not a duplicate.
    let mut retry = build_batch(&[(None, Some(b"again")), (None, Some(b"x"))], 5);
    set_producer(&mut retry, 42, 0, 2);
    let info = log.append(&mut retry).unwrap();
    assert!(!info.duplicate);
    assert_eq!(info.base_offset, 2);
}

#[test]
fn a_follower_below_the_leaders_log_start_starts_over_there() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let mut log = open(&storage, 300);
    follow(&mut log, &[(3, 1); 5]);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(log.segment_count(), 1);
    follow(&mut log, &[(2, 3)]);
    log.flush().unwrap();
    drop(log);
    sim.power_cut();
    let log = open(&storage, 300);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
    assert_eq!(batches(&log, 100), vec![(100, 3)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 102));
}

#[test]
fn delete_records_trims_the_epochs_below_the_log_start() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, 300);
    follow(&mut log, &[(3, 1), (3, 2), (3, 3)]);
    log.delete_records(4, 9).unwrap();
    let entries: Vec<(i32, i64)> = log
        .leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    assert_eq!(entries, vec![(2, 4), (3, 6)]);
}
