//! Storage: the partition log and the files under it.
//!
//! - `batch`: the v2 record batch header, CRC-32C checks, base offset assignment.
//! - `io`: the storage seam every file operation goes through; `FileStorage` for production.
//! - `sim`: an in-memory storage that fails on purpose (torn writes, EIO, ENOSPC, power cut).
//! - `segment`, `offset_index`, `time_index`: one segment file and its sparse indexes.
//! - `leader_epoch`: the leader-epoch cache (`leader-epoch-checkpoint`, KIP-101).
//! - `log`: the partition log (segments, recovery, group-commit flushes, reads).
//! - `log_quarantine`: segments recovery cannot keep, moved aside into `quarantine/`.
//! - `producer_state`: idempotent producers' last sequences per partition.
//! - `control_batch`, `txn_state`: transaction markers and each partition's open and
//!   aborted transactions (the last stable offset).
//! - `decompression`: bounded, streamed decompression of a batch's records.
//! - `recompression`: a topic's `compression.type` applied to produced batches.
//! - `record_file`: framed, CRC-checked rmp-serde records (metadata).
//! - `raft_log`, `raft_snapshot`: the metadata quorum's Raft log (with its vote and
//!   committed id) and its snapshot, on record files.

pub mod batch;
pub mod batch_builder;
pub mod batch_records;
pub mod cleaner;
pub mod control_batch;
pub mod decompression;
pub mod error;
pub mod io;
pub mod leader_epoch;
pub mod log;
pub mod log_checkpoint;
pub mod log_quarantine;
pub mod offset_index;
pub mod producer_state;
pub mod raft_log;
#[cfg(test)]
mod raft_log_tests;
pub mod raft_snapshot;
#[cfg(test)]
mod raft_snapshot_tests;
pub mod recompression;
pub mod record_file;
#[cfg(test)]
mod record_file_tests;
pub mod record_validator;
pub mod segment;
pub mod sim;
pub mod time_index;
pub mod txn_state;

pub use batch::BatchHeader;
pub use error::StorageError;
pub use io::{FileStorage, LogFile, Storage};
pub use log::{
    AppendInfo, CompactionConfig, FlushJob, LogConfig, PartitionLog, ReadResult, RecoveryReport,
};
pub use record_file::RecordFile;
