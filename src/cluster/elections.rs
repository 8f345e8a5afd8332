//! Leader elections asked for by ElectLeaders (and the automatic preferred-leader
//! rebalance), decided by the controller as Kafka's does, as pure functions of the
//! committed image:
//! - PREFERRED: the first replica leads, when it is unfenced and in the ISR; where it
//!   already leads, ELECTION_NOT_NEEDED; otherwise PREFERRED_LEADER_NOT_AVAILABLE.
//! - UNCLEAN: only for a partition without a leader (else ELECTION_NOT_NEEDED): the first
//!   live ISR member in replica order, or failing that the first live replica, which then
//!   is the whole ISR (records may be lost: that is what an operator asks for, and why
//!   the controller never does it by itself); none live: ELIGIBLE_LEADERS_NOT_AVAILABLE.
//!
//! A new leader always comes with the next leader epoch.

use serde::{Deserialize, Serialize};

use crate::actors::metadata::{MetadataImage, MetadataRecord, PartitionImage};

/// Kafka's election types (ElectLeaders' `election_type`: 0 preferred, 1 unclean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(Self::Preferred),
            1 => Some(Self::Unclean),
            _ => None,
        }
    }
}

/// An ElectLeaders request as the controller takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeaders {
    pub election: ElectionType,
    /// None: every partition (and then partitions that need no election are left out of
    /// the answer, as Kafka's).
    pub partitions: Option<Vec<(String, i32)>>,
}

/// Why one partition got no new leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ElectionError {
    #[error("the topic or partition does not exist")]
    UnknownTopicOrPartition,
    #[error("the partition already has the leader the election would choose")]
    ElectionNotNeeded,
    #[error("the preferred leader is fenced or not in the ISR")]
    PreferredLeaderNotAvailable,
    #[error("no replica of the partition is alive")]
    EligibleLeadersNotAvailable,
}

impl ElectionError {
    pub fn code(self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            Self::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
            Self::ElectionNotNeeded => E::ElectionNotNeeded.code(),
            Self::PreferredLeaderNotAvailable => E::PreferredLeaderNotAvailable.code(),
            Self::EligibleLeadersNotAvailable => E::EligibleLeadersNotAvailable.code(),
        }
    }
}

/// One partition's result.
pub type ElectionOutcome = ((String, i32), Result<(), ElectionError>);

/// The records an election writes, and each partition's result in request order.
pub fn elect(
    image: &MetadataImage,
    request: &ElectLeaders,
) -> (Vec<MetadataRecord>, Vec<ElectionOutcome>) {
    let every = request.partitions.is_none();
    let wanted: Vec<(String, i32)> = match &request.partitions {
        Some(list) => list.clone(),
        None => image
            .topics
            .iter()
            .flat_map(|(name, t)| (0..t.assignments.len() as i32).map(|p| (name.clone(), p)))
            .collect(),
    };
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(wanted.len());
    for (topic, partition) in wanted {
        let found = image
            .topics
            .get(&topic)
            .and_then(|t| t.assignments.get(usize::try_from(partition).ok()?));
        let result = match found {
            None => Err(ElectionError::UnknownTopicOrPartition),
            Some(p) => match choose(image, p, request.election) {
                Ok((leader, isr)) => {
                    records.push(MetadataRecord::PartitionChanged {
                        topic: topic.clone(),
                        partition,
                        leader,
                        leader_epoch: p.leader_epoch + 1,
                        isr,
                    });
                    Ok(())
                }
                Err(err) => Err(err),
            },
        };
        if every && result == Err(ElectionError::ElectionNotNeeded) {
            continue;
        }
        outcomes.push(((topic, partition), result));
    }
    (records, outcomes)
}

/// The new leader and ISR of one partition.
fn choose(
    image: &MetadataImage,
    p: &PartitionImage,
    election: ElectionType,
) -> Result<(i32, Vec<i32>), ElectionError> {
    let live = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
    match election {
        ElectionType::Preferred => {
            let preferred = *p
                .replicas
                .first()
                .ok_or(ElectionError::PreferredLeaderNotAvailable)?;
            if p.leader == preferred {
                Err(ElectionError::ElectionNotNeeded)
            } else if live(&preferred) && p.isr.contains(&preferred) {
                Ok((preferred, p.isr.clone()))
            } else {
                Err(ElectionError::PreferredLeaderNotAvailable)
            }
        }
        ElectionType::Unclean => {
            if p.leader != -1 {
                return Err(ElectionError::ElectionNotNeeded);
            }
            if let Some(clean) = p.replicas.iter().find(|r| p.isr.contains(r) && live(r)) {
                return Ok((*clean, p.isr.clone()));
            }
            match p.replicas.iter().find(|r| live(r)) {
                Some(unclean) => Ok((*unclean, vec![*unclean])),
                None => Err(ElectionError::EligibleLeadersNotAvailable),
            }
        }
    }
}

/// Kafka's automatic preferred-leader rebalance (`auto.leader.rebalance.enable`): for each
/// broker whose share of partitions it prefers but does not lead is above
/// `imbalance_percent`, a preferred election for those partitions (the ones it can take).
pub fn rebalance(image: &MetadataImage, imbalance_percent: u32) -> Vec<MetadataRecord> {
    let mut preferred: std::collections::BTreeMap<i32, (u32, Vec<(String, i32)>)> =
        std::collections::BTreeMap::new();
    for (name, topic) in &image.topics {
        for (index, p) in topic.assignments.iter().enumerate() {
            let Some(first) = p.replicas.first() else {
                continue;
            };
            let entry = preferred.entry(*first).or_default();
            entry.0 += 1;
            if p.leader != *first {
                entry.1.push((name.clone(), index as i32));
            }
        }
    }
    let partitions: Vec<(String, i32)> = preferred
        .into_values()
        .filter(|(total, off)| *total > 0 && off.len() as u32 * 100 > imbalance_percent * total)
        .flat_map(|(_, off)| off)
        .collect();
    if partitions.is_empty() {
        return Vec::new();
    }
    let request = ElectLeaders {
        election: ElectionType::Preferred,
        partitions: Some(partitions),
    };
    elect(image, &request).0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::actors::metadata::BrokerImage;

    /// An image with brokers 1..=count registered, those in `fenced` fenced, and topic
    /// `t` with one partition on `replicas`.
    pub(crate) fn with_brokers(count: i32, fenced: &[i32], replicas: Vec<i32>) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=count {
            image.brokers.insert(
                id,
                BrokerImage {
                    epoch: 1,
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    rack: None,
                    fenced: fenced.contains(&id),
                    listeners: Vec::new(),
                },
            );
        }
        image.apply(&MetadataRecord::TopicCreatedWithAssignments {
            name: "t".into(),
            id: 1,
            configs: Default::default(),
            assignments: vec![replicas],
        });
        image
    }

    fn image(leader: i32, isr: Vec<i32>, fenced: &[i32]) -> MetadataImage {
        let mut image = with_brokers(3, fenced, vec![1, 2, 3]);
        image.apply(&MetadataRecord::PartitionChanged {
            topic: "t".into(),
            partition: 0,
            leader,
            leader_epoch: 4,
            isr,
        });
        image
    }

    fn ask(election: ElectionType, partitions: Option<Vec<(String, i32)>>) -> ElectLeaders {
        ElectLeaders {
            election,
            partitions,
        }
    }

    /// t-0's change to `leader` and `isr` at the epoch after the test image's 4.
    fn epoch_5(leader: i32, isr: Vec<i32>) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            topic: "t".into(),
            partition: 0,
            leader,
            leader_epoch: 5,
            isr,
        }
    }

    fn one(election: ElectionType) -> ElectLeaders {
        ask(election, Some(vec![("t".into(), 0)]))
    }

    #[test]
    fn preferred_moves_leadership_to_the_first_replica_in_the_isr() {
        let (records, outcomes) =
            elect(&image(2, vec![1, 2, 3], &[]), &one(ElectionType::Preferred));
        assert_eq!(outcomes, vec![(("t".into(), 0), Ok(()))]);
        assert_eq!(records, vec![epoch_5(1, vec![1, 2, 3])]);
        let (records, outcomes) = elect(&image(2, vec![2, 3], &[]), &one(ElectionType::Preferred));
        assert!(records.is_empty());
        assert_eq!(
            outcomes[0].1,
            Err(ElectionError::PreferredLeaderNotAvailable)
        );
        assert_eq!(ElectionError::PreferredLeaderNotAvailable.code(), 80);
        let (_, outcomes) = elect(&image(2, vec![1, 2], &[1]), &one(ElectionType::Preferred));
        assert_eq!(
            outcomes[0].1,
            Err(ElectionError::PreferredLeaderNotAvailable)
        );
        let (_, outcomes) = elect(&image(1, vec![1, 2], &[]), &one(ElectionType::Preferred));
        assert_eq!(outcomes[0].1, Err(ElectionError::ElectionNotNeeded));
        // All partitions: the ones needing nothing are left out.
        let (records, outcomes) = elect(
            &image(1, vec![1, 2], &[]),
            &ask(ElectionType::Preferred, None),
        );
        assert!(records.is_empty() && outcomes.is_empty());
        let unknown = ask(ElectionType::Preferred, Some(vec![("t".into(), 1)]));
        let (_, outcomes) = elect(&image(1, vec![1], &[]), &unknown);
        assert_eq!(outcomes[0].1, Err(ElectionError::UnknownTopicOrPartition));
    }

    #[test]
    fn unclean_elects_only_where_there_is_no_leader() {
        let (_, outcomes) = elect(&image(2, vec![2], &[]), &one(ElectionType::Unclean));
        assert_eq!(outcomes[0].1, Err(ElectionError::ElectionNotNeeded));
        // The last ISR member (3) is fenced: the first live replica leads, alone in the ISR.
        let (records, outcomes) = elect(&image(-1, vec![3], &[3]), &one(ElectionType::Unclean));
        assert_eq!(outcomes[0].1, Ok(()));
        assert_eq!(records, vec![epoch_5(1, vec![1])]);
        let (records, outcomes) =
            elect(&image(-1, vec![3], &[1, 2, 3]), &one(ElectionType::Unclean));
        assert!(records.is_empty());
        assert_eq!(
            outcomes[0].1,
            Err(ElectionError::EligibleLeadersNotAvailable)
        );
    }

    #[test]
    fn rebalance_elects_preferred_leaders_past_the_imbalance() {
        assert_eq!(rebalance(&image(2, vec![1, 2, 3], &[]), 10).len(), 1);
        assert!(rebalance(&image(1, vec![1, 2, 3], &[]), 10).is_empty());
        // Broker 1 cannot take it back: not in the ISR.
        assert!(rebalance(&image(2, vec![2, 3], &[]), 10).is_empty());
    }
}
