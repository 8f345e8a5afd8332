//! Tests of compaction planning and of the cleaned-segment swap: max.compaction.lag.ms,
//! merging small cleaned segments, and power cuts at every step of the swap.
use super::tests::{clean, keyed, records, LIMITS};
use super::*;
use crate::storage::sim::SimStorage;

fn compacted(ratio: f64, min_lag_ms: i64, max_lag_ms: i64, segment_bytes: u64) -> LogConfig {
    LogConfig {
        delete: false,
        compaction: Some(CompactionConfig {
            delete_retention_ms: 1_000,
            min_cleanable_dirty_ratio: ratio,
            min_compaction_lag_ms: min_lag_ms,
            max_compaction_lag_ms: max_lag_ms,
        }),
        ..LogConfig::keep_all(segment_bytes, 200, 1 << 20)
    }
}

/// 60 records of distinct keys u0..u59 (timestamps 1_000..), cleaned once, then 12 newer
/// values of u0..u11 from timestamp 10_000 on: a small dirty segment closes behind them,
/// far below a dirty ratio of 0.5.
fn mostly_clean_log(storage: &Arc<dyn Storage>, config: LogConfig) -> PartitionLog {
    let (mut log, _) =
        PartitionLog::open(storage.clone(), PathBuf::from("/p/m-0"), config).unwrap();
    for i in 0..60 {
        log.append(&mut keyed(&format!("u{i}"), Some("old"), 1_000 + i))
            .unwrap();
    }
    log.flush().unwrap();
    clean(&mut log, storage, 5_000);
    for i in 0..12 {
        log.append(&mut keyed(&format!("u{i}"), Some("new"), 10_000 + i))
            .unwrap();
    }
    log.flush().unwrap();
    log
}

#[test]
fn max_compaction_lag_forces_a_pass_below_the_dirty_ratio() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let mut log = mostly_clean_log(&storage, compacted(0.5, 0, i64::MAX, 700));
    let hw = log.log_end_offset();
    assert!(
        log.cleaner_offset < log.active().base_offset,
        "a closed dirty segment"
    );
    // The default (Long.MAX_VALUE): the ratio alone decides, however old the records.
    assert!(log.clean_plan(i64::MAX / 2, hw, LIMITS).is_none());

    // The oldest dirty record: the first one the earlier pass left dirty (the segment
    // that was active then), one record per batch at timestamp 1_000 + offset.
    assert!(log.cleaner_offset < 60);
    let oldest_dirty = 1_000 + log.cleaner_offset;
    let due = oldest_dirty + 50_000 + 1;
    log.set_config(compacted(0.5, 0, 50_000, 700));
    assert!(log.clean_plan(due - 1, hw, LIMITS).is_none(), "not yet");
    // min.compaction.lag.ms still holds the dirty segments back.
    log.set_config(compacted(0.5, 1_000_000, 50_000, 700));
    assert!(log.clean_plan(due, hw, LIMITS).is_none());

    log.set_config(compacted(0.5, 0, 50_000, 700));
    let before = records(&log);
    let job = log.clean_plan(due, hw, LIMITS).expect("the lag has passed");
    let outcome = job.run(storage.as_ref()).unwrap();
    log.install_cleaned(&outcome).unwrap();
    let after = records(&log);
    let active = log.active().base_offset;
    assert!(after.len() < before.len(), "superseded values removed");
    for (offset, key, value) in &before {
        // The active segment is not cleaned, so its records supersede nothing yet.
        let latest = before
            .iter()
            .rfind(|r| &r.1 == key && r.0 < active)
            .unwrap_or(&before[0]);
        let kept = after.iter().any(|r| r.0 == *offset);
        if latest.0 == *offset || *offset >= active {
            assert!(kept, "{key}={value:?} at {offset} kept");
        } else {
            assert!(!kept, "{key}={value:?} at {offset} superseded, removed");
        }
    }
    assert!(after.iter().all(|r| before.contains(r)));
}
