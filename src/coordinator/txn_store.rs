//! The durable half of a transaction coordinator, one owner (its coordinator actor).
//! Single node: one record file per transactional id under `<data_dir>/__transactions/`
//! (`TxnFile`); every state change appends the whole metadata (a few hundred bytes) and
//! fsyncs before it is acted on; the last record wins on replay. The file is rewritten
//! when it holds many records, and removed when the id expires
//! (transactional.id.expiration.ms). Cluster mode: a keyed record of the replicated
//! internal topic `__transaction_state` (`TxnLog`), a tombstone on expiry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::group_store::file_name;
use super::transaction_state_topic::{state_record, tombstone};
use super::txn_log::{TxnLog, TxnLogError};
use crate::actors::txn_messages::TxnMetadata;
use crate::storage::record_file::create_store_dir;
use crate::storage::{RecordFile, Storage, StorageError};

const REWRITE_AFTER: usize = 256;

pub struct TxnFile {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    file: RecordFile<TxnMetadata>,
    records: usize,
}

impl TxnFile {
    /// Opens (creating) the file of `transactional_id` and answers its last state.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        transactional_id: &str,
    ) -> Result<(TxnFile, Option<TxnMetadata>), StorageError> {
        create_store_dir(storage.as_ref(), dir)?;
        let path = dir.join(file_name(transactional_id));
        let (file, records, _) = RecordFile::open(storage.clone(), path.clone())?;
        let count = records.len();
        let last = records.into_iter().last();
        Ok((
            TxnFile {
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

/// Why a transaction state change could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum TxnStoreError {
    #[error("the transactional id's file: {0}")]
    File(#[from] StorageError),
    #[error(transparent)]
    Log(#[from] TxnLogError),
}

impl TxnStoreError {
    /// The error code the transaction request is answered with.
    pub fn code(&self) -> i16 {
        match self {
            TxnStoreError::File(_) => ResponseError::CoordinatorNotAvailable.code(),
            TxnStoreError::Log(e) => e.code(),
        }
    }
}

/// Where a transactional id's state goes: its own file (single node) or
/// `__transaction_state`.
pub enum TxnStore {
    File(TxnFile),
    Log(TxnLog),
}

impl TxnStore {
    /// Makes `meta` durable before the caller acts on it.
    pub async fn write(&mut self, meta: &TxnMetadata) -> Result<(), TxnStoreError> {
        match self {
            TxnStore::File(file) => Ok(file.write(meta)?),
            TxnStore::Log(log) => Ok(log.append(state_record(meta)?).await?),
        }
    }

    /// Removes an expired id: its file, or a tombstone on `__transaction_state`.
    pub async fn remove(self, transactional_id: &str) -> Result<(), TxnStoreError> {
        match self {
            TxnStore::File(file) => Ok(file.remove()?),
            TxnStore::Log(log) => Ok(log.append(tombstone(transactional_id)?).await?),
        }
    }
}
