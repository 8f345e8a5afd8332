//! Stand-in for a partition that has no log here, answering every request with the error
//! it was started with:
//! - `StorageFailed`: its log could not be opened (an I/O error on its directory at start
//!   or at a restart), so KAFKA_STORAGE_ERROR, and one bad directory costs that partition,
//!   not the broker. The cause was logged when the open failed; a broker restart tries the
//!   log again.
//! - `NotAvailable`: cluster mode, this broker is no replica of the partition, so it opens
//!   no log for it (as Kafka's); NOT_LEADER_OR_FOLLOWER, and a flush has nothing to do.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::partition::{PartitionMsg, PartitionOffsets};
use crate::error::PartitionError;

pub struct UnavailablePartition;

/// Starts a stand-in answering `answer`, linked to `supervisor` (the metadata actor).
pub async fn stand_in(
    answer: PartitionError,
    supervisor: ractor::ActorCell,
) -> Result<ActorRef<PartitionMsg>, ractor::SpawnErr> {
    let (actor, _) = Actor::spawn_linked(None, UnavailablePartition, answer, supervisor).await?;
    Ok(actor)
}

impl Actor for UnavailablePartition {
    type Msg = PartitionMsg;
    type State = PartitionError;
    type Arguments = PartitionError;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        answer: PartitionError,
    ) -> Result<PartitionError, ActorProcessingErr> {
        Ok(answer)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        answer: &mut PartitionError,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PartitionMsg::Append { reply, .. } | PartitionMsg::QueuedAppend { reply, .. } => {
                let _ = reply.send(Err(answer.clone()));
            }
            PartitionMsg::Read { reply, .. } => {
                let _ = reply.send(Err(answer.clone()));
            }
            PartitionMsg::ListOffset { reply, .. } => {
                let _ = reply.send(Err(answer.clone()));
            }
            // A parked fetch would wait for nothing: wake it so it reads the error.
            PartitionMsg::WaitForData { notify, .. } => {
                let _ = notify.send(());
            }
            PartitionMsg::Offsets { reply } => {
                let _ = reply.send(PartitionOffsets {
                    log_start_offset: -1,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_end_offset: -1,
                    flushed_offset: -1,
                    size_bytes: 0,
                });
            }
            PartitionMsg::Flush { reply } => {
                let flushed = match answer {
                    PartitionError::NotAvailable => Ok(()),
                    other => Err(other.clone()),
                };
                let _ = reply.send(flushed);
            }
            PartitionMsg::Delete { reply } => {
                let _ = reply.send(());
                myself.stop(None);
            }
            PartitionMsg::DeleteRecords { reply, .. } => {
                let _ = reply.send(Err(answer.clone()));
            }
            PartitionMsg::WriteTxnMarker { reply, .. } => {
                let _ = reply.send(Err(answer.clone()));
            }
            PartitionMsg::Producers { reply } => {
                let _ = reply.send(Vec::new());
            }
            PartitionMsg::ApplyRetention { reply, .. } => {
                let _ = reply.send((0, -1));
            }
            PartitionMsg::ExpireProducers { reply, .. } => {
                let _ = reply.send(0);
            }
            PartitionMsg::Replication(message) => message.refuse(answer.clone()),
            PartitionMsg::FlushDone { .. }
            | PartitionMsg::FlushTick
            | PartitionMsg::RetentionTick
            | PartitionMsg::ProducerExpiryTick
            | PartitionMsg::CleaningDone { .. }
            | PartitionMsg::UpdateConfig { .. } => {}
        }
        Ok(())
    }
}
