//! Tests of the state machine's snapshots: built and installed durably, a bad one refused.

use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta,
    StoredMembership,
};

use super::state_machine::MetadataStateMachine;
use super::MetadataTypes;
use crate::actors::metadata::{MetadataImage, MetadataRecord};
use crate::storage::sim::SimStorage;

fn dir() -> PathBuf {
    PathBuf::from("/data/__cluster_metadata")
}

fn entry(index: u64) -> Entry<MetadataTypes> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(MetadataRecord::TopicCreated {
            name: format!("t{index}"),
            id: index as u128,
            partitions: 1,
            configs: Default::default(),
        }),
    }
}

fn snapshot_files(disk: &SimStorage) -> usize {
    disk.paths()
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".snap"))
        .count()
}

#[tokio::test]
async fn a_built_snapshot_is_what_a_restart_starts_from() {
    let disk = SimStorage::new();
    disk.track_directory_entries();
    let (mut machine, applied) = MetadataStateMachine::open(Arc::new(disk.clone()), dir()).unwrap();
    // Two snapshots, after entry 3 and after entry 4.
    for entries in [1..=3, 4..=4] {
        machine.apply(entries.map(entry)).await.unwrap();
        let builder = &mut machine.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap();
    }
    assert_eq!(applied.borrow().image.topics.len(), 4);
    assert_eq!(snapshot_files(&disk), 1, "the older snapshot is removed");
    disk.power_cut();
    let (_, applied) = MetadataStateMachine::open(Arc::new(disk.clone()), dir()).unwrap();
    let restarted = applied.borrow().clone();
    assert_eq!(restarted.image.topics.len(), 4);
    assert_eq!(restarted.last_applied.map(|l| l.index), Some(4));
}

#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_refused_and_changes_nothing() {
    let disk = SimStorage::new();
    let (mut machine, applied) = MetadataStateMachine::open(Arc::new(disk.clone()), dir()).unwrap();
    machine.apply((1..=2).map(entry)).await.unwrap();
    let before = applied.borrow().clone();
    let meta = SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 10)),
        last_membership: StoredMembership::default(),
        snapshot_id: "bad".into(),
    };
    let garbage = Box::new(vec![0xc1; 64]); // 0xc1 is never valid MessagePack
    assert!(machine.install_snapshot(&meta, garbage).await.is_err());
    assert_eq!(*applied.borrow(), before);
    assert_eq!(snapshot_files(&disk), 0, "nothing was written");
    // A good one installs and replaces the image.
    let image = MetadataImage::replay(&[MetadataRecord::ProducerIdBlock { end: 7000 }]);
    let good = Box::new(rmp_serde::to_vec(&image).unwrap());
    machine.install_snapshot(&meta, good).await.unwrap();
    assert_eq!(applied.borrow().image, image);
    assert_eq!(snapshot_files(&disk), 1);
}
