//! `broker check --data-dir DIR [--repair]`: an offline verifier of a data directory.
//!
//! For every partition directory it reads every segment's batches (length, magic, CRC-32C,
//! offsets continuing across batches and segments) and checks each offset- and time-index
//! entry against the log; it reads every record file (`check_record_files`).
//! Each problem is reported with its file and byte position. Run it while the broker is
//! stopped.
//!
//! `--repair` does what recovery does at start (cut a torn tail, rewrite the indexes) and
//! says what it changed. It never drops a whole valid batch: when a bad batch is followed
//! by valid ones (corruption inside the log, not a torn tail) it refuses and reports it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::batch::{validate_batch, BatchHeader, HEADER_SIZE};
use crate::storage::segment::{file_name, parse_base_offset};
use crate::storage::{LogConfig, PartitionLog, Storage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub position: u64,
    pub what: String,
    /// True when everything after `position` is unusable (a torn tail), so cutting
    /// there drops no valid batch.
    pub torn_tail: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub partitions: usize,
    pub segments: usize,
    pub batches: u64,
    pub records_files: usize,
    pub problems: Vec<Problem>,
    /// What `--repair` changed, one sentence each.
    pub repairs: Vec<String>,
}

/// Checks `data_dir`; with `repair`, fixes torn tails and rewrites indexes.
pub fn check(storage: Arc<dyn Storage>, data_dir: &Path, repair: bool) -> std::io::Result<Report> {
    let mut report = Report::default();
    for entry in storage.list_dir(data_dir)? {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if crate::check_record_files::check_store_dir(
            storage.clone(),
            &entry,
            &name,
            repair,
            &mut report,
        )? {
            continue;
        }
        if !name.ends_with("-delete") && storage.list_dir(&entry).is_ok() {
            check_partition(storage.clone(), &entry, repair, &mut report)?;
        }
    }
    Ok(report)
}

fn check_partition(
    storage: Arc<dyn Storage>,
    dir: &Path,
    repair: bool,
    report: &mut Report,
) -> std::io::Result<()> {
    report.partitions += 1;
    let mut bases: Vec<i64> = storage
        .list_dir(dir)?
        .iter()
        .filter_map(|p| parse_base_offset(p, "log"))
        .collect();
    bases.sort_unstable();
    // Gaps below the cleaner offset are compaction's; elsewhere they are lost data.
    let cleaner_offset = crate::storage::log::read_cleaner_offset(storage.as_ref(), dir);
    let mut expected: Option<i64> = None;
    let mut found = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        report.segments += 1;
        let path = dir.join(file_name(*base, "log"));
        if let Some(expected) = expected {
            if *base < expected || (*base > expected && expected >= cleaner_offset) {
                found.push(Problem {
                    file: path.clone(),
                    position: 0,
                    what: format!(
                        "segment starts at offset {base}, where the previous one ends at {expected}"
                    ),
                    torn_tail: false,
                });
            }
        }
        let scan = scan_segment(
            storage.as_ref(),
            &path,
            *base,
            cleaner_offset,
            i + 1 == bases.len(),
        )?;
        report.batches += scan.batches.len() as u64;
        expected = Some(scan.next_offset);
        found.extend(scan.problems.iter().cloned());
        // Index entries past a damaged point are that same damage; only the valid part of
        // the log is held against its indexes.
        let valid_end = scan
            .problems
            .first()
            .map(|p| p.position)
            .unwrap_or(u64::MAX);
        let batches = &scan.batches;
        found.extend(check_offset_index(
            storage.as_ref(),
            dir,
            *base,
            batches,
            valid_end,
        ));
        found.extend(check_time_index(
            storage.as_ref(),
            dir,
            *base,
            batches,
            valid_end,
        ));
    }
    let fixable = found
        .iter()
        .all(|p| p.torn_tail || p.what.starts_with("index"));
    if repair && !found.is_empty() {
        if fixable {
            let config = LogConfig::keep_all(u64::MAX, 4096, usize::MAX);
            // The repair reads every batch: the checkpoint would vouch for damaged segments.
            let checkpoint = dir.join(crate::storage::log_checkpoint::CHECKPOINT_FILE);
            if storage.exists(&checkpoint) {
                storage.remove_file(&checkpoint)?;
            }
            match PartitionLog::open(storage.clone(), dir.to_path_buf(), config) {
                Ok((mut log, recovered)) => {
                    if let Some((file, position)) = &recovered.truncated_at {
                        report.repairs.push(format!(
                            "cut {} bytes off {} at byte {position}",
                            recovered.bytes_truncated,
                            file.display()
                        ));
                    }
                    match log.flush() {
                        Ok(()) => report
                            .repairs
                            .push(format!("rewrote the index files of {}", dir.display())),
                        Err(err) => report.repairs.push(format!(
                            "could not rewrite the index files of {}: {err}",
                            dir.display()
                        )),
                    }
                    found.retain(|_| false);
                }
                Err(err) => report.repairs.push(format!(
                    "could not open {} to repair it: {err}",
                    dir.display()
                )),
            }
        } else {
            report.repairs.push(format!(
                "left {} alone: valid batches follow a bad one, and cutting would drop them",
                dir.display()
            ));
        }
    }
    report.problems.extend(found);
    // Never repaired: an operator decides what to do with segments recovery set aside.
    report.problems.extend(quarantined(storage.as_ref(), dir));
    Ok(())
}

/// Segment files that recovery moved into the partition's quarantine folder.
fn quarantined(storage: &dyn Storage, dir: &Path) -> Vec<Problem> {
    crate::storage::log_quarantine::quarantined_files(storage, dir)
        .into_iter()
        .map(|file| Problem {
            file,
            position: 0,
            what: "quarantined: recovery cut the log before this segment and moved it aside; \
                   inspect it, then remove it by hand"
                .into(),
            torn_tail: false,
        })
        .collect()
}

struct Scan {
    batches: Vec<(u64, BatchHeader)>,
    next_offset: i64,
    problems: Vec<Problem>,
}

fn scan_segment(
    storage: &dyn Storage,
    path: &Path,
    base: i64,
    gaps_below: i64,
    last: bool,
) -> std::io::Result<Scan> {
    let file = storage.open(path, false)?;
    let len = file.len()?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    let mut scan = Scan {
        batches: Vec::new(),
        next_offset: base,
        problems: Vec::new(),
    };
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let result = if rest.len() < HEADER_SIZE {
            Err(format!(
                "{} bytes at the end, less than a batch header",
                rest.len()
            ))
        } else {
            match BatchHeader::parse(rest) {
                Err(e) => Err(e.to_string()),
                Ok(h) if h.total_size() > rest.len() => Err(format!(
                    "batch of {} bytes, {} remain",
                    h.total_size(),
                    rest.len()
                )),
                Ok(h) => match validate_batch(&rest[..h.total_size()]) {
                    Err(e) => Err(e.to_string()),
                    Ok(h)
                        if h.base_offset < scan.next_offset
                            || (h.base_offset > scan.next_offset
                                && scan.next_offset >= gaps_below) =>
                    {
                        Err(format!(
                            "batch base offset {} where {} was expected",
                            h.base_offset, scan.next_offset
                        ))
                    }
                    Ok(h) => Ok(h),
                },
            }
        };
        match result {
            Ok(h) => {
                scan.batches.push((pos as u64, h));
                scan.next_offset = h.next_offset();
                pos += h.total_size();
            }
            Err(what) => {
                let torn_tail = last && !valid_batch_after(&bytes, pos + 1);
                scan.problems.push(Problem {
                    file: path.to_path_buf(),
                    position: pos as u64,
                    what,
                    torn_tail,
                });
                break;
            }
        }
    }
    Ok(scan)
}

/// Whether any whole valid batch starts at or after `from` (so the damage is not a tail).
fn valid_batch_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len().saturating_sub(HEADER_SIZE - 1)).any(|p| {
        bytes[p + 16] == 2
            && BatchHeader::parse(&bytes[p..])
                .ok()
                .filter(|h| p + h.total_size() <= bytes.len())
                .is_some_and(|h| validate_batch(&bytes[p..p + h.total_size()]).is_ok())
    })
}

fn read_file(storage: &dyn Storage, path: &Path) -> Option<Vec<u8>> {
    let file = storage.open(path, false).ok()?;
    let len = file.len().ok()?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(bytes)
}

fn check_offset_index(
    storage: &dyn Storage,
    dir: &Path,
    base: i64,
    batches: &[(u64, BatchHeader)],
    valid_end: u64,
) -> Vec<Problem> {
    let path = dir.join(file_name(base, "index"));
    let Some(bytes) = read_file(storage, &path) else {
        return Vec::new(); // derived data: rebuilt at start when missing
    };
    let mut problems = Vec::new();
    if bytes.len() % 8 != 0 {
        problems.push(index_problem(
            &path,
            0,
            format!("index of {} bytes is not whole 8-byte entries", bytes.len()),
        ));
    }
    for (i, entry) in bytes.chunks_exact(8).enumerate() {
        let relative = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as i64;
        let position = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]) as u64;
        if position >= valid_end {
            continue;
        }
        let agrees = batches
            .iter()
            .any(|(p, h)| *p == position && h.base_offset == base + relative);
        if !agrees {
            problems.push(index_problem(
                &path,
                (i * 8) as u64,
                format!("index entry says offset {} is at byte {position}; no batch starts there with it", base + relative),
            ));
        }
    }
    problems
}

fn check_time_index(
    storage: &dyn Storage,
    dir: &Path,
    base: i64,
    batches: &[(u64, BatchHeader)],
    valid_end: u64,
) -> Vec<Problem> {
    let path = dir.join(file_name(base, "timeindex"));
    let Some(bytes) = read_file(storage, &path) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if bytes.len() % 12 != 0 {
        problems.push(index_problem(
            &path,
            0,
            format!(
                "time index of {} bytes is not whole 12-byte entries",
                bytes.len()
            ),
        ));
    }
    for (i, entry) in bytes.chunks_exact(12).enumerate() {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&entry[..8]);
        let timestamp = i64::from_be_bytes(ts);
        let offset = base + u32::from_be_bytes([entry[8], entry[9], entry[10], entry[11]]) as i64;
        let past_damage =
            valid_end != u64::MAX && batches.last().is_none_or(|(_, h)| offset > h.last_offset());
        if past_damage {
            continue;
        }
        // The largest timestamp up to and including the batch at `offset` must be it.
        let mut running = i64::MIN;
        let mut found = false;
        for (_, h) in batches {
            running = running.max(h.max_timestamp);
            if h.base_offset == offset {
                found = running == timestamp;
                break;
            }
        }
        if !found {
            problems.push(index_problem(
                &path,
                (i * 12) as u64,
                format!("time index entry ({timestamp}, offset {offset}) does not match the log"),
            ));
        }
    }
    problems
}

fn index_problem(path: &Path, position: u64, what: String) -> Problem {
    Problem {
        file: path.to_path_buf(),
        position,
        what: format!("index: {what}"),
        torn_tail: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch_builder::build_batch;
    use crate::storage::sim::SimStorage;
    use crate::storage::RecordFile;

    fn log_with_batches(sim: &SimStorage, n: usize) -> PathBuf {
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        let dir = PathBuf::from("/data/t-0");
        let config = LogConfig::keep_all(1 << 20, 100, 1 << 20);
        let (mut log, _) = PartitionLog::open(storage, dir.clone(), config).unwrap();
        for i in 0..n {
            let value = vec![i as u8; 150];
            log.append(&mut build_batch(&[(None, Some(&value))], i as i64))
                .unwrap();
        }
        log.flush().unwrap();
        dir.join(file_name(0, "log"))
    }

    #[test]
    fn quarantined_segments_are_reported() {
        let sim = SimStorage::new();
        let path = log_with_batches(&sim, 3);
        let aside = Path::new("/data/t-0/quarantine").join(file_name(7, "log"));
        sim.set_file_contents(&aside, sim.file_contents(&path).unwrap());
        let report = check(Arc::new(sim), Path::new("/data"), true).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].file, aside);
        assert!(report.problems[0].what.starts_with("quarantined"));
    }

    #[test]
    fn a_clean_directory_has_no_problems() {
        let sim = SimStorage::new();
        log_with_batches(&sim, 20);
        let report = check(Arc::new(sim), Path::new("/data"), false).unwrap();
        assert_eq!((report.partitions, report.batches), (1, 20));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn a_torn_tail_is_reported_and_repaired() {
        let sim = SimStorage::new();
        let path = log_with_batches(&sim, 10);
        let mut bytes = sim.file_contents(&path).unwrap();
        let whole = bytes.len();
        bytes.truncate(whole - 30);
        sim.set_file_contents(&path, bytes);
        let report = check(Arc::new(sim.clone()), Path::new("/data"), false).unwrap();
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].torn_tail);
        assert_eq!(report.problems[0].file, path);
        let repaired = check(Arc::new(sim.clone()), Path::new("/data"), true).unwrap();
        assert!(
            repaired.repairs.iter().any(|r| r.contains("cut")),
            "{:?}",
            repaired.repairs
        );
        let after = check(Arc::new(sim), Path::new("/data"), false).unwrap();
        assert!(after.problems.is_empty(), "{:?}", after.problems);
        assert_eq!(after.batches, 9);
    }

    #[test]
    fn corruption_before_valid_batches_is_not_cut() {
        let sim = SimStorage::new();
        let path = log_with_batches(&sim, 10);
        let mut bytes = sim.file_contents(&path).unwrap();
        bytes[300] ^= 0xff; // inside the second batch
        sim.set_file_contents(&path, bytes.clone());
        let report = check(Arc::new(sim.clone()), Path::new("/data"), true).unwrap();
        assert_eq!(report.problems.len(), 1);
        assert!(!report.problems[0].torn_tail);
        assert!(report.repairs[0].contains("left"));
        assert_eq!(sim.file_contents(&path).unwrap(), bytes, "nothing was cut");
    }

    #[test]
    fn a_torn_group_file_is_reported_and_repaired() {
        use crate::coordinator::group_store::{CommittedOffset, GroupRecord};
        let sim = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        let path = PathBuf::from("/data/__groups/6767.log");
        storage.create_dir_all(Path::new("/data/__groups")).unwrap();
        let (mut file, _, _) =
            RecordFile::<GroupRecord>::open(storage.clone(), path.clone()).unwrap();
        file.append(&GroupRecord::Group { id: "gg".into() })
            .unwrap();
        let offset = CommittedOffset {
            offset: 5,
            leader_epoch: 0,
            metadata: None,
        };
        file.append(&GroupRecord::Committed {
            entries: vec![("t".into(), 0, offset)],
        })
        .unwrap();
        let mut bytes = sim.file_contents(&path).unwrap();
        let whole = bytes.len();
        bytes.truncate(whole - 3);
        sim.set_file_contents(&path, bytes);
        let report = check(storage.clone(), Path::new("/data"), false).unwrap();
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].file, path);
        let repaired = check(storage.clone(), Path::new("/data"), true).unwrap();
        assert!(
            repaired.repairs[0].contains("1 records kept"),
            "{:?}",
            repaired.repairs
        );
        assert!(check(storage, Path::new("/data"), false)
            .unwrap()
            .problems
            .is_empty());
    }

    #[test]
    fn a_wrong_index_entry_is_reported_with_its_position() {
        let sim = SimStorage::new();
        log_with_batches(&sim, 10);
        let index = PathBuf::from("/data/t-0").join(file_name(0, "index"));
        let mut bytes = sim.file_contents(&index).unwrap();
        assert!(bytes.len() >= 16);
        bytes[15] ^= 1;
        sim.set_file_contents(&index, bytes);
        let report = check(Arc::new(sim), Path::new("/data"), false).unwrap();
        assert_eq!(report.problems.len(), 1);
        assert_eq!(
            (report.problems[0].file.clone(), report.problems[0].position),
            (index, 8)
        );
    }
}
