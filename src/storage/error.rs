//! Typed storage errors; `crate::error` maps them to Kafka error codes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad CRC, bad length: Kafka's CORRUPT_MESSAGE.
    #[error("corrupt batch: {0}")]
    CorruptBatch(String),
    /// Structurally invalid (magic, codec, counts): Kafka's INVALID_RECORD.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    #[error("batch of {size} bytes exceeds the limit of {limit}")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("the log is failed after an earlier storage error and accepts no writes")]
    Failed,
    /// A synchronous flush asked for while a background one runs (one at a time).
    #[error("a flush is already in flight")]
    FlushInFlight,
    #[error("corrupt record file {path} at byte {position}: {reason}")]
    CorruptRecordFile {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// A record file's record above what its reader accepts: nothing was written.
    #[error("record of {size} bytes exceeds the record file limit of {limit}")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("encoding error: {0}")]
    Encode(String),
    /// An idempotent producer's batch out of sequence or from an old epoch.
    #[error(transparent)]
    Sequence(#[from] super::producer_state::SequenceError),
}

impl StorageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    /// A shortage that passes (a full disk, no free file descriptors): the log is intact
    /// and takes appends again once it is over. None for any other error.
    pub fn pressure(&self) -> Option<Pressure> {
        if self.is_no_space() {
            Some(Pressure::NoSpace)
        } else if self.is_out_of_files() {
            Some(Pressure::OutOfFiles)
        } else {
            None
        }
    }

    /// ENOSPC: the disk is full; nothing else is wrong with the file.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.raw_os_error() == Some(28))
    }

    /// EMFILE/ENFILE: too many open files right now; retried later, not a disk fault.
    pub fn is_out_of_files(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if super::io::is_out_of_files(source))
    }

    pub fn is_io(&self) -> bool {
        matches!(self, StorageError::Io { .. } | StorageError::Failed)
    }
}

/// What a passing shortage is short of (see `StorageError::pressure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// ENOSPC.
    NoSpace,
    /// EMFILE/ENFILE while opening a new segment.
    OutOfFiles,
}

impl std::fmt::Display for Pressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pressure::NoSpace => "the disk is full",
            Pressure::OutOfFiles => "no file descriptor is free for a new segment",
        })
    }
}
