//! A group's durable half in cluster mode: its changes are appended, as keyed records,
//! to the leader of its `__consumer_offsets` partition with acks=all, and a change counts
//! only once the partition answers that the in-sync replicas have it (the high watermark
//! passed it). The group's coordinator actor asks; the partition actor calls nobody.
//!
//! Also the read side: a new leader of a `__consumer_offsets` partition replays it, up
//! to its high watermark, into every group's offsets before it serves those groups.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ractor::ActorRef;

use super::group_store::GroupOffsets;
use super::offsets_topic::{batch_of, KeyedRecord, OffsetsReplay};
use crate::actors::partition::{PartitionMsg, PartitionOffsets};
use crate::actors::{call, CallError};
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
        if records.is_empty() {
            return Ok(());
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let batch = Bytes::from(batch_of(records, now_ms));
        let append = |reply| PartitionMsg::Append {
            records: batch,
            acks: -1,
            reply,
        };
        call(&self.partition, append, self.commit_timeout).await??;
        Ok(())
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

/// Bytes one read of a load asks for.
const LOAD_READ_BYTES: usize = 4 * 1024 * 1024;

/// Replays the partition whose leader `partition` is, from its log start to its high
/// watermark. Waits until the high watermark reaches the log end offset: what the new
/// leader holds past it may be offsets acknowledged by the previous leader.
pub async fn load(
    partition: &ActorRef<PartitionMsg>,
    timeout: Duration,
) -> Result<Loaded, GroupLogError> {
    let offsets: PartitionOffsets =
        call(partition, |reply| PartitionMsg::Offsets { reply }, timeout).await?;
    if offsets.high_watermark < offsets.log_end_offset {
        return Ok(Loaded::NotYet);
    }
    let mut replay = OffsetsReplay::default();
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
        let after = last_offset(&read.records)?;
        if after < next {
            break;
        }
        next = after + 1;
    }
    Ok(Loaded::Groups(replay.groups))
}

/// The last offset of the last whole batch in `batches`.
fn last_offset(batches: &[u8]) -> Result<i64, GroupLogError> {
    let split = crate::storage::batch::split_batches(batches, usize::MAX)?;
    Ok(split.last().map_or(-1, |(h, _)| h.last_offset()))
}
