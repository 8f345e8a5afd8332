//! Reconciliation of one consumer group member towards its target assignment (Kafka's
//! CurrentAssignmentBuilder, KIP-848): a partition leaves its old owner before it reaches a
//! new one. A member that must give partitions up keeps its epoch and is told only what it
//! keeps (UNREVOKED_PARTITIONS) until a heartbeat shows it no longer owns them; a member
//! whose new partitions are still owned by others takes the target epoch with what is
//! free (UNRELEASED_PARTITIONS) and gets the rest once their owners release them.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::assignors::Assignment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(&self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedPartitions => "UNREVOKED_PARTITIONS",
            MemberState::UnreleasedPartitions => "UNRELEASED_PARTITIONS",
        }
    }
}

/// Where a member stands: its epochs, what it may own now and what it must give up.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberAssignment {
    pub state: MemberState,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

impl MemberAssignment {
    /// A member that has just joined: epoch 0, nothing assigned.
    pub fn joining() -> MemberAssignment {
        MemberAssignment {
            state: MemberState::Stable,
            member_epoch: 0,
            previous_member_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }

    /// Every partition this member holds or has yet to give up.
    pub fn holds(&self, topic: Uuid, partition: i32) -> bool {
        let has = |a: &Assignment| a.get(&topic).is_some_and(|ps| ps.contains(&partition));
        has(&self.assigned) || has(&self.pending_revocation)
    }
}

/// The member's next state, given the group's target for it at `target_epoch`, the
/// partitions its heartbeat says it owns (None: not sent, so nothing is known to be
/// revoked), and whether a partition is still held by another member.
pub fn reconcile(
    current: &MemberAssignment,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_elsewhere: impl Fn(Uuid, i32) -> bool,
) -> MemberAssignment {
    match current.state {
        MemberState::Stable if current.member_epoch == target_epoch => current.clone(),
        MemberState::UnrevokedPartitions => {
            let revoked =
                owned.is_some_and(|owned| !intersects(owned, &current.pending_revocation));
            if revoked {
                next(current, target_epoch, target, held_elsewhere)
            } else {
                current.clone()
            }
        }
        _ => next(current, target_epoch, target, held_elsewhere),
    }
}

/// Kafka's computeNextAssignment.
fn next(
    current: &MemberAssignment,
    target_epoch: i32,
    target: &Assignment,
    held_elsewhere: impl Fn(Uuid, i32) -> bool,
) -> MemberAssignment {
    let mut kept = Assignment::new();
    let mut revoke = Assignment::new();
    let mut assigned = Assignment::new();
    let mut unreleased = false;
    for (topic, partitions) in &current.assigned {
        let wanted = target.get(topic);
        for p in partitions {
            if wanted.is_some_and(|w| w.contains(p)) {
                kept.entry(*topic).or_default().insert(*p);
            } else {
                revoke.entry(*topic).or_default().insert(*p);
            }
        }
    }
    for (topic, partitions) in target {
        let had = current.assigned.get(topic);
        for p in partitions {
            let new = !had.is_some_and(|h| h.contains(p));
            if new && held_elsewhere(*topic, *p) {
                unreleased = true;
            } else {
                assigned.entry(*topic).or_default().insert(*p);
            }
        }
    }
    if !revoke.is_empty() {
        return MemberAssignment {
            state: MemberState::UnrevokedPartitions,
            member_epoch: current.member_epoch,
            previous_member_epoch: current.previous_member_epoch,
            assigned: kept,
            pending_revocation: revoke,
        };
    }
    MemberAssignment {
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        member_epoch: target_epoch,
        previous_member_epoch: current.member_epoch,
        assigned,
        pending_revocation: Assignment::new(),
    }
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, ps)| {
        b.get(topic)
            .is_some_and(|other| !ps.is_disjoint(other as &BTreeSet<i32>))
    })
}

/// True when every partition of `a` is in `b` (Kafka accepts a heartbeat carrying the
/// previous epoch when what it owns is a subset of the current assignment).
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(topic, ps)| ps.is_empty() || b.get(topic).is_some_and(|other| ps.is_subset(other)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn t() -> Uuid {
        Uuid::from_u128(7)
    }

    fn parts(ps: &[i32]) -> Assignment {
        BTreeMap::from([(t(), ps.iter().copied().collect())])
    }

    fn none_elsewhere(_: Uuid, _: i32) -> bool {
        false
    }

    #[test]
    fn a_joining_member_takes_its_free_target_at_the_target_epoch() {
        let next = reconcile(
            &MemberAssignment::joining(),
            1,
            &parts(&[0, 1]),
            None,
            none_elsewhere,
        );
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!(next.member_epoch, 1);
        assert_eq!(next.assigned, parts(&[0, 1]));
    }

    #[test]
    fn partitions_are_revoked_first_and_the_epoch_waits_for_the_ack() {
        let stable = MemberAssignment {
            state: MemberState::Stable,
            member_epoch: 1,
            previous_member_epoch: 0,
            assigned: parts(&[0, 1, 2, 3]),
            pending_revocation: Assignment::new(),
        };
        let target = parts(&[0, 1]);
        let unrevoked = reconcile(
            &stable,
            2,
            &target,
            Some(&parts(&[0, 1, 2, 3])),
            none_elsewhere,
        );
        assert_eq!(unrevoked.state, MemberState::UnrevokedPartitions);
        assert_eq!(unrevoked.member_epoch, 1, "epoch held until revoked");
        assert_eq!(unrevoked.assigned, parts(&[0, 1]));
        assert_eq!(unrevoked.pending_revocation, parts(&[2, 3]));
        // Still owning 2: nothing moves. No owned list: nothing moves either.
        let still = reconcile(
            &unrevoked,
            2,
            &target,
            Some(&parts(&[0, 1, 2])),
            none_elsewhere,
        );
        assert_eq!(still, unrevoked);
        assert_eq!(
            reconcile(&unrevoked, 2, &target, None, none_elsewhere),
            unrevoked
        );
        // Acked: the member moves to epoch 2.
        let done = reconcile(
            &unrevoked,
            2,
            &target,
            Some(&parts(&[0, 1])),
            none_elsewhere,
        );
        assert_eq!(done.state, MemberState::Stable);
        assert_eq!(done.member_epoch, 2);
        assert_eq!(done.previous_member_epoch, 1);
        assert!(done.pending_revocation.is_empty());
    }

    #[test]
    fn a_partition_still_held_by_its_old_owner_is_unreleased_until_freed() {
        let joining = MemberAssignment::joining();
        let target = parts(&[2, 3]);
        let held = |_: Uuid, p: i32| p == 3;
        let unreleased = reconcile(&joining, 2, &target, Some(&Assignment::new()), held);
        assert_eq!(unreleased.state, MemberState::UnreleasedPartitions);
        assert_eq!(unreleased.member_epoch, 2);
        assert_eq!(unreleased.assigned, parts(&[2]));
        let freed = reconcile(&unreleased, 2, &target, Some(&parts(&[2])), none_elsewhere);
        assert_eq!(freed.state, MemberState::Stable);
        assert_eq!(freed.assigned, parts(&[2, 3]));
    }

    #[test]
    fn a_stable_member_at_the_target_epoch_is_left_alone() {
        let stable = MemberAssignment {
            state: MemberState::Stable,
            member_epoch: 3,
            previous_member_epoch: 2,
            assigned: parts(&[1]),
            pending_revocation: Assignment::new(),
        };
        assert_eq!(
            reconcile(&stable, 3, &parts(&[1, 2]), None, none_elsewhere),
            stable
        );
    }

    #[test]
    fn subset_accepts_empty_topics() {
        let mut a = parts(&[1]);
        a.insert(Uuid::from_u128(9), BTreeSet::new());
        assert!(is_subset(&a, &parts(&[1, 2])));
        assert!(!is_subset(&parts(&[3]), &parts(&[1, 2])));
    }
}
