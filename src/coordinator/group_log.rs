//! A group's durable half in cluster mode: its changes are appended, as keyed records,
//! to the leader of its `__consumer_offsets` partition with acks=all, and a change counts
//! only once the partition answers that the in-sync replicas have it (the high watermark
//! passed it). The group's coordinator actor asks; the partition actor calls nobody.
//!
//! Also the read side: a new leader of a `__consumer_offsets` partition replays it, up
//! to its high watermark, into every group's offsets before it serves those groups.

use std::time::Duration;

use kafka_protocol::ResponseError;
use ractor::ActorRef;

use super::group_store::GroupOffsets;
use super::internal_topic::{append_acks_all, replay_to_high_watermark};
use super::offsets_topic::{KeyedRecord, OffsetsReplay};
use crate::actors::partition::PartitionMsg;
use crate::actors::CallError;
use crate::error::PartitionError;
use crate::storage::StorageError;

/// What goes wrong writing to or reading from `__consumer_offsets`.
#[derive(Debug, thiserror::Error)]
pub enum GroupLogError {
    #[error("the __consumer_offsets partition: {0}")]
    Call(#[from] CallError),
    #[error("the __consumer_offsets partition refused: {0}")]
    Partition(#[from] PartitionError),
    #[error("the __consumer_offsets records: {0}")]
    Records(#[from] StorageError),
}

impl GroupLogError {
    /// The error code a group request is answered with, as Kafka's group coordinator
    /// maps its append errors: the partition not led here is NOT_COORDINATOR (the client
    /// looks the coordinator up again), too few replicas or a timeout
    /// COORDINATOR_NOT_AVAILABLE, a record too large INVALID_COMMIT_OFFSET_SIZE.
    pub fn code(&self) -> i16 {
        match self {
            GroupLogError::Call(CallError::Stopped) => ResponseError::NotCoordinator.code(),
            GroupLogError::Call(CallError::Timeout(_)) => {
                ResponseError::CoordinatorNotAvailable.code()
            }
            GroupLogError::Partition(e) => match e {
                PartitionError::NotEnoughReplicas
                | PartitionError::NotEnoughReplicasAfterAppend
                | PartitionError::TimedOut => ResponseError::CoordinatorNotAvailable.code(),
                PartitionError::MessageTooLarge(_)
                | PartitionError::InvalidRecord(_)
                | PartitionError::InvalidRecords(_) => {
                    ResponseError::InvalidCommitOffsetSize.code()
                }
                _ => ResponseError::NotCoordinator.code(),
            },
            GroupLogError::Records(_) => ResponseError::UnknownServerError.code(),
        }
    }
}

/// Where a group's records go: the leader's partition actor for its `__consumer_offsets`
/// partition, and how long an acks=all append may take (Kafka's offsets.commit.timeout.ms).
#[derive(Debug, Clone)]
pub struct GroupLog {
    pub partition: ActorRef<PartitionMsg>,
    pub commit_timeout: Duration,
}

impl GroupLog {
    /// Appends the records as one batch with acks=all; Ok once the ISR has them.
    pub async fn append(&self, records: &[KeyedRecord]) -> Result<(), GroupLogError> {
        append_acks_all(&self.partition, records, self.commit_timeout).await
    }
}

/// How a load of a `__consumer_offsets` partition ended.
#[derive(Debug)]
pub enum Loaded {
    /// Every group the partition holds, up to its high watermark.
    Groups(std::collections::BTreeMap<String, GroupOffsets>),
    /// Records past the high watermark wait for the followers (a new leader's first
    /// moments): COORDINATOR_LOAD_IN_PROGRESS, try again.
    NotYet,
}

/// Replays the partition whose leader `partition` is, from its log start to its high
/// watermark. Waits until the high watermark reaches the log end offset: what the new
/// leader holds past it may be offsets acknowledged by the previous leader.
pub async fn load(
    partition: &ActorRef<PartitionMsg>,
    timeout: Duration,
) -> Result<Loaded, GroupLogError> {
    let mut replay = OffsetsReplay::default();
    let complete = replay_to_high_watermark::<GroupLogError>(partition, timeout, |batches| {
        replay.apply_batches(batches)
    })
    .await?;
    Ok(if complete {
        Loaded::Groups(replay.groups)
    } else {
        Loaded::NotYet
    })
}
