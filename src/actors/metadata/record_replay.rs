//! The metadata record file (`__meta/topics.log`): replayed into a `MetadataImage` on
//! start, compacted to the live state when it is mostly history, and appended to by
//! `commit`, the one way a change reaches both the file and the image.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::image::MetadataImage;
use super::{MetadataRecord, MetadataState};
use crate::cluster::node::ClusterHandle;
use crate::error::MetadataError;
use crate::storage::record_file::create_store_dir;
use crate::storage::{RecordFile, Storage, StorageError};

/// Opens (creating) the record file under `data_dir` and replays it; rewrites it as the
/// live state when it holds much more history than state.
pub(super) fn open_and_replay(
    storage: Arc<dyn Storage>,
    data_dir: &Path,
) -> Result<(RecordFile<MetadataRecord>, MetadataImage), StorageError> {
    let meta_dir = data_dir.join("__meta");
    create_store_dir(storage.as_ref(), &meta_dir)?;
    let (mut store, records, truncated) =
        RecordFile::<MetadataRecord>::open(storage, meta_dir.join("topics.log"))?;
    if truncated > 0 {
        warn!(
            bytes = truncated,
            "Metadata record file had a torn tail, which was cut."
        );
    }
    let image = MetadataImage::replay(&records);
    // Mostly history (topics created and deleted again): rewrite it as the live state.
    let live = image.records();
    if records.len() > 2 * live.len() + 100 {
        match store.rewrite(&live) {
            Ok(()) => info!(
                before = records.len(),
                after = live.len(),
                "Compacted the metadata record file."
            ),
            // Failed after its rename: the store refuses writes, so the start fails.
            Err(err) if store.is_failed() => return Err(err),
            Err(err) => {
                warn!(%err, "Could not compact the metadata record file; it stays as it is.")
            }
        }
    }
    Ok((store, image))
}

/// Where the metadata actor commits its records.
pub(super) enum Commits {
    /// Single-node mode: the local record file.
    File(RecordFile<MetadataRecord>),
    /// Cluster mode: the metadata quorum, whose committed image the actor follows.
    Quorum(ClusterHandle),
}

/// How long a committed record may take to be applied on this node.
const APPLY_WAIT: Duration = Duration::from_secs(10);

impl MetadataState {
    /// Single-node: writes (and fsyncs) a record, then applies it to the image, so nothing
    /// in the image is ahead of the file. Cluster: writes it through the quorum's leader,
    /// then takes the committed image once this node has applied it.
    pub(super) async fn commit(&mut self, record: MetadataRecord) -> Result<(), MetadataError> {
        let cluster = match &mut self.commits {
            Commits::File(store) => {
                store
                    .append(&record)
                    .map_err(|e| MetadataError::Storage(e.to_string()))?;
                self.image.apply(&record);
                return Ok(());
            }
            Commits::Quorum(cluster) => cluster.clone(),
        };
        let index = cluster
            .client
            .write(record)
            .await
            .map_err(|e| MetadataError::Quorum(e.to_string()))?;
        let mut applied = cluster.applied;
        let wait = applied.wait_for(|a| a.last_applied.is_some_and(|l| l.index >= index));
        let image = match tokio::time::timeout(APPLY_WAIT, wait).await {
            Ok(Ok(applied)) => Some((*applied).clone()),
            _ => None,
        };
        match image {
            Some(applied) => {
                self.applied_index = applied.last_applied.map_or(0, |l| l.index);
                let followed = std::mem::replace(&mut self.image, applied.image.clone());
                // Their Applied messages are now older than `applied_index` and skipped:
                // what other brokers committed meanwhile is followed after this message.
                self.unfollowed.get_or_insert(followed);
                Ok(())
            }
            None => Err(MetadataError::Quorum(format!(
                "record {index} was committed but not applied here within {APPLY_WAIT:?}"
            ))),
        }
    }

    /// The brokers a manual assignment may name: the unfenced ones in a cluster, this
    /// broker alone otherwise.
    pub(super) fn assignable_brokers(&self) -> Vec<i32> {
        match self.placeable_brokers() {
            Some(brokers) => brokers.into_iter().map(|(id, _)| id).collect(),
            None => vec![self.config.node_id],
        }
    }

    /// Cluster mode: the unfenced brokers and their racks (where replicas may go).
    pub(super) fn placeable_brokers(&self) -> Option<Vec<(i32, Option<String>)>> {
        match &self.commits {
            Commits::File(_) => None,
            Commits::Quorum(_) => Some(
                self.image
                    .live_brokers()
                    .map(|(id, b)| (id, b.rack.clone()))
                    .collect(),
            ),
        }
    }
}
