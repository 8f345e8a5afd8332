//! Tests of compaction planning and of the cleaned-segment swap: max.compaction.lag.ms,
//! merging small cleaned segments, and power cuts at every step of the swap.
use super::tests::{clean, keyed, records, LIMITS};
use super::*;
use crate::storage::segment::file_name;
use crate::storage::sim::SimStorage;
use std::path::Path;

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

/// One-record batches in 700-byte segments: every tenth record has a key of its own, the
/// rest overwrite four hot keys, so each cleaned segment keeps about one record.
fn append_small_records(log: &mut PartitionLog, from: i64, to: i64) {
    for i in from..to {
        let key = if i % 10 == 0 {
            format!("u{i}")
        } else {
            format!("h{}", i % 4)
        };
        log.append(&mut keyed(&key, Some(&format!("v{i}")), 1_000 + i))
            .unwrap();
    }
    log.flush().unwrap();
}

fn small_segments_config() -> LogConfig {
    compacted(0.1, 0, i64::MAX, 700)
}

/// What a pass over everything below `active` keeps: the latest record of each key there,
/// and every record of the active segment.
fn expected_after_cleaning(
    before: &[(i64, String, Option<String>)],
    active: i64,
) -> Vec<(i64, String, Option<String>)> {
    before
        .iter()
        .filter(|r| {
            r.0 >= active
                || before
                    .iter()
                    .rfind(|l| l.1 == r.1 && l.0 < active)
                    .is_some_and(|l| l.0 == r.0)
        })
        .cloned()
        .collect()
}

fn log_files(sim: &SimStorage, dir: &str) -> usize {
    sim.paths()
        .iter()
        .filter(|p| p.starts_with(dir) && p.extension().is_some_and(|e| e == "log"))
        .count()
}

/// A log whose first pass left about one record in each of many small segments, with
/// 30 more records appended since: the second pass is due.
fn after_a_first_pass(storage: &Arc<dyn Storage>, dir: &str) -> PartitionLog {
    let (mut log, _) =
        PartitionLog::open(storage.clone(), PathBuf::from(dir), small_segments_config()).unwrap();
    append_small_records(&mut log, 0, 400);
    clean(&mut log, storage, 5_000);
    append_small_records(&mut log, 400, 430);
    log
}

#[test]
fn cleaning_merges_small_segments_into_few_files() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = "/p/s-0";
    let mut log = after_a_first_pass(&storage, dir);
    let before = records(&log);
    let active = log.active().base_offset;
    let expected = expected_after_cleaning(&before, active);
    let (segments_before, files_before) = (log.segment_count(), log_files(&sim, dir));
    // Kafka's grouping counts segment sizes before the pass, so the segments the first
    // pass shrank merge in this one.
    clean(&mut log, &storage, 6_000);
    let (segments_after, files_after) = (log.segment_count(), log_files(&sim, dir));
    eprintln!("segments {segments_before} -> {segments_after}, .log files {files_before} -> {files_after}");
    assert_eq!(
        records(&log),
        expected,
        "latest value per key, offsets unchanged"
    );
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 430);
    assert!(
        files_after * 4 <= files_before,
        ".log files {files_before} -> {files_after}"
    );
    assert_eq!(segments_after, files_after);
    drop(log);
    let (log, _) =
        PartitionLog::open(storage.clone(), PathBuf::from(dir), small_segments_config()).unwrap();
    assert_eq!(records(&log), expected, "the same after a restart");
    assert_eq!(log.segment_count(), segments_after);
}

/// The simulated disk, dying after a set number of steps: every create, file fsync,
/// rename, delete and directory fsync counts one, and from the last one on each fails, as
/// on a machine that lost power there (the test then cuts the power).
#[derive(Debug)]
struct DiesAfter {
    sim: SimStorage,
    steps_left: Arc<std::sync::atomic::AtomicI64>,
}

impl DiesAfter {
    fn step(&self) -> std::io::Result<()> {
        step(&self.steps_left)
    }
}

fn step(left: &std::sync::atomic::AtomicI64) -> std::io::Result<()> {
    if left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) <= 0 {
        return Err(std::io::Error::other("the power is gone"));
    }
    Ok(())
}

#[derive(Debug)]
struct DyingFile {
    file: Arc<dyn LogFile>,
    steps_left: Arc<std::sync::atomic::AtomicI64>,
}

impl LogFile for DyingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
        if self.steps_left.load(std::sync::atomic::Ordering::SeqCst) <= 0 {
            return Err(std::io::Error::other("the power is gone"));
        }
        self.file.write_at(buf, pos)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.file.read_at(buf, pos)
    }
    fn sync(&self) -> std::io::Result<()> {
        step(&self.steps_left)?;
        self.file.sync()
    }
    fn truncate(&self, len: u64) -> std::io::Result<()> {
        self.file.truncate(len)
    }
}

impl Storage for DiesAfter {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.sim.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<PathBuf>> {
        self.sim.list_dir(path)
    }
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn LogFile>> {
        if create {
            self.step()?;
        }
        Ok(Arc::new(DyingFile {
            file: self.sim.open(path, create)?,
            steps_left: self.steps_left.clone(),
        }))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.step()?;
        self.sim.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.step()?;
        self.sim.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.step()?;
        self.sim.rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        self.sim.exists(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.step()?;
        self.sim.sync_dir(path)
    }
}

#[test]
fn a_power_cut_at_any_step_of_a_merging_pass_loses_and_duplicates_nothing() {
    let dir = "/p/cut-0";
    let (mut old_states, mut new_states) = (0, 0);
    for steps in 0.. {
        let sim = SimStorage::new();
        let steps_left = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
        let dying: Arc<dyn Storage> = Arc::new(DiesAfter {
            sim: sim.clone(),
            steps_left: steps_left.clone(),
        });
        let mut log = after_a_first_pass(&dying, dir);
        let before = records(&log);
        let expected = expected_after_cleaning(&before, log.active().base_offset);
        assert!(expected.len() < before.len());
        sim.track_directory_entries();
        steps_left.store(steps, std::sync::atomic::Ordering::SeqCst);
        let job = log
            .clean_plan(6_000, log.log_end_offset(), LIMITS)
            .expect("a pass is due");
        let finished = job
            .run(&*dying)
            .and_then(|outcome| log.install_cleaned(&outcome))
            .is_ok();
        drop(log);
        sim.power_cut();
        let plain: Arc<dyn Storage> = Arc::new(sim.clone());
        for open in ["after the cut", "after a second start"] {
            let (log, _) =
                PartitionLog::open(plain.clone(), PathBuf::from(dir), small_segments_config())
                    .unwrap();
            let after = records(&log);
            if after == before {
                old_states += 1;
            } else {
                assert_eq!(after, expected, "power cut after {steps} steps, {open}");
                new_states += 1;
            }
            assert_eq!(log.log_end_offset(), 430, "{steps} steps, {open}");
            let leftovers: Vec<PathBuf> = sim
                .paths()
                .into_iter()
                .filter(|p| {
                    let name = p.to_string_lossy();
                    name.ends_with(".cleaned") || name.ends_with(".swap")
                })
                .collect();
            assert!(leftovers.is_empty(), "{steps} steps, {open}: {leftovers:?}");
        }
        if finished && steps_left.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            eprintln!("{steps} steps; old segments found {old_states} times, merged {new_states}");
            assert!(old_states > 0 && new_states > 2);
            break;
        }
    }
}

#[test]
fn a_swap_name_past_the_cleaner_offset_deletes_nothing_the_cleaner_never_read() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = "/p/bad-0";
    let log = after_a_first_pass(&storage, dir);
    let cleaner_offset = log.cleaner_offset;
    let before = records(&log);
    drop(log);
    // A committed swap for the first segment whose name claims every offset there is.
    let first = Path::new(dir).join(file_name(0, "log"));
    let swap = Path::new(dir).join(format!("{}.{:020}.swap", file_name(0, "log"), i64::MAX));
    sim.set_file_contents(&swap, sim.file_contents(&first).unwrap());
    let (log, _) =
        PartitionLog::open(storage.clone(), PathBuf::from(dir), small_segments_config()).unwrap();
    let unread: Vec<_> = before.iter().filter(|r| r.0 >= cleaner_offset).collect();
    assert!(!unread.is_empty());
    let after = records(&log);
    for r in unread {
        assert!(after.contains(r), "{r:?} kept");
    }
    assert_eq!(log.log_end_offset(), 430);
}

#[test]
fn a_merging_pass_whose_segments_changed_meanwhile_is_dropped() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = "/p/changed-0";
    let mut log = after_a_first_pass(&storage, dir);
    let hw = log.log_end_offset();
    let outcome = log
        .clean_plan(6_000, hw, LIMITS)
        .unwrap()
        .run(storage.as_ref())
        .unwrap();
    assert!(outcome.segments[0].replaces.len() > 1, "a merged group");
    // DeleteRecords takes the first segment away while the pass ran.
    let second = log.segments[1].base_offset;
    let (_, removal) = log.delete_records(second, hw).unwrap();
    removal.run(storage.as_ref());
    let before = records(&log);
    let segments = log.segment_count();
    assert_eq!(
        log.install_cleaned(&outcome).unwrap(),
        CleanerStats::default()
    );
    assert_eq!(records(&log), before);
    assert_eq!(log.segment_count(), segments);
    assert!(!sim
        .paths()
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".cleaned")));
}
