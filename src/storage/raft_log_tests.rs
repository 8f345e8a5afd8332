//! Tests of `raft_log`: what openraft is told is durable survives a power cut, truncation
//! and purge replay, the file is compacted, and a corrupt length is refused unread.

use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

use super::raft_log::RaftLogStore;
use super::sim::SimStorage;
use super::StorageError;
use crate::actors::metadata::MetadataRecord;
use crate::cluster::MetadataTypes;

type Store = RaftLogStore<MetadataTypes>;

fn dir() -> PathBuf {
    PathBuf::from("/data/__cluster_metadata")
}

fn open(disk: &SimStorage) -> Result<Store, StorageError> {
    Store::open(Arc::new(disk.clone()), &dir())
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn entry(index: u64) -> Entry<MetadataTypes> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(MetadataRecord::ProducerIdBlock {
            end: index as i64 * 1000,
        }),
    }
}

async fn indexes(store: &mut Store) -> Vec<u64> {
    store
        .try_get_log_entries(0..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

fn disk() -> SimStorage {
    let disk = SimStorage::new();
    disk.track_directory_entries();
    disk
}

#[tokio::test]
async fn votes_entries_truncation_and_purge_survive_a_power_cut() {
    let disk = disk();
    let mut store = open(&disk).unwrap();
    store.blocking_append((1..=10).map(entry)).await.unwrap();
    let vote = Vote::new_committed(1, 1);
    store.save_vote(&vote).await.unwrap();
    store.save_committed(Some(log_id(5))).await.unwrap();
    store.truncate(log_id(8)).await.unwrap();
    store.purge(log_id(3)).await.unwrap();
    // A reader made before later appends sees them (replication holds one for long).
    let mut reader = store.get_log_reader().await;
    store.blocking_append([entry(8)]).await.unwrap();
    assert_eq!(
        reader.try_get_log_entries(8..9).await.unwrap().len(),
        1,
        "the reader sees an entry appended after it was made"
    );
    drop(store);
    disk.power_cut();
    let mut store = open(&disk).unwrap();
    assert_eq!(indexes(&mut store).await, vec![4, 5, 6, 7, 8]);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(5)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3)));
    assert_eq!(state.last_log_id, Some(log_id(8)));
}

#[tokio::test]
async fn a_purged_empty_log_reports_the_purged_id_as_its_last() {
    let disk = disk();
    let mut store = open(&disk).unwrap();
    store.blocking_append((1..=3).map(entry)).await.unwrap();
    store.purge(log_id(3)).await.unwrap();
    drop(store);
    let mut store = open(&disk).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3)));
    assert!(indexes(&mut store).await.is_empty());
}

#[tokio::test]
async fn a_log_of_mostly_history_is_rewritten_as_the_live_entries() {
    let disk = disk();
    let path = dir().join("raft.log");
    let mut store = open(&disk).unwrap();
    for index in 1..=300 {
        store.blocking_append([entry(index)]).await.unwrap();
        if index > 5 {
            // Purge keeps the file honest: it is compacted as it goes.
            store.purge(log_id(index - 5)).await.unwrap();
        }
    }
    let live = disk.file_contents(&path).unwrap().len();
    // 300 appends and 295 purges would be far larger than five entries and a purge id.
    assert!(live < 20_000, "the file is compacted: {live} bytes");
    drop(store);
    disk.power_cut();
    let mut store = open(&disk).unwrap();
    assert_eq!(indexes(&mut store).await, vec![296, 297, 298, 299, 300]);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(295)));
}

#[tokio::test]
async fn a_failed_fsync_is_reported_and_nothing_is_acknowledged() {
    let disk = disk();
    let mut store = open(&disk).unwrap();
    store.blocking_append([entry(1)]).await.unwrap();
    disk.fail_fsync(Some("raft.log".into()));
    assert!(store.blocking_append([entry(2)]).await.is_err());
    assert!(store.save_vote(&Vote::new(2, 1)).await.is_err());
    disk.clear_faults();
    drop(store);
    disk.power_cut();
    let mut store = open(&disk).unwrap();
    assert_eq!(indexes(&mut store).await, vec![1]);
    assert_eq!(store.read_vote().await.unwrap(), None);
}

#[test]
fn a_corrupt_length_is_refused_without_reading_it() {
    let disk = disk();
    let path = dir().join("raft.log");
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut store = open(&disk).unwrap();
            for index in 1..=3 {
                store.blocking_append([entry(index)]).await.unwrap();
            }
        });
    }
    let mut bytes = disk.file_contents(&path).unwrap();
    // The first frame's length says nearly 4 GiB; more frames follow it.
    bytes[..4].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    disk.set_file_contents(&path, bytes);
    match open(&disk) {
        Err(StorageError::CorruptRecordFile { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected the corruption to be refused, got {other:?}"),
    }
}
