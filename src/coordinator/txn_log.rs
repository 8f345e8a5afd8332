//! A transactional id's durable half in cluster mode: every state change is appended, as
//! one keyed record, to the leader of its `__transaction_state` partition with acks=all,
//! and counts only once the partition answers that the in-sync replicas have it. The
//! id's coordinator actor asks; the partition actor calls nobody.
//!
//! Also the read side: a new leader of a `__transaction_state` partition replays it, up to
//! its high watermark, into every id's state before it coordinates those ids.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::ResponseError;
use ractor::ActorRef;

use super::internal_topic::{append_acks_all, replay_to_high_watermark};
use super::offsets_topic::KeyedRecord;
use super::transaction_state_topic::TxnReplay;
use crate::actors::partition::PartitionMsg;
use crate::actors::txn_messages::TxnMetadata;
use crate::actors::CallError;
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
        append_acks_all(&self.partition, &[record], self.append_timeout).await
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

/// Replays the partition whose leader `partition` is, from its log start to its high
/// watermark. Waits until the high watermark reaches the log end offset: what the new
/// leader holds past it may be state the previous coordinator acknowledged.
pub async fn load(
    partition: &ActorRef<PartitionMsg>,
    timeout: Duration,
) -> Result<LoadedTxns, TxnLogError> {
    let mut replay = TxnReplay::default();
    let apply = |batches: &[u8]| replay.apply_batches(batches);
    if !replay_to_high_watermark::<TxnLogError>(partition, timeout, apply).await? {
        return Ok(LoadedTxns::NotYet);
    }
    Ok(LoadedTxns::Ids(replay.ids))
}
