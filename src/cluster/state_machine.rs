//! The metadata quorum's state machine: applies committed `MetadataRecord` entries to a
//! `MetadataImage`, and snapshots it (rmp-serde) through `storage::raft_snapshot`.
//!
//! Applying is not persisted by itself: a restart loads the newest snapshot and openraft
//! applies the committed entries after it again from the log (the committed id is saved
//! by the log store), so the image is rebuilt exactly.

use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use tokio::sync::watch;

use super::{MetadataTypes, NodeId};
use crate::actors::metadata::MetadataImage;
use crate::storage::raft_snapshot::{load_snapshot, save_snapshot, StoredSnapshot};
use crate::storage::Storage;

/// The image and the last entry in it, as published after each apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedImage {
    pub last_applied: Option<LogId<NodeId>>,
    pub image: MetadataImage,
}

pub struct MetadataStateMachine {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    applied: AppliedImage,
    membership: StoredMembership<NodeId, BasicNode>,
    published: watch::Sender<Arc<AppliedImage>>,
}

fn snapshot_error(verb: ErrorVerb, err: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&err)).into()
}

impl MetadataStateMachine {
    /// Starts from the newest snapshot under `dir`, if any.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
    ) -> Result<(Self, watch::Receiver<Arc<AppliedImage>>), crate::storage::StorageError> {
        let mut applied = AppliedImage::default();
        let mut membership = StoredMembership::default();
        if let Some(snapshot) = load_snapshot::<MetadataTypes>(storage.clone(), &dir)? {
            applied.image = rmp_serde::from_slice(&snapshot.data).map_err(|e| {
                crate::storage::StorageError::Encode(format!("metadata snapshot: {e}"))
            })?;
            applied.last_applied = snapshot.meta.last_log_id;
            membership = snapshot.meta.last_membership;
        }
        let (published, receiver) = watch::channel(Arc::new(applied.clone()));
        let machine = Self {
            storage,
            dir,
            applied,
            membership,
            published,
        };
        Ok((machine, receiver))
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.applied.clone()));
    }
}

/// Builds a snapshot from a copy of the image taken when it was asked for.
pub struct MetadataSnapshotBuilder {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    applied: AppliedImage,
    membership: StoredMembership<NodeId, BasicNode>,
}

impl RaftSnapshotBuilder<MetadataTypes> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetadataTypes>, StorageError<NodeId>> {
        let data = rmp_serde::to_vec(&self.applied.image)
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        let last = self.applied.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map_or(0, |l| l.leader_id.term),
                last.map_or(0, |l| l.index)
            ),
        };
        let stored = StoredSnapshot::<MetadataTypes> {
            meta: meta.clone(),
            data,
        };
        save_snapshot(self.storage.clone(), &self.dir, &stored)
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(stored.data),
        })
    }
}

impl RaftStateMachine<MetadataTypes> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.applied.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<MetadataTypes>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.applied.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(record) => self.applied.image.apply(&record),
                EntryPayload::Membership(members) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), members)
                }
            }
            responses.push(());
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetadataSnapshotBuilder {
            storage: self.storage.clone(),
            dir: self.dir.clone(),
            applied: self.applied.clone(),
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<u8>>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Vec<u8>>,
    ) -> Result<(), StorageError<NodeId>> {
        // The bytes came from the leader: decoded before anything is replaced.
        let image: MetadataImage =
            rmp_serde::from_slice(&snapshot).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        let stored = StoredSnapshot::<MetadataTypes> {
            meta: meta.clone(),
            data: *snapshot,
        };
        save_snapshot(self.storage.clone(), &self.dir, &stored)
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        self.applied = AppliedImage {
            last_applied: meta.last_log_id,
            image,
        };
        self.membership = meta.last_membership.clone();
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetadataTypes>>, StorageError<NodeId>> {
        let stored = load_snapshot::<MetadataTypes>(self.storage.clone(), &self.dir)
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(s.data),
        }))
    }
}
