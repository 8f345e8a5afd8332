//! Partition reassignment (AlterPartitionReassignments), decided by the controller as
//! Kafka's does, as pure functions of the committed image:
//! 1. Start: the replicas become the target followed by those leaving; `adding` (target
//!    minus original) join as followers and catch up; `removing` (original minus target)
//!    stay until then. A new reassignment of a partition already moving starts from its
//!    original replicas.
//! 2. Complete (checked on the controller's timer): once every target replica is in the
//!    ISR, the replicas become the target, those leaving drop out of the ISR, and if the
//!    leader was one of them the first live target replica in the ISR leads.
//! 3. Cancel (null replicas): back to the original replicas.
//!
//! Every change of the replica set comes with the next leader epoch (as ZooKeeper-era
//! Kafka's reassignment did), so each replica hears its role again with the new set.

use serde::{Deserialize, Serialize};

use crate::actors::metadata::{MetadataImage, MetadataRecord, PartitionImage};

/// One partition's requested reassignment (None: cancel the one under way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
    /// AlterPartitionReassignments v1 (KIP-860): false refuses a target whose replica
    /// count differs from the partition's.
    pub allow_replication_factor_change: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReassignmentError {
    #[error("the topic or partition does not exist")]
    UnknownTopicOrPartition,
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("no reassignment of this partition is under way")]
    NoReassignmentInProgress,
    #[error("the replication factor is changed from {from} to {to} but allowReplicationFactorChange is false")]
    ReplicationFactorChange { from: usize, to: usize },
}

impl ReassignmentError {
    pub fn code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            Self::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
            Self::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment.code(),
            Self::NoReassignmentInProgress => E::NoReassignmentInProgress.code(),
            Self::ReplicationFactorChange { .. } => E::InvalidReplicationFactor.code(),
        }
    }
}

/// The record starting (or cancelling) one reassignment; None when nothing changes.
pub fn alter(
    image: &MetadataImage,
    request: &Reassignment,
) -> Result<Option<MetadataRecord>, ReassignmentError> {
    let p = image
        .topics
        .get(&request.topic)
        .and_then(|t| t.assignments.get(usize::try_from(request.partition).ok()?))
        .ok_or(ReassignmentError::UnknownTopicOrPartition)?;
    let original: Vec<i32> = without(&p.replicas, &p.adding);
    let target = match &request.target {
        None if !p.reassigning() => return Err(ReassignmentError::NoReassignmentInProgress),
        None => original.clone(),
        Some(target) => {
            check_target(image, target)?;
            if !request.allow_replication_factor_change && target.len() != original.len() {
                return Err(ReassignmentError::ReplicationFactorChange {
                    from: original.len(),
                    to: target.len(),
                });
            }
            target.clone()
        }
    };
    if !p.reassigning() && target == p.replicas {
        return Ok(None);
    }
    let removing = without(&original, &target);
    let mut replicas = target.clone();
    replicas.extend(&removing);
    let moving = PartitionImage {
        isr: p
            .isr
            .iter()
            .copied()
            .filter(|r| replicas.contains(r))
            .collect(),
        adding: without(&target, &original),
        removing,
        replicas,
        leader: p.leader,
        leader_epoch: p.leader_epoch + 1,
        partition_epoch: p.partition_epoch,
    };
    let state = completed(image, &moving).unwrap_or(moving);
    Ok(Some(state.reassigned(&request.topic, request.partition)))
}

/// The records completing every reassignment whose target replicas are all in the ISR.
pub fn complete(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (name, topic) in &image.topics {
        for (index, p) in topic.assignments.iter().enumerate() {
            if let Some(done) = p.reassigning().then(|| completed(image, p)).flatten() {
                records.push(done.reassigned(name, index as i32));
            }
        }
    }
    records
}

/// A reassignment's end state, if every target replica is in the ISR.
fn completed(image: &MetadataImage, p: &PartitionImage) -> Option<PartitionImage> {
    let target = without(&p.replicas, &p.removing);
    if !target.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    let isr: Vec<i32> = without(&p.isr, &p.removing);
    let leader = if target.contains(&p.leader) {
        p.leader
    } else {
        target
            .iter()
            .copied()
            .find(|r| isr.contains(r) && live(r))
            .unwrap_or(-1)
    };
    Some(PartitionImage {
        replicas: target,
        leader,
        leader_epoch: p.leader_epoch + 1,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
        partition_epoch: p.partition_epoch,
    })
}

/// As Kafka's controller: a non-empty list of registered brokers, none twice.
fn check_target(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignmentError> {
    let invalid = |why: String| Err(ReassignmentError::InvalidReplicaAssignment(why));
    if target.is_empty() {
        return invalid("the target replica list is empty".into());
    }
    for (at, id) in target.iter().enumerate() {
        if target[..at].contains(id) {
            return invalid(format!(
                "the target replicas name broker {id} more than once"
            ));
        }
        if !image.brokers.contains_key(id) {
            return invalid(format!("broker {id} is not registered"));
        }
    }
    Ok(())
}

fn without(from: &[i32], remove: &[i32]) -> Vec<i32> {
    from.iter()
        .copied()
        .filter(|r| !remove.contains(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> MetadataImage {
        crate::cluster::elections::tests::with_brokers(4, &[], vec![3, 1, 2])
    }

    fn ask(target: Option<Vec<i32>>) -> Reassignment {
        Reassignment {
            topic: "t".into(),
            partition: 0,
            target,
            allow_replication_factor_change: true,
        }
    }

    #[test]
    fn a_replica_joins_catches_up_then_the_leaving_one_goes() {
        let mut image = image();
        let start = alter(&image, &ask(Some(vec![1, 2, 4]))).unwrap().unwrap();
        image.apply(&start);
        let p = image.topics["t"].assignments[0].clone();
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![1, 2, 4, 3], vec![4], vec![3])
        );
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (3, 1, vec![3, 1, 2])
        );
        // Not complete until 4 is in the ISR.
        assert!(complete(&image).is_empty());
        image.apply(&MetadataRecord::PartitionChanged {
            topic: "t".into(),
            partition: 0,
            leader: 3,
            leader_epoch: 1,
            isr: vec![3, 1, 2, 4],
        });
        let done = complete(&image);
        assert_eq!(done.len(), 1);
        image.apply(&done[0]);
        let p = &image.topics["t"].assignments[0];
        assert_eq!(p.replicas, vec![1, 2, 4]);
        assert!(!p.reassigning());
        // The leader left: the first target replica in the ISR leads, at the next epoch.
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (1, 2, vec![1, 2, 4])
        );
    }

    #[test]
    fn bad_targets_and_cancels_answer_kafkas_errors() {
        let mut image = image();
        let err = |target| alter(&image, &ask(target)).unwrap_err().code();
        assert_eq!(err(Some(vec![1, 1, 2])), 39);
        assert_eq!(err(Some(vec![1, 2, 9])), 39);
        assert_eq!(err(Some(vec![])), 39);
        assert_eq!(err(None), 85);
        let unknown = Reassignment {
            topic: "t".into(),
            partition: 5,
            target: None,
            allow_replication_factor_change: true,
        };
        assert_eq!(alter(&image, &unknown).unwrap_err().code(), 3);
        // The same replicas: nothing to do.
        assert_eq!(alter(&image, &ask(Some(vec![3, 1, 2]))).unwrap(), None);
        // Started, then cancelled: the original replicas again (in the order they have in
        // the moving set, as Kafka's revert), nothing under way.
        let start = alter(&image, &ask(Some(vec![1, 2, 4]))).unwrap().unwrap();
        image.apply(&start);
        let cancel = alter(&image, &ask(None)).unwrap().unwrap();
        image.apply(&cancel);
        let p = &image.topics["t"].assignments[0];
        assert_eq!(
            (p.replicas.clone(), p.reassigning()),
            (vec![1, 2, 3], false)
        );
        assert_eq!(p.leader, 3);
    }

    #[test]
    fn a_replica_count_change_is_refused_only_when_not_allowed() {
        let image = image();
        let fixed = |target: Vec<i32>| Reassignment {
            allow_replication_factor_change: false,
            ..ask(Some(target))
        };
        // 3 -> 4 and 3 -> 2 replicas: INVALID_REPLICATION_FACTOR.
        assert_eq!(
            alter(&image, &fixed(vec![1, 2, 3, 4])).unwrap_err().code(),
            38
        );
        assert_eq!(alter(&image, &fixed(vec![1, 2])).unwrap_err().code(), 38);
        // The same count on other brokers is a move, and allowed.
        assert!(alter(&image, &fixed(vec![1, 2, 4])).unwrap().is_some());
        // Allowed (the default): the count may change.
        assert!(alter(&image, &ask(Some(vec![1, 2]))).unwrap().is_some());
    }
}
