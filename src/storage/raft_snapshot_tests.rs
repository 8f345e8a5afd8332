//! Tests of `raft_snapshot`: a snapshot whose save failed never stands in for the older
//! whole one (found by the quorum simulation, seed 106 of 20 s).

use std::path::PathBuf;
use std::sync::Arc;

use openraft::{CommittedLeaderId, LogId, SnapshotMeta, StoredMembership};

use super::raft_snapshot::{load_snapshot, save_snapshot, StoredSnapshot};
use super::sim::SimStorage;
use super::Storage;
use crate::cluster::MetadataTypes;

fn dir() -> PathBuf {
    PathBuf::from("/data/__cluster_metadata")
}

fn snapshot(index: u64) -> StoredSnapshot<MetadataTypes> {
    StoredSnapshot {
        meta: SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("1-{index}"),
        },
        data: vec![index as u8; 16],
    }
}

#[test]
fn a_snapshot_whose_fsync_failed_leaves_the_older_one_in_force() {
    let disk = SimStorage::new();
    disk.track_directory_entries();
    let storage: Arc<dyn Storage> = Arc::new(disk.clone());
    save_snapshot(storage.clone(), &dir(), &snapshot(10)).unwrap();

    disk.fail_fsync(None);
    assert!(save_snapshot(storage.clone(), &dir(), &snapshot(20)).is_err());
    disk.clear_faults();
    // Another writer fsyncs the directory (as the Raft log does), then the power goes.
    storage.sync_dir(&dir()).unwrap();
    disk.power_cut();

    let loaded = load_snapshot::<MetadataTypes>(storage, &dir())
        .unwrap()
        .expect("the older snapshot is still there");
    assert_eq!(loaded.meta.last_log_id.map(|l| l.index), Some(10));
    assert_eq!(loaded.data, vec![10u8; 16]);
}
