//! Replica placement for CreateTopics and CreatePartitions, as Kafka's: partition `p`'s
//! replicas are `rf` consecutive brokers starting at `p` (plus a start offset) in a broker
//! list, so leaders spread round-robin. When brokers have racks the list alternates racks
//! (r1, r2, r3, r1, ...), so a partition's replicas land on as many racks as exist.

use std::collections::BTreeMap;

use crate::error::MetadataError;

/// Brokers in placement order: by id, alternating racks where any broker has one.
pub fn placement_order(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    let mut sorted = brokers.to_vec();
    sorted.sort();
    if sorted.iter().all(|(_, rack)| rack.is_none()) {
        return sorted.into_iter().map(|(id, _)| id).collect();
    }
    for (id, rack) in &sorted {
        by_rack
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    let mut order = Vec::with_capacity(sorted.len());
    let mut round = 0;
    while order.len() < sorted.len() {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                order.push(*id);
            }
        }
        round += 1;
    }
    order
}

/// Replicas for `count` partitions numbered from `first`, `replication_factor` each, over
/// the unfenced `brokers`.
pub fn place(
    brokers: &[(i32, Option<String>)],
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let order = placement_order(brokers);
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > order.len() {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "replication factor {replication_factor} is not between 1 and the {} available brokers",
            order.len()
        )));
    }
    let n = order.len();
    let racks = brokers.iter().any(|(_, rack)| rack.is_some());
    Ok((first..first + count)
        .map(|p| {
            let start = usize::try_from(p).unwrap_or(0);
            // Without racks followers shift by one more per full round, as Kafka's, so
            // that follower sets differ between partitions with the same leader; with
            // racks they stay the next brokers of the rack-alternating order.
            let shift = if racks {
                1
            } else {
                1 + (start / n) % (n - 1).max(1)
            };
            (0..rf)
                .map(|k| {
                    let offset = if k == 0 {
                        0
                    } else {
                        1 + (shift - 1 + k - 1) % (n - 1).max(1)
                    };
                    order[(start + offset) % n]
                })
                .collect()
        })
        .collect())
}

/// Checks explicit assignments as Kafka's controller does: no empty replica list, no
/// broker twice, every broker one of `brokers`, and the same number of replicas for every
/// partition (`replication_factor` when the topic already has one: CreatePartitions).
pub fn check_assignments(
    assignments: &[Vec<i32>],
    brokers: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), MetadataError> {
    let invalid = |why: String| Err(MetadataError::InvalidReplicaAssignment(why));
    if assignments.is_empty() {
        return invalid("no partitions were assigned".into());
    }
    let mut rf = replication_factor;
    for (index, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!(
                "the manual partition assignment of partition {index} is an empty replica list"
            ));
        }
        for (at, id) in replicas.iter().enumerate() {
            if replicas[..at].contains(id) {
                return invalid(format!(
                    "the manual partition assignment includes the broker {id} more than once"
                ));
            }
            if !brokers.contains(id) {
                return invalid(format!(
                    "the manual partition assignment includes broker {id}, but no such \
                     broker is registered and unfenced"
                ));
            }
        }
        match rf {
            Some(rf) if rf != replicas.len() => {
                return invalid(format!(
                    "the manual partition assignment includes a partition with {} \
                     replica(s), but this is inconsistent with previous partitions, which \
                     have {rf} replica(s)",
                    replicas.len()
                ))
            }
            _ => rf = Some(replicas.len()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<(i32, Option<String>)> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i32 + 1, r.map(String::from)))
            .collect()
    }

    #[test]
    fn leaders_spread_round_robin_with_distinct_replicas() {
        let placed = place(&brokers(&[None, None, None]), 0, 6, 3).unwrap();
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        for replicas in &placed {
            let mut sorted = replicas.clone();
            sorted.sort();
            assert_eq!(sorted, vec![1, 2, 3]);
        }
        let two = place(&brokers(&[None, None, None, None]), 0, 4, 2).unwrap();
        assert!(two.iter().all(|r| r.len() == 2 && r[0] != r[1]), "{two:?}");
    }

    #[test]
    fn too_few_brokers_is_an_invalid_replication_factor() {
        let err = place(&brokers(&[None, None]), 0, 1, 3).unwrap_err();
        assert!(matches!(err, MetadataError::InvalidReplicationFactor(_)));
        assert_eq!(err.code(), 38);
        assert!(place(&brokers(&[None]), 0, 1, 0).is_err());
    }

    #[test]
    fn replicas_alternate_racks() {
        // Brokers 1 and 2 in rack a, 3 and 4 in rack b.
        let racks = brokers(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        assert_eq!(placement_order(&racks), vec![1, 3, 2, 4]);
        for replicas in place(&racks, 0, 8, 2).unwrap() {
            let rack = |id: i32| racks[(id - 1) as usize].1.clone();
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{replicas:?}");
        }
    }

    #[test]
    fn explicit_assignments_are_checked() {
        check_assignments(&[vec![1, 2], vec![2, 3]], &[1, 2, 3], None).unwrap();
        check_assignments(&[vec![3, 1]], &[1, 2, 3], Some(2)).unwrap();
        assert!(check_assignments(&[vec![1, 2], vec![2]], &[1, 2, 3], None).is_err());
        assert!(check_assignments(&[vec![1, 1]], &[1, 2], None).is_err());
        assert!(check_assignments(&[vec![1, 9]], &[1, 2], None).is_err());
        assert!(check_assignments(&[vec![]], &[1, 2], None).is_err());
        assert!(check_assignments(&[vec![1]], &[1, 2], Some(2)).is_err());
        assert!(check_assignments(&[], &[1], None).is_err());
    }
}
