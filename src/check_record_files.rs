//! `broker check` for the record files: `__meta/topics.log`, the metadata quorum's
//! `__cluster_metadata/raft.log`, snapshots and SCRAM bootstrap file, every group's file under
//! `__groups` and every transactional id's under `__transactions`. Each is read as the
//! broker reads it at start (`record_file::scan`): a torn tail is reported as one, which
//! the broker would cut at start; corruption before the end is reported as such, which the
//! broker refuses to start with. `--repair` cuts either at its first damage (the records
//! after it are dropped, and the report says how many bytes).

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::actors::metadata::MetadataRecord;
use crate::actors::txn_messages::TxnMetadata;
use crate::check::{Problem, Report};
use crate::cluster::MetadataTypes;
use crate::coordinator::group_store::GroupRecord;
use crate::storage::raft_log::RaftLogRecord;
use crate::storage::raft_snapshot::StoredSnapshot;
use crate::storage::record_file::scan;
use crate::storage::{RecordFile, Storage};

/// Checks `dir` when it is a record store's directory (`name` is its file name); false
/// when it is not one (a partition directory).
pub fn check_store_dir(
    storage: Arc<dyn Storage>,
    dir: &Path,
    name: &str,
    repair: bool,
    report: &mut Report,
) -> std::io::Result<bool> {
    match name {
        "__meta" => {
            let path = dir.join("topics.log");
            check_file::<MetadataRecord>(storage, &path, repair, report);
        }
        "__groups" => check_files::<GroupRecord>(storage, dir, repair, report)?,
        "__transactions" => check_files::<TxnMetadata>(storage, dir, repair, report)?,
        // The metadata quorum's Raft log and snapshots (`crate::cluster`).
        "__cluster_metadata" => {
            type Log = RaftLogRecord<MetadataTypes>;
            check_file::<Log>(storage.clone(), &dir.join("raft.log"), repair, report);
            for file in storage.list_dir(dir)? {
                if file.extension().is_some_and(|e| e == "snap") {
                    type Snapshot = StoredSnapshot<MetadataTypes>;
                    check_file::<Snapshot>(storage.clone(), &file, repair, report);
                }
            }
            check_bootstrap(storage.as_ref(), dir, report);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The SCRAM bootstrap file, read as the controller reads it at start; never repaired (run
/// `broker user add` again after removing a damaged one).
fn check_bootstrap(storage: &dyn Storage, quorum_dir: &Path, report: &mut Report) {
    let data_dir = crate::storage::io::parent_dir(quorum_dir);
    let path = crate::cluster::bootstrap::bootstrap_path(data_dir);
    if !storage.exists(&path) {
        return;
    }
    report.records_files += 1;
    if let Err(err) = crate::cluster::bootstrap::read(storage, data_dir) {
        report.problems.push(Problem {
            file: path,
            position: 0,
            what: format!("the SCRAM bootstrap file stops the controller's start: {err}"),
            torn_tail: false,
        });
    }
}

fn check_files<T: Serialize + DeserializeOwned>(
    storage: Arc<dyn Storage>,
    dir: &Path,
    repair: bool,
    report: &mut Report,
) -> std::io::Result<()> {
    for file in storage.list_dir(dir)? {
        if file.extension().is_some_and(|e| e == "log") {
            check_file::<T>(storage.clone(), &file, repair, report);
        }
    }
    Ok(())
}

/// One record file: length, CRC-32C and decoding of every record, read without changing
/// anything; with `repair`, cut at the first damage.
fn check_file<T: Serialize + DeserializeOwned>(
    storage: Arc<dyn Storage>,
    path: &Path,
    repair: bool,
    report: &mut Report,
) {
    let Ok(file) = storage.open(path, false) else {
        return; // absent: nothing was ever written
    };
    report.records_files += 1;
    let damage = match scan::<T>(file.as_ref(), path) {
        Ok(scan) => scan.damage,
        Err(err) => {
            report.problems.push(Problem {
                file: path.to_path_buf(),
                position: 0,
                what: format!("could not read: {err}"),
                torn_tail: false,
            });
            return;
        }
    };
    let Some(damage) = damage else {
        return;
    };
    let what = if damage.torn_tail {
        format!("torn tail (cut at start): {}", damage.reason)
    } else {
        format!(
            "corrupt before the end (the broker refuses to start; --repair cuts here): {}",
            damage.reason
        )
    };
    report.problems.push(Problem {
        file: path.to_path_buf(),
        position: damage.position,
        what,
        torn_tail: damage.torn_tail,
    });
    if !repair {
        return;
    }
    match RecordFile::<T>::repair(storage, path.to_path_buf()) {
        Ok((_, records, cut)) => {
            report.repairs.push(format!(
                "cut {cut} bytes off {} at byte {}; {} records kept",
                path.display(),
                damage.position,
                records.len()
            ));
            report.problems.pop();
        }
        Err(err) => report
            .repairs
            .push(format!("could not repair {}: {err}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::metadata::MetadataRecord;
    use crate::check::check;
    use crate::storage::sim::SimStorage;
    use std::path::PathBuf;

    #[test]
    fn a_metadata_file_corrupt_in_its_middle_is_reported_and_only_repair_cuts_it() {
        let sim = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        storage.create_dir_all(Path::new("/data/__meta")).unwrap();
        let path = PathBuf::from("/data/__meta/topics.log");
        let (mut file, _, _) =
            RecordFile::<MetadataRecord>::open(storage.clone(), path.clone()).unwrap();
        for end in [10, 20, 30] {
            file.append(&MetadataRecord::ProducerIdBlock { end })
                .unwrap();
        }
        let mut bytes = sim.file_contents(&path).unwrap();
        let whole = bytes.len();
        let frame = whole / 3;
        bytes[frame + 10] ^= 0xff; // inside the second record
        sim.set_file_contents(&path, bytes.clone());

        let report = check(storage.clone(), Path::new("/data"), false).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let problem = &report.problems[0];
        assert_eq!((&problem.file, problem.position), (&path, frame as u64));
        assert!(!problem.torn_tail && problem.what.contains("corrupt before the end"));
        assert_eq!(
            sim.file_contents(&path).unwrap(),
            bytes,
            "check changes nothing"
        );
        assert!(RecordFile::<MetadataRecord>::open(storage.clone(), path.clone()).is_err());

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
    fn the_quorum_raft_log_and_snapshots_are_checked_too() {
        let sim = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        storage
            .create_dir_all(Path::new("/data/__cluster_metadata"))
            .unwrap();
        for name in [
            "raft.log",
            "snapshot-00000000000000000007.snap",
            "bootstrap.checkpoint",
        ] {
            let path = PathBuf::from("/data/__cluster_metadata").join(name);
            // A frame claiming nearly 4 GiB, then more bytes than one frame's header.
            let mut bytes = 0xFFFF_FFF0u32.to_be_bytes().to_vec();
            bytes.extend([0xab; 60]);
            sim.set_file_contents(&path, bytes);
        }
        let report = check(storage, Path::new("/data"), false).unwrap();
        let files: Vec<_> = report.problems.iter().map(|p| p.file.clone()).collect();
        assert_eq!(
            files,
            vec![
                PathBuf::from("/data/__cluster_metadata/raft.log"),
                PathBuf::from("/data/__cluster_metadata/snapshot-00000000000000000007.snap"),
                PathBuf::from("/data/__cluster_metadata/bootstrap.checkpoint"),
            ],
            "{:?}",
            report.problems
        );
        assert_eq!(report.records_files, 3);
    }

    #[test]
    fn transaction_files_are_checked_too() {
        let sim = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(sim.clone());
        storage
            .create_dir_all(Path::new("/data/__transactions"))
            .unwrap();
        let path = PathBuf::from("/data/__transactions/7478.log");
        sim.set_file_contents(&path, vec![0xff; 40]);
        let report = check(storage, Path::new("/data"), false).unwrap();
        assert_eq!(report.records_files, 1);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].file, path);
        assert_eq!(report.partitions, 0, "not taken for a partition");
    }
}
