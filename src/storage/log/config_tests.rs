//! Each topic config that reaches the partition log through `LogConfig` changes what the
//! log does. The config-walk test (tests/it/config_walk.rs) cites these by name.
use super::*;
use crate::storage::batch_builder::build_batch;
use crate::storage::cleaner::CleanerLimits;
use crate::storage::sim::SimStorage;

fn open(storage: &Arc<dyn Storage>, config: LogConfig) -> PartitionLog {
    PartitionLog::open(storage.clone(), PathBuf::from("/p/t-0"), config)
        .unwrap()
        .0
}

fn one(value: &str, ts: i64) -> Vec<u8> {
    build_batch(&[(None, Some(value.as_bytes()))], ts)
}

/// A compacted log of ~300-byte segments that cleans at any dirty ratio.
fn compacted(min_compaction_lag_ms: i64) -> LogConfig {
    LogConfig {
        delete: false,
        compaction: Some(CompactionConfig {
            delete_retention_ms: 1_000,
            min_cleanable_dirty_ratio: 0.0,
            min_compaction_lag_ms,
            max_compaction_lag_ms: i64::MAX,
        }),
        ..LogConfig::keep_all(300, 4096, 1 << 20)
    }
}

fn keyed(key: &str, value: &str, ts: i64) -> Vec<u8> {
    build_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], ts)
}

#[test]
fn retention_ms_removes_closed_segments_whose_newest_record_is_older() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut config = LogConfig::keep_all(200, 4096, 1 << 20);
    config.retention_ms = 10_000;
    let mut log = open(&storage, config);
    // Segments of ~one batch each: timestamps 1,000 .. 5,000, then a new one at 100,000.
    for ts in [1_000, 2_000, 3_000, 4_000, 5_000, 100_000] {
        log.append(&mut one(&"x".repeat(150), ts)).unwrap();
    }
    let hw = log.log_end_offset();
    assert!(log.segment_count() >= 6, "{} segments", log.segment_count());
    // At 12,500 only the segments newest at 1,000 and 2,000 are past 10 s.
    let removed = log.apply_retention(12_500, hw);
    assert_eq!(log.log_start_offset(), 2);
    removed.run(storage.as_ref());
    // With retention.ms = -1 nothing goes, however old.
    let mut keep = LogConfig::keep_all(200, 4096, 1 << 20);
    keep.retention_ms = -1;
    log.set_config(keep);
    log.apply_retention(1_000_000_000, hw).run(storage.as_ref());
    assert_eq!(log.log_start_offset(), 2);
}

#[test]
fn index_interval_bytes_sets_how_often_the_offset_index_gets_an_entry() {
    let entries = |interval: u64| {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let mut log = open(&storage, LogConfig::keep_all(1 << 20, interval, 1 << 20));
        for i in 0..100 {
            log.append(&mut one(&format!("value-{i:040}"), 1_000))
                .unwrap();
        }
        log.segments[0].offset_index().len()
    };
    let (dense, sparse) = (entries(1), entries(4096));
    assert_eq!(dense, 100, "an entry per batch at index.interval.bytes=1");
    assert!(
        sparse <= 3,
        "{sparse} entries at 4096 for ~10 KB of batches"
    );
}

#[test]
fn min_compaction_lag_ms_keeps_recent_segments_out_of_the_cleaner() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, compacted(60_000));
    for i in 0..20 {
        log.append(&mut keyed("k", &format!("v{i:0100}"), 1_000_000 + i))
            .unwrap();
    }
    let hw = log.log_end_offset();
    let limits = CleanerLimits {
        map_bytes: 1 << 20,
        io_bytes_per_second: 0,
    };
    assert!(
        log.clean_plan(1_000_000 + 59_000, hw, limits).is_none(),
        "every segment is younger than min.compaction.lag.ms"
    );
    assert!(log.clean_plan(1_000_000 + 61_000, hw, limits).is_some());
}

#[test]
fn the_dedupe_buffer_bounds_how_much_of_the_dirty_range_one_pass_cleans() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = open(&storage, compacted(0));
    // A distinct key per record, so the key map grows with every segment.
    for i in 0..40 {
        log.append(&mut keyed(
            &format!("key-{i}"),
            &format!("v{i:0100}"),
            1_000,
        ))
        .unwrap();
    }
    let hw = log.log_end_offset();
    let pass = |map_bytes: usize| {
        let limits = CleanerLimits {
            map_bytes,
            io_bytes_per_second: 0,
        };
        let job = log.clean_plan(2_000, hw, limits).expect("a pass is due");
        let closed_end = job.segments.last().unwrap().next_offset;
        (job.run(storage.as_ref()).unwrap().cleaned_up_to, closed_end)
    };
    let (whole, closed_end) = pass(1 << 20);
    assert_eq!(
        whole, closed_end,
        "a big buffer covers every closed segment"
    );
    let (part, _) = pass(1);
    assert!(
        part < closed_end,
        "a one-byte buffer maps one segment per pass: cleaned to {part} of {closed_end}"
    );
}
