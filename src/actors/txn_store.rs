//! The durable half of a transaction coordinator: one record file per transactional id
//! under `<data_dir>/__transactions/`, one owner (its coordinator actor). Every state change
//! appends the whole metadata (a few hundred bytes) and fsyncs before it is acted on; the
//! last record wins on replay. The file is rewritten when it holds many records, and
//! removed when the id expires (transactional.id.expiration.ms).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::txn_messages::TxnMetadata;
use crate::coordinator::group_store::file_name;
use crate::storage::record_file::create_store_dir;
use crate::storage::{RecordFile, Storage, StorageError};

const REWRITE_AFTER: usize = 256;

pub struct TxnStore {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    file: RecordFile<TxnMetadata>,
    records: usize,
}

impl TxnStore {
    /// Opens (creating) the file of `transactional_id` and answers its last state.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        transactional_id: &str,
    ) -> Result<(TxnStore, Option<TxnMetadata>), StorageError> {
        create_store_dir(storage.as_ref(), dir)?;
        let path = dir.join(file_name(transactional_id));
        let (file, records, _) = RecordFile::open(storage.clone(), path.clone())?;
        let count = records.len();
        let last = records.into_iter().last();
        Ok((
            TxnStore {
                storage,
                path,
                file,
                records: count,
            },
            last,
        ))
    }

    /// The transactional id stored in a file (for loading coordinators at start); an
    /// error when the file is corrupt before its end.
    pub fn transactional_id_of(
        storage: Arc<dyn Storage>,
        path: &Path,
    ) -> Result<Option<String>, StorageError> {
        let (_, records, _) = RecordFile::<TxnMetadata>::open(storage, path.to_path_buf())?;
        Ok(records.last().map(|m| m.transactional_id.clone()))
    }

    /// Removes the file of an expired transactional id (Kafka writes a tombstone to its
    /// compacted topic instead; here the id's whole store is the file). The directory
    /// fsync that makes the removal durable is the registry's, one for a batch of
    /// removals (see `txn_registry`); until then a power cut only brings back an
    /// idle id, which expires again.
    pub fn remove(self) -> Result<(), StorageError> {
        drop(self.file);
        self.storage
            .remove_file(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Makes `meta` durable (fsync) before the caller acts on it.
    pub fn write(&mut self, meta: &TxnMetadata) -> Result<(), StorageError> {
        if self.records >= REWRITE_AFTER {
            self.file.rewrite(std::slice::from_ref(meta))?;
            self.records = 1;
        } else {
            self.file.append(meta)?;
            self.records += 1;
        }
        Ok(())
    }
}
