//! A transactional id's durable half in cluster mode: every state change is appended, as
//! one keyed record, to the leader of its `__transaction_state` partition with acks=all,
//! and counts only once the partition answers that the in-sync replicas have it. The
//! id's coordinator actor asks; the partition actor calls nobody.
//!
//! Also the read side: a new leader of a `__transaction_state` partition replays it, up to
//! its high watermark, into every id's state before it coordinates those ids.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ractor::ActorRef;

use super::offsets_topic::{batch_of, KeyedRecord};
use super::transaction_state_topic::TxnReplay;
use crate::actors::partition::{PartitionMsg, PartitionOffsets};
use crate::actors::txn_messages::TxnMetadata;
use crate::actors::{call, CallError};
use crate::error::PartitionError;
use crate::storage::StorageError;

/// What goes wrong writing to or reading from `__transaction_state`.
#[derive(Debug, thiserror::Error)]
pub enum TxnLogError {
    #[error("the __transaction_state partition: {0}")]
    Call(#[from] CallError),
    #[error("the __transaction_state partition refused: {0}")]
    Partition(#[from] PartitionError),
    #[error("the __transaction_state records: {0}")]
    Records(#[from] StorageError),
}

impl TxnLogError {
    /// The error code a transaction request is answered with, as Kafka's
    /// TransactionStateManager maps its append errors: too few replicas or a timeout
    /// COORDINATOR_NOT_AVAILABLE (the client retries here), the partition not led here
    /// NOT_COORDINATOR (the client looks the coordinator up again), a record too large
    /// UNKNOWN_SERVER_ERROR.
    pub fn code(&self) -> i16 {
        match self {
            TxnLogError::Call(CallError::Stopped) => ResponseError::NotCoordinator.code(),
            TxnLogError::Call(CallError::Timeout(_)) => {
                ResponseError::CoordinatorNotAvailable.code()
            }
            TxnLogError::Partition(e) => match e {
                PartitionError::NotEnoughReplicas
                | PartitionError::NotEnoughReplicasAfterAppend
                | PartitionError::TimedOut => ResponseError::CoordinatorNotAvailable.code(),
                PartitionError::MessageTooLarge(_)
                | PartitionError::InvalidRecord(_)
                | PartitionError::InvalidRecords(_) => ResponseError::UnknownServerError.code(),
                _ => ResponseError::NotCoordinator.code(),
            },
            TxnLogError::Records(_) => ResponseError::UnknownServerError.code(),
        }
    }
}

/// Where an id's records go: the leader's partition actor for its `__transaction_state`
/// partition, and how long an acks=all append may take.
#[derive(Debug, Clone)]
pub struct TxnLog {
    pub partition: ActorRef<PartitionMsg>,
    pub append_timeout: Duration,
}

impl TxnLog {
    /// Appends the record as one batch with acks=all; Ok once the ISR has it.
    pub async fn append(&self, record: KeyedRecord) -> Result<(), TxnLogError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let batch = Bytes::from(batch_of(&[record], now_ms));
        let append = |reply| PartitionMsg::Append {
            records: batch,
            acks: -1,
            reply,
        };
        call(&self.partition, append, self.append_timeout).await??;
        Ok(())
    }
}

/// How a load of a `__transaction_state` partition ended.
#[derive(Debug)]
pub enum LoadedTxns {
    /// Every transactional id the partition holds, up to its high watermark.
    Ids(BTreeMap<String, TxnMetadata>),
    /// Records past the high watermark wait for the followers (a new leader's first
    /// moments): COORDINATOR_LOAD_IN_PROGRESS, try again.
    NotYet,
}

/// Bytes one read of a load asks for.
const LOAD_READ_BYTES: usize = 4 * 1024 * 1024;

/// Replays the partition whose leader `partition` is, from its log start to its high
/// watermark. Waits until the high watermark reaches the log end offset: what the new
/// leader holds past it may be state the previous coordinator acknowledged.
pub async fn load(
    partition: &ActorRef<PartitionMsg>,
    timeout: Duration,
) -> Result<LoadedTxns, TxnLogError> {
    let offsets: PartitionOffsets =
        call(partition, |reply| PartitionMsg::Offsets { reply }, timeout).await?;
    if offsets.high_watermark < offsets.log_end_offset {
        return Ok(LoadedTxns::NotYet);
    }
    let mut replay = TxnReplay::default();
    let mut next = offsets.log_start_offset;
    while next < offsets.high_watermark {
        let read = |reply| PartitionMsg::Read {
            offset: next,
            max_bytes: LOAD_READ_BYTES,
            min_one: true,
            read_committed: false,
            reply,
        };
        let read = call(partition, read, timeout).await??;
        if read.records.is_empty() {
            break;
        }
        replay.apply_batches(&read.records)?;
        let split = crate::storage::batch::split_batches(&read.records, usize::MAX)?;
        let after = split.last().map_or(-1, |(h, _)| h.last_offset());
        if after < next {
            break;
        }
        next = after + 1;
    }
    Ok(LoadedTxns::Ids(replay.ids))
}
