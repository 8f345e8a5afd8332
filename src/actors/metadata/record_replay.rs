//! The metadata record file (`__meta/topics.log`): replayed into a `MetadataImage` on
//! start, compacted to the live state when it is mostly history, and appended to by
//! `commit`, the one way a change reaches both the file and the image.

use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use super::image::MetadataImage;
use super::{MetadataRecord, MetadataState};
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

impl MetadataState {
    /// Writes (and fsyncs) a record, then applies it to the image: nothing in the image
    /// is ahead of the file.
    pub(super) fn commit(&mut self, record: MetadataRecord) -> Result<(), MetadataError> {
        self.store
            .append(&record)
            .map_err(|e| MetadataError::Storage(e.to_string()))?;
        self.image.apply(&record);
        Ok(())
    }
}
