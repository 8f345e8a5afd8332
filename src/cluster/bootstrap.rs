//! SCRAM bootstrap: the first credentials of a cluster (the role of Kafka's
//! `kafka-storage format --add-scram` and its `bootstrap.checkpoint`).
//!
//! In a quorum the credentials are Raft records, so the first administrator and the
//! brokers' own inter-broker SCRAM login would have none until someone added one online,
//! which needs a working, authenticated cluster first. `broker user add` on a stopped
//! voter therefore writes the credential into this voter's bootstrap file; the controller
//! of the quorum's first leader commits the file's records, then
//! `MetadataRecord::ScramBootstrapped`, before it answers any broker heartbeat, while the
//! metadata is new (no marker, no broker registered: Kafka applies bootstrap records only
//! to a new metadata log). The marker sets `MetadataImage::scram_bootstrapped`: no later
//! leader (a leader change, a restart) applies its own file, and a voter that finds its
//! file not applied says so once. A first leader without a file writes nothing, so a
//! cluster formed without files runs exactly as before, and the other voters' files are
//! not applied either: give every voter the same users.
//!
//! Byte format: `<data dir>/__cluster_metadata/bootstrap.checkpoint` holds record-file
//! frames (`storage::record_file`: per record `[length u32 BE][crc32c u32 BE][rmp-serde
//! payload]`): one `MetadataRecord::ScramCredentialUpserted` per user and mechanism, in
//! (user, mechanism) order (the salt, stored key, server key and iteration count, never the
//! password), then one `MetadataRecord::ScramBootstrapped` as the end record: exactly what
//! the leader commits. It is written whole (aside, fsync, rename, fsync the directory, each
//! checked), so a crash leaves the old file or the new one. It is read strictly: a file
//! above `MAX_FILE_BYTES`, a damaged frame (torn or not), a missing end record (a file cut
//! at a frame's boundary), a record of another kind, or a credential out of bounds is an
//! error naming the file, never a panic, never a partial bootstrap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use super::rpc::{local_write, Rejected};
use super::{quorum_dir, AppliedImage, MetadataRaft};
use crate::actors::metadata::OfflineUserError;
use crate::actors::metadata::{MetadataImage, MetadataRecord};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::storage::io::{parent_dir, remove_leftover};
use crate::storage::record_file::{create_store_dir, scan};
use crate::storage::{RecordFile, Storage, StorageError};

/// The bootstrap file's name under the quorum directory (Kafka's).
pub const FILE_NAME: &str = "bootstrap.checkpoint";
/// The largest bootstrap file read: thousands of users' credentials.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The longest user name and salt a bootstrap record may hold.
pub const MAX_NAME_BYTES: usize = 1024;
pub const MAX_SALT_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {size} bytes, above the bootstrap file's limit of {MAX_FILE_BYTES}")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} is damaged at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("{path}: record {index} is not a valid SCRAM credential: {reason}")]
    BadRecord {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<OfflineUserError> for BootstrapError {
    fn from(err: OfflineUserError) -> Self {
        match err {
            OfflineUserError::Invalid(reason) => BootstrapError::Invalid(reason),
            OfflineUserError::Storage(err) => BootstrapError::Storage(err),
        }
    }
}

/// Where a node keeps its bootstrap file.
pub fn bootstrap_path(data_dir: &Path) -> PathBuf {
    quorum_dir(data_dir).join(FILE_NAME)
}

/// `broker user add` on a stopped voter: puts `record` (a credential from
/// `offline_credential`) into the bootstrap file (created if absent; an entry for the same
/// user and mechanism is replaced), and writes the file whole. A damaged file is an error
/// and is left as it is.
pub fn add_user(
    storage: Arc<dyn Storage>,
    data_dir: &Path,
    record: MetadataRecord,
) -> Result<(), BootstrapError> {
    let key = entry_key(&record).map(|(u, m)| (u.to_string(), m));
    if key.is_none() {
        return Err(BootstrapError::Invalid(
            "only SCRAM credentials go into the bootstrap file".into(),
        ));
    }
    let mut records = read(storage.as_ref(), data_dir)?.unwrap_or_default();
    records.retain(|r| entry_key(r).map(|(u, m)| (u.to_string(), m)) != key);
    records.push(record);
    records.sort_by(|a, b| entry_key(a).cmp(&entry_key(b)));
    records.push(MetadataRecord::ScramBootstrapped);
    let mut bytes = Vec::new();
    for record in &records {
        bytes.extend(RecordFile::<MetadataRecord>::frame(record)?);
    }
    create_store_dir(storage.as_ref(), &quorum_dir(data_dir))?;
    write_whole(storage.as_ref(), &bootstrap_path(data_dir), &bytes)
}

/// Writes `bytes` aside, fsyncs them, renames them over `path` and fsyncs the directory,
/// each step checked: a crash leaves the old file or the new one, and an error leaves the
/// old one in force.
fn write_whole(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<(), BootstrapError> {
    let tmp = path.with_extension("tmp");
    let written = storage.open(&tmp, true).and_then(|file| {
        file.truncate(0)?;
        file.write_at(bytes, 0)?;
        file.sync()
    });
    if let Err(e) = written.and_then(|_| storage.rename(&tmp, path)) {
        remove_leftover(storage, &tmp);
        return Err(StorageError::io(&tmp, e).into());
    }
    let dir = parent_dir(path);
    storage
        .sync_dir(dir)
        .map_err(|e| StorageError::io(dir, e).into())
}

/// The user and mechanism a bootstrap record is about.
fn entry_key(record: &MetadataRecord) -> Option<(&str, ScramMechanism)> {
    match record {
        MetadataRecord::ScramCredentialUpserted {
            user, mechanism, ..
        } => Some((user.as_str(), *mechanism)),
        _ => None,
    }
}

/// The bootstrap file's records, checked (None: there is no file). Nothing from the disk
/// is trusted: the size is bounded before anything is read, every frame's length and
/// CRC-32C are checked, and each record must be a credential within Kafka's bounds.
pub fn read(
    storage: &dyn Storage,
    data_dir: &Path,
) -> Result<Option<Vec<MetadataRecord>>, BootstrapError> {
    let path = bootstrap_path(data_dir);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let io = |e| StorageError::io(&path, e);
    let file = storage.open(&path, false).map_err(io)?;
    let size = file.len().map_err(io)?;
    if size > MAX_FILE_BYTES {
        return Err(BootstrapError::TooLarge { path, size });
    }
    let scanned = scan::<MetadataRecord>(file.as_ref(), &path)?;
    // Written whole and renamed into place, the file has no torn tail to forgive.
    if let Some(damage) = scanned.damage {
        return Err(BootstrapError::Corrupt {
            path,
            position: damage.position,
            reason: damage.reason,
        });
    }
    // The end record: a file cut at a frame's boundary still says it was.
    let mut records = scanned.records;
    if records.pop() != Some(MetadataRecord::ScramBootstrapped) {
        return Err(BootstrapError::Corrupt {
            path,
            position: scanned.len,
            reason: "the end record is missing: the file is cut short".into(),
        });
    }
    for (index, record) in records.iter().enumerate() {
        if let Err(reason) = check_record(record) {
            return Err(BootstrapError::BadRecord {
                path,
                index,
                reason,
            });
        }
    }
    Ok(Some(records))
}

/// Why a record read from a bootstrap file cannot be committed, if it cannot.
fn check_record(record: &MetadataRecord) -> Result<(), String> {
    let Some((user, mechanism, credential)) = record.scram_credential() else {
        return Err("not a SCRAM credential".into());
    };
    let ScramCredential {
        salt,
        stored_key,
        server_key,
        iterations,
    } = &credential;
    if user.is_empty() || user.len() > MAX_NAME_BYTES {
        return Err(format!("a user name of {} bytes", user.len()));
    }
    if salt.is_empty() || salt.len() > MAX_SALT_BYTES {
        return Err(format!("a salt of {} bytes", salt.len()));
    }
    let key_len = match mechanism {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    };
    if stored_key.len() != key_len || server_key.len() != key_len {
        return Err(format!("keys that are not {key_len} bytes for {mechanism}"));
    }
    if !(ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS).contains(iterations) {
        return Err(format!("{iterations} iterations"));
    }
    Ok(())
}

/// Whether a cluster's metadata is new, as Kafka applies its bootstrap records only to a
/// new metadata log: no bootstrap committed and no broker registered yet.
fn is_new(image: &MetadataImage) -> bool {
    !image.scram_bootstrapped && image.brokers.is_empty()
}

/// What a voter's controller holds of its bootstrap file until the cluster is bootstrapped.
#[derive(Debug)]
pub struct PendingBootstrap {
    state: Pending,
    path: PathBuf,
}

#[derive(Debug, PartialEq)]
enum Pending {
    /// The file's records (empty: this voter has no file) wait for this voter to lead a
    /// quorum not yet bootstrapped.
    Waiting {
        records: Vec<MetadataRecord>,
        from_file: bool,
    },
    /// Committed here, or found committed by another leader: nothing more to do.
    Done,
}

impl PendingBootstrap {
    /// Reads this voter's bootstrap file at start; a damaged one stops the start.
    pub fn load(storage: &dyn Storage, data_dir: &Path) -> Result<Self, BootstrapError> {
        let read = read(storage, data_dir)?;
        Ok(Self {
            state: Pending::Waiting {
                from_file: read.is_some(),
                records: read.unwrap_or_default(),
            },
            path: bootstrap_path(data_dir),
        })
    }

    /// No file (tests).
    pub fn empty() -> Self {
        Self {
            state: Pending::Waiting {
                records: Vec::new(),
                from_file: false,
            },
            path: PathBuf::new(),
        }
    }

    /// Whether nothing is left to do.
    pub fn is_done(&self) -> bool {
        self.state == Pending::Done
    }

    /// On the leader, before it answers a heartbeat: commits the file's credentials and the
    /// marker while the cluster's metadata is new (`is_new`). The applied image may lag
    /// what was committed before this node led, so that is checked again after a
    /// linearizable read. A voter without a file writes nothing (a cluster formed without
    /// any file runs exactly as before). A failed write leaves the bootstrap pending (the
    /// next heartbeat tries again); committing the same credentials twice leaves the same
    /// image.
    pub async fn commit_on_leader(
        &mut self,
        raft: &MetadataRaft,
        applied: &watch::Receiver<Arc<AppliedImage>>,
    ) -> Result<(), Rejected> {
        let Pending::Waiting {
            from_file: true, ..
        } = &self.state
        else {
            self.state = Pending::Done;
            return Ok(());
        };
        if !is_new(&applied.borrow().image) {
            self.found_bootstrapped();
            return Ok(());
        }
        raft.ensure_linearizable()
            .await
            .map_err(|e| Rejected::Failed(format!("reading the committed metadata: {e}")))?;
        if !is_new(&applied.borrow().image) {
            self.found_bootstrapped();
            return Ok(());
        }
        let Pending::Waiting { records, .. } = &self.state else {
            return Ok(());
        };
        for record in records.iter().cloned() {
            local_write(raft, record).await?;
        }
        local_write(raft, MetadataRecord::ScramBootstrapped).await?;
        info!(credentials = records.len(), path = %self.path.display(),
            "Committed the SCRAM credentials of this voter's bootstrap file (once for the cluster).");
        self.state = Pending::Done;
        Ok(())
    }

    /// On every voter, as its image changes: once the cluster's metadata is not new, a file
    /// not applied here is dropped with one warning.
    pub fn follow(&mut self, applied: &watch::Receiver<Arc<AppliedImage>>) {
        if !self.is_done() && !is_new(&applied.borrow().image) {
            self.found_bootstrapped();
        }
    }

    fn found_bootstrapped(&mut self) {
        if let Pending::Waiting {
            records,
            from_file: true,
        } = &self.state
        {
            warn!(credentials = records.len(), path = %self.path.display(),
                "This voter's SCRAM bootstrap file was not applied: the cluster's metadata is not new (its first leader bootstrapped it, from its own file or none). Change credentials with AlterUserScramCredentials (kafka-configs --alter --add-config 'SCRAM-SHA-512=[...]'); the file can be removed.");
        }
        self.state = Pending::Done;
    }
}
