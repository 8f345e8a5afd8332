//! The controller's side of AlterPartition (KIP-497): a partition leader's ISR change,
//! checked against the committed image. The controller actor answers the request with
//! `isr_changed`'s verdict and writes its record; this file decides, and calls nobody.
//!
//! A leader may work from an old state of its partition: cut off from the controller, it
//! still holds the ISR it last heard of, while the controller has since dropped a fenced
//! broker from it (and unfenced it again, its log perhaps empty after a power cut). Its
//! leader epoch is still current, so only the partition epoch, which every applied change
//! of the partition counts, shows that its change was computed from a state that is gone.

use super::rpc::{IsrChange, Rejected};
use crate::actors::metadata::{MetadataImage, MetadataRecord};

/// An AlterPartition checked against the committed image, as Kafka's controller does: from
/// the partition's leader at its current leader epoch (else FENCED_LEADER_EPOCH, `Stale`)
/// and partition epoch (else INVALID_UPDATE_VERSION), an ISR of its replicas that holds the
/// leader, where every member added is unfenced. The leader epoch stays.
pub fn isr_changed(image: &MetadataImage, change: &IsrChange) -> Result<MetadataRecord, Rejected> {
    let partition = image
        .topics
        .get(&change.topic)
        .and_then(|t| t.assignments.get(usize::try_from(change.partition).ok()?))
        .ok_or_else(|| Rejected::Stale(format!("{}-{} is gone", change.topic, change.partition)))?;
    if partition.leader != change.leader_id || partition.leader_epoch != change.leader_epoch {
        return Err(Rejected::Stale(format!(
            "{}-{} is led by {} at epoch {}, not {} at {}",
            change.topic,
            change.partition,
            partition.leader,
            partition.leader_epoch,
            change.leader_id,
            change.leader_epoch
        )));
    }
    if partition.partition_epoch != change.partition_epoch {
        return Err(Rejected::InvalidUpdateVersion {
            asked: change.partition_epoch,
            current: partition.partition_epoch,
        });
    }
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    let valid = change.new_isr.contains(&change.leader_id)
        && change
            .new_isr
            .iter()
            .all(|id| partition.replicas.contains(id))
        && change
            .new_isr
            .iter()
            .all(|id| partition.isr.contains(id) || live(id));
    if !valid {
        return Err(Rejected::Invalid(format!(
            "ISR {:?} is not the leader and live replicas of {:?}",
            change.new_isr, partition.replicas
        )));
    }
    Ok(MetadataRecord::PartitionChanged {
        topic: change.topic.clone(),
        partition: change.partition,
        leader: partition.leader,
        leader_epoch: partition.leader_epoch,
        isr: change.new_isr.clone(),
    })
}
