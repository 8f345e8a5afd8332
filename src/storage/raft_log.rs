//! The Raft log of the metadata quorum, on the storage seam (openraft's `RaftLogStorage`).
//!
//! One record file (`raft.log`, see `record_file`: framed, CRC-checked, every length bounded
//! before anything is allocated, a torn tail cut on open) holds every write as one record:
//! a vote, a committed log id, a batch of entries, a truncation or a purge. Each is
//! fsynced before openraft hears it is done, so writes are serialized and a power cut
//! keeps every one openraft was told of. Opening replays the records into memory (the
//! metadata log is small, and purged behind each snapshot); when the file is mostly
//! history it is rewritten as the live state (write aside, fsync, rename, fsync the
//! directory), so truncation and purge never edit the file in place.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, StorageError as RaftStorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::record_file::create_store_dir;
use super::{RecordFile, Storage, StorageError};

/// Entries per record at most, so one record stays far below the record file's limit.
const ENTRIES_PER_RECORD: usize = 64;

/// One durable write to the Raft log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum RaftLogRecord<C: RaftTypeConfig>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    Vote(Vote<C::NodeId>),
    Committed(Option<LogId<C::NodeId>>),
    Entries(Vec<C::Entry>),
    /// Entries from this index on are gone.
    TruncateSince(u64),
    /// Entries up to this log id, inclusive, are gone.
    Purged(LogId<C::NodeId>),
}

/// The log as the records say.
#[derive(Debug)]
struct LogImage<C: RaftTypeConfig> {
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
    entries: BTreeMap<u64, C::Entry>,
}

impl<C: RaftTypeConfig> Default for LogImage<C> {
    fn default() -> Self {
        Self {
            vote: None,
            committed: None,
            last_purged: None,
            entries: BTreeMap::new(),
        }
    }
}

impl<C: RaftTypeConfig> LogImage<C>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    fn apply(&mut self, record: RaftLogRecord<C>) {
        match record {
            RaftLogRecord::Vote(vote) => self.vote = Some(vote),
            RaftLogRecord::Committed(committed) => self.committed = committed,
            RaftLogRecord::Entries(entries) => {
                for entry in entries {
                    self.entries.insert(entry.get_log_id().index, entry);
                }
            }
            RaftLogRecord::TruncateSince(index) => {
                self.entries.split_off(&index);
            }
            RaftLogRecord::Purged(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.last_purged = Some(log_id);
            }
        }
    }

    /// The fewest records that replay to this log.
    fn records(&self) -> Vec<RaftLogRecord<C>> {
        let mut records = Vec::new();
        if let Some(vote) = &self.vote {
            records.push(RaftLogRecord::Vote(vote.clone()));
        }
        if let Some(purged) = &self.last_purged {
            records.push(RaftLogRecord::Purged(purged.clone()));
        }
        let entries: Vec<_> = self.entries.values().cloned().collect();
        for chunk in entries.chunks(ENTRIES_PER_RECORD) {
            records.push(RaftLogRecord::Entries(chunk.to_vec()));
        }
        if self.committed.is_some() {
            records.push(RaftLogRecord::Committed(self.committed.clone()));
        }
        records
    }
}

/// The Raft log storage: one per quorum member. The log in memory is behind a watch
/// channel (changed in place, no lock of ours): replication tasks hold readers for as
/// long as they run and must see every entry appended after they were made.
pub struct RaftLogStore<C: RaftTypeConfig>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    file: RecordFile<RaftLogRecord<C>>,
    log: watch::Sender<LogImage<C>>,
    /// Records in the file, to tell when it is mostly history.
    records: usize,
}

impl<C: RaftTypeConfig> Debug for RaftLogStore<C>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore")
            .field("entries", &self.log.borrow().entries.len())
            .field("records", &self.records)
            .finish()
    }
}

fn write_error<C: RaftTypeConfig>(err: StorageError) -> RaftStorageError<C::NodeId> {
    StorageIOError::write_logs(AnyError::new(&err)).into()
}

impl<C: RaftTypeConfig> RaftLogStore<C>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    /// Opens (creating) `dir/raft.log` and replays it.
    pub fn open(storage: Arc<dyn Storage>, dir: &Path) -> Result<Self, StorageError> {
        create_store_dir(storage.as_ref(), dir)?;
        let (file, records, truncated) =
            RecordFile::<RaftLogRecord<C>>::open(storage, dir.join("raft.log"))?;
        if truncated > 0 {
            warn!(
                bytes = truncated,
                "The Raft log had a torn tail, which was cut."
            );
        }
        let count = records.len();
        let mut log = LogImage::default();
        for record in records {
            log.apply(record);
        }
        let mut store = Self {
            file,
            log: watch::Sender::new(log),
            records: count,
        };
        store.compact_if_mostly_history()?;
        Ok(store)
    }

    /// Appends and fsyncs one record, then applies it in memory.
    fn write(&mut self, record: RaftLogRecord<C>) -> Result<(), StorageError> {
        self.file.append(&record)?;
        self.records += 1;
        self.log.send_modify(|log| log.apply(record));
        Ok(())
    }

    fn compact_if_mostly_history(&mut self) -> Result<(), StorageError> {
        let live = self.log.borrow().records();
        if self.records <= 2 * live.len() + 100 {
            return Ok(());
        }
        match self.file.rewrite(&live) {
            Ok(()) => {
                info!(
                    before = self.records,
                    after = live.len(),
                    "Compacted the Raft log file."
                );
                self.records = live.len();
                Ok(())
            }
            // Failed after its rename: the file refuses writes, so the quorum member stops.
            Err(err) if self.file.is_failed() => Err(err),
            Err(err) => {
                warn!(%err, "Could not compact the Raft log file; it stays as it is.");
                Ok(())
            }
        }
    }
}

fn entries<C: RaftTypeConfig, RB: RangeBounds<u64>>(log: &LogImage<C>, range: RB) -> Vec<C::Entry>
where
    C::Entry: Clone,
{
    log.entries.range(range).map(|(_, e)| e.clone()).collect()
}

/// A reader of the live log, for replication.
pub struct RaftLogWatchReader<C: RaftTypeConfig> {
    log: watch::Receiver<LogImage<C>>,
}

impl<C: RaftTypeConfig> RaftLogReader<C> for RaftLogWatchReader<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, RaftStorageError<C::NodeId>> {
        Ok(entries(&self.log.borrow(), range))
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for RaftLogStore<C>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, RaftStorageError<C::NodeId>> {
        Ok(entries(&self.log.borrow(), range))
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for RaftLogStore<C>
where
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    type LogReader = RaftLogWatchReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, RaftStorageError<C::NodeId>> {
        let log = self.log.borrow();
        let last = log
            .entries
            .values()
            .next_back()
            .map(|e| e.get_log_id().clone());
        Ok(LogState {
            last_purged_log_id: log.last_purged.clone(),
            last_log_id: last.or(log.last_purged.clone()),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        RaftLogWatchReader {
            log: self.log.subscribe(),
        }
    }

    async fn save_vote(
        &mut self,
        vote: &Vote<C::NodeId>,
    ) -> Result<(), RaftStorageError<C::NodeId>> {
        self.write(RaftLogRecord::Vote(vote.clone()))
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, RaftStorageError<C::NodeId>> {
        Ok(self.log.borrow().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), RaftStorageError<C::NodeId>> {
        self.write(RaftLogRecord::Committed(committed))
            .map_err(|e| {
                StorageIOError::new(ErrorSubject::Store, ErrorVerb::Write, AnyError::new(&e)).into()
            })
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, RaftStorageError<C::NodeId>> {
        Ok(self.log.borrow().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), RaftStorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        for chunk in entries.chunks(ENTRIES_PER_RECORD) {
            if let Err(err) = self.write(RaftLogRecord::Entries(chunk.to_vec())) {
                let io = std::io::Error::other(err.to_string());
                callback.log_io_completed(Err(io));
                return Err(write_error::<C>(err));
            }
        }
        // Fsynced above: only now is openraft told the entries are durable.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(
        &mut self,
        log_id: LogId<C::NodeId>,
    ) -> Result<(), RaftStorageError<C::NodeId>> {
        self.write(RaftLogRecord::TruncateSince(log_id.index))
            .map_err(write_error::<C>)
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), RaftStorageError<C::NodeId>> {
        self.write(RaftLogRecord::Purged(log_id))
            .map_err(write_error::<C>)?;
        self.compact_if_mostly_history().map_err(write_error::<C>)
    }
}
