//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` and
//! `range`, as Kafka's `group.consumer.assignors` names them. An assignor maps each member
//! to the partitions of the topics it subscribes to; the group coordinator then moves the
//! members towards that target (revoking before reassigning, see `current_assignment`).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignor names this broker knows, in Kafka's default order.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor is told of a member: the topics it subscribes to and what it was
/// assigned by the previous target assignment (the uniform assignor is sticky).
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    pub subscribed: BTreeSet<Uuid>,
    pub current: Assignment,
}

/// Runs the named assignor over `members` and `topics` (topic id -> partition count).
/// An unknown name runs `uniform` (names are checked when a member asks for one).
pub fn assign(
    assignor: &str,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Kafka's UniformAssignor: every partition of a subscribed topic to exactly one member,
/// balanced so that no partition could move to a member subscribed to its topic that holds
/// two fewer partitions than its owner, and sticky: a member keeps what it had where that
/// keeps the balance.
pub fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut owned: BTreeMap<&str, BTreeSet<(Uuid, i32)>> = members
        .keys()
        .map(|m| (m.as_str(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    // Subscribers of each topic, in member id order.
    let mut subscribers: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    for (id, spec) in members {
        for topic in &spec.subscribed {
            if topics.contains_key(topic) {
                subscribers.entry(*topic).or_default().push(id.as_str());
            }
        }
    }
    // Sticky: what each member had, where it still subscribes and the partition exists.
    for (id, spec) in members {
        for (topic, partitions) in &spec.current {
            let Some(count) = topics.get(topic) else {
                continue;
            };
            if !spec.subscribed.contains(topic) {
                continue;
            }
            for p in partitions.iter().filter(|p| **p < *count) {
                if taken.insert((*topic, *p)) {
                    owned.entry(id.as_str()).or_default().insert((*topic, *p));
                }
            }
        }
    }
    // The rest, each to the least loaded subscriber.
    for (topic, count) in topics {
        let Some(subs) = subscribers.get(topic) else {
            continue;
        };
        for p in 0..*count {
            if taken.contains(&(*topic, p)) {
                continue;
            }
            if let Some(member) = subs.iter().min_by_key(|m| owned[**m].len()) {
                owned.entry(member).or_default().insert((*topic, p));
                taken.insert((*topic, p));
            }
        }
    }
    balance(&mut owned, &subscribers);
    owned
        .into_iter()
        .map(|(member, set)| (member.to_string(), to_assignment(set)))
        .collect()
}

/// Moves partitions from the most loaded members to less loaded subscribers of their topic
/// until no move would narrow a gap of two or more. Each move lowers the sum of squared
/// loads, so this ends.
fn balance(
    owned: &mut BTreeMap<&str, BTreeSet<(Uuid, i32)>>,
    subscribers: &BTreeMap<Uuid, Vec<&str>>,
) {
    loop {
        let mut donors: Vec<(&str, usize)> = owned.iter().map(|(m, s)| (*m, s.len())).collect();
        donors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut chosen = None;
        'donors: for (donor, load) in donors {
            if load < 2 {
                break;
            }
            for tp in owned[donor].iter().rev() {
                let receiver = subscribers.get(&tp.0).and_then(|subs| {
                    subs.iter()
                        .filter(|m| **m != donor)
                        .min_by_key(|m| owned[**m].len())
                });
                if let Some(receiver) = receiver {
                    if owned[*receiver].len() + 2 <= load {
                        chosen = Some((donor, *receiver, *tp));
                        break 'donors;
                    }
                }
            }
        }
        let Some((donor, receiver, tp)) = chosen else {
            return;
        };
        if let Some(set) = owned.get_mut(donor) {
            set.remove(&tp);
        }
        if let Some(set) = owned.get_mut(receiver) {
            set.insert(tp);
        }
    }
}

/// Kafka's RangeAssignor: per topic, its subscribers in member id order each take a
/// contiguous range of partitions, the first `partitions % subscribers` one more.
pub fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (topic, count) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, spec)| spec.subscribed.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() || *count <= 0 {
            continue;
        }
        let n = subs.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut start = 0;
        for (i, member) in subs.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                let entry = result.entry(member.clone()).or_default();
                entry.insert(*topic, (start..start + len).collect());
            }
            start += len;
        }
    }
    result
}

fn to_assignment(set: BTreeSet<(Uuid, i32)>) -> Assignment {
    let mut out = Assignment::new();
    for (topic, p) in set {
        out.entry(topic).or_default().insert(p);
    }
    out
}

/// Partitions in an assignment.
pub fn partition_count(a: &Assignment) -> usize {
    a.values().map(|s| s.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn members(specs: &[(&str, &[Uuid])]) -> BTreeMap<String, MemberSpec> {
        specs
            .iter()
            .map(|(id, subs)| {
                let spec = MemberSpec {
                    subscribed: subs.iter().copied().collect(),
                    current: Assignment::new(),
                };
                (id.to_string(), spec)
            })
            .collect()
    }

    /// Every partition of the subscribed topics exactly once, each to a subscriber.
    fn check_exactly_once(
        result: &BTreeMap<String, Assignment>,
        specs: &BTreeMap<String, MemberSpec>,
        topics: &BTreeMap<Uuid, i32>,
    ) {
        let mut seen = BTreeSet::new();
        for (member, assignment) in result {
            for (t, ps) in assignment {
                assert!(specs[member].subscribed.contains(t), "{member} got {t}");
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} twice");
                }
            }
        }
        for (t, n) in topics {
            if specs.values().any(|s| s.subscribed.contains(t)) {
                for p in 0..*n {
                    assert!(seen.contains(&(*t, p)), "{t}-{p} unassigned");
                }
            }
        }
    }

    #[test]
    fn uniform_splits_twelve_partitions_evenly_then_moves_only_what_it_must() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 12)]);
        let mut specs = members(&[("a", &[t]), ("b", &[t])]);
        let first = uniform(&specs, &topics);
        check_exactly_once(&first, &specs, &topics);
        assert_eq!(partition_count(&first["a"]), 6);
        assert_eq!(partition_count(&first["b"]), 6);
        // A third member: each old member gives up two, keeps four.
        for (id, a) in &first {
            specs.get_mut(id).unwrap().current = a.clone();
        }
        specs.insert(
            "c".into(),
            MemberSpec {
                subscribed: [t].into(),
                current: Assignment::new(),
            },
        );
        let second = uniform(&specs, &topics);
        check_exactly_once(&second, &specs, &topics);
        for id in ["a", "b", "c"] {
            assert_eq!(partition_count(&second[id]), 4, "{id}");
        }
        for id in ["a", "b"] {
            assert!(
                second[id][&t].is_subset(&first[id][&t]),
                "{id} kept its own"
            );
        }
    }

    #[test]
    fn uniform_balances_heterogeneous_subscriptions_within_each_topic() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 6), (t2, 2)]);
        let specs = members(&[("a", &[t1, t2]), ("b", &[t1]), ("c", &[t2])]);
        let result = uniform(&specs, &topics);
        check_exactly_once(&result, &specs, &topics);
        let loads: Vec<usize> = ["a", "b", "c"]
            .iter()
            .map(|m| result.get(*m).map_or(0, partition_count))
            .collect();
        // 8 partitions; c can only take t2's two.
        assert_eq!(loads.iter().sum::<usize>(), 8);
        assert!(loads[0].abs_diff(loads[1]) <= 1, "{loads:?}");
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_or_deleted_topics() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 2)]);
        let mut specs = members(&[("a", &[t1])]);
        specs.get_mut("a").unwrap().current =
            BTreeMap::from([(t1, BTreeSet::from([0, 1, 5])), (t2, BTreeSet::from([0]))]);
        let result = uniform(&specs, &topics);
        assert_eq!(result["a"], BTreeMap::from([(t1, BTreeSet::from([0, 1]))]));
    }

    #[test]
    fn uniform_with_more_members_than_partitions_leaves_some_empty() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 2)]);
        let specs = members(&[("a", &[t]), ("b", &[t]), ("c", &[t])]);
        let result = uniform(&specs, &topics);
        check_exactly_once(&result, &specs, &topics);
        let total: usize = result.values().map(partition_count).sum();
        assert_eq!(total, 2);
        assert!(result.values().all(|a| partition_count(a) <= 1));
    }

    #[test]
    fn range_gives_contiguous_ranges_the_first_members_one_more() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 7), (t2, 2)]);
        let specs = members(&[("a", &[t1, t2]), ("b", &[t1, t2]), ("c", &[t1])]);
        let result = range(&specs, &topics);
        check_exactly_once(&result, &specs, &topics);
        assert_eq!(result["a"][&t1], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&t1], BTreeSet::from([3, 4]));
        assert_eq!(result["c"][&t1], BTreeSet::from([5, 6]));
        assert_eq!(result["a"][&t2], BTreeSet::from([0]));
        assert_eq!(result["b"][&t2], BTreeSet::from([1]));
        assert!(!result["c"].contains_key(&t2));
    }

    #[test]
    fn assign_picks_by_name() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 4)]);
        let specs = members(&[("a", &[t]), ("b", &[t])]);
        assert_eq!(assign("range", &specs, &topics), range(&specs, &topics));
        assert_eq!(assign("uniform", &specs, &topics), uniform(&specs, &topics));
    }
}
