//! Stand-in for a partition whose log could not be opened (an I/O error on its directory
//! at start or at a restart): it answers every request with KAFKA_STORAGE_ERROR, so one
//! bad directory costs that partition, not the broker. The cause was logged when the
//! open failed; a broker restart tries the log again.

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::partition::{PartitionMsg, PartitionOffsets};
use crate::error::PartitionError;

pub struct UnavailablePartition;

impl Actor for UnavailablePartition {
    type Msg = PartitionMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PartitionMsg::Append { reply, .. } | PartitionMsg::QueuedAppend { reply, .. } => {
                let _ = reply.send(Err(PartitionError::StorageFailed));
            }
            PartitionMsg::Read { reply, .. } => {
                let _ = reply.send(Err(PartitionError::StorageFailed));
            }
            PartitionMsg::ListOffset { reply, .. } => {
                let _ = reply.send(Err(PartitionError::StorageFailed));
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
                let _ = reply.send(Err(PartitionError::StorageFailed));
            }
            PartitionMsg::Delete { reply } => {
                let _ = reply.send(());
                myself.stop(None);
            }
            PartitionMsg::DeleteRecords { reply, .. } => {
                let _ = reply.send(Err(PartitionError::StorageFailed));
            }
            PartitionMsg::WriteTxnMarker { reply, .. } => {
                let _ = reply.send(Err(PartitionError::StorageFailed));
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
            PartitionMsg::Replication(message) => message.refuse(PartitionError::StorageFailed),
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
