//! The leader's view of its followers (a child module of `partition`): each follower's log
//! end offset as its fetches report it, when it was last caught up, and the ISR changes
//! that follow from that (Kafka's `Replica` and `Partition.maybeShrinkIsr/maybeExpandIsr`).
//! Pure bookkeeping: the actor sends the proposals to the controller and applies the ISR
//! it answers with.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The clock of follower lag (ms): monotonic, and tokio's, so a paused or simulated
/// clock (actor tests, the whole-cluster simulation) drives replica.lag.time.max.ms as
/// it drives the timers, and a wall-clock jump cannot drop or keep a follower.
pub fn lag_clock_ms() -> i64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    let now = tokio::time::Instant::now().into_std();
    // A paused clock may stand before the first reading: then the count is negative.
    match now.checked_duration_since(start) {
        Some(after) => after.as_millis() as i64,
        None => -(start.duration_since(now).as_millis() as i64),
    }
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    /// The follower's log end offset: the offset of its last fetch; -1 until it fetches.
    pub log_end_offset: i64,
    /// The last time the follower had everything the leader had (`lag_clock_ms`).
    pub last_caught_up_ms: i64,
    last_fetch_ms: i64,
    last_fetch_leader_log_end_offset: i64,
}

/// A leader's followers and its ISR, for one leader epoch.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub leader_epoch: i32,
    /// The partition epoch of the state `isr` comes from; ISR changes are asked at it.
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The ISR in force (as the controller last answered), the leader included.
    pub isr: Vec<i32>,
    pub followers: BTreeMap<i32, ReplicaState>,
    /// An ISR asked of the controller and not yet answered; not asked again meanwhile.
    pub proposed: Option<Vec<i32>>,
}

impl Leadership {
    /// A new leadership: every follower counts as caught up now, so none is dropped from
    /// the ISR before it had a chance to fetch (as Kafka does on a leader change).
    pub fn new(
        me: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        replicas: Vec<i32>,
        now_ms: i64,
    ) -> Leadership {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                let state = ReplicaState {
                    log_end_offset: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    last_fetch_leader_log_end_offset: -1,
                };
                (*r, state)
            })
            .collect();
        Leadership {
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
            followers,
            proposed: None,
        }
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at
    /// `leader_log_end_offset` (Kafka's `Replica.updateFetchState`).
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) {
        let Some(state) = self.followers.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_log_end_offset {
            state.last_caught_up_ms = state.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= state.last_fetch_leader_log_end_offset {
            state.last_caught_up_ms = state.last_caught_up_ms.max(state.last_fetch_ms);
        }
        state.log_end_offset = fetch_offset;
        state.last_fetch_leader_log_end_offset = leader_log_end_offset;
        state.last_fetch_ms = now_ms;
    }

    /// The smallest log end offset of the followers of the maximal ISR (None: the leader
    /// is alone); the high watermark is at most this. The maximal ISR (KIP-497) is the ISR
    /// in force with the members an unanswered expansion adds: the controller may commit
    /// that expansion at any time, and a member it adds must then hold everything below
    /// the high watermark, though it may have stopped fetching since it was proposed.
    pub fn isr_followers_min(&self) -> Option<i64> {
        let pending = self.proposed.iter().flatten();
        self.isr
            .iter()
            .chain(pending.filter(|r| !self.isr.contains(r)))
            .filter_map(|r| self.followers.get(r))
            .map(|s| s.log_end_offset)
            .min()
    }

    /// The ISR without followers not caught up for longer than `lag_max_ms`, when that
    /// drops anybody and nothing is already asked.
    pub fn shrink_proposal(&self, now_ms: i64, lag_max_ms: i64) -> Option<Vec<i32>> {
        if self.proposed.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            self.followers
                .get(r)
                .is_some_and(|s| now_ms.saturating_sub(s.last_caught_up_ms) > lag_max_ms)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        Some(self.isr.iter().copied().filter(|r| !lagging(r)).collect())
    }

    /// The ISR with `replica` added, when it is a follower outside the ISR that has
    /// reached the high watermark and this epoch's start (Kafka's isFollowerInSync).
    pub fn expand_proposal(
        &self,
        replica: i32,
        high_watermark: i64,
        epoch_start_offset: i64,
    ) -> Option<Vec<i32>> {
        if self.proposed.is_some() || self.isr.contains(&replica) {
            return None;
        }
        let state = self.followers.get(&replica)?;
        if state.log_end_offset < high_watermark || state.log_end_offset < epoch_start_offset {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(replica);
        isr.sort_unstable();
        Some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leadership() -> Leadership {
        Leadership::new(1, 3, 0, vec![1, 2, 3], vec![1, 2, 3], 1_000)
    }

    #[test]
    fn the_isr_minimum_counts_only_followers_in_the_isr() {
        let mut l = leadership();
        assert_eq!(l.isr_followers_min(), Some(-1), "nobody fetched yet");
        l.record_fetch(2, 10, 10, 1_100);
        l.record_fetch(3, 4, 10, 1_100);
        assert_eq!(l.isr_followers_min(), Some(4));
        l.isr = vec![1, 2];
        assert_eq!(l.isr_followers_min(), Some(10));
        l.isr = vec![1];
        assert_eq!(l.isr_followers_min(), None);
    }

    #[test]
    fn a_follower_proposed_for_the_isr_holds_the_high_watermark_until_answered() {
        // Seed 701 of cluster_sim: 3 reached the high watermark (13) and was proposed back;
        // its link to the leader broke, the leader went on to 18 with the ISR [1, 2], and
        // the controller then committed [1, 2, 3]: an ISR member without 13..18.
        let mut l = leadership();
        l.isr = vec![1, 2];
        l.record_fetch(2, 13, 13, 1_100);
        l.record_fetch(3, 13, 13, 1_100);
        l.proposed = l.expand_proposal(3, 13, 0);
        assert_eq!(l.proposed, Some(vec![1, 2, 3]));
        l.record_fetch(2, 18, 18, 1_200);
        assert_eq!(
            l.isr_followers_min(),
            Some(13),
            "3 may be in the ISR any time"
        );
        // A pending shrink leaves the ISR in force as it is until it is answered.
        l.isr = vec![1, 2, 3];
        l.proposed = Some(vec![1, 2]);
        assert_eq!(l.isr_followers_min(), Some(13));
    }

    #[test]
    fn a_follower_behind_for_longer_than_the_lag_time_is_dropped() {
        let mut l = leadership();
        l.record_fetch(2, 10, 10, 2_000);
        l.record_fetch(3, 5, 10, 2_000);
        assert_eq!(l.shrink_proposal(30_000, 30_000), None);
        l.record_fetch(2, 12, 12, 40_000);
        assert_eq!(l.shrink_proposal(40_000, 30_000), Some(vec![1, 2]));
        l.proposed = Some(vec![1, 2]);
        assert_eq!(
            l.shrink_proposal(40_000, 30_000),
            None,
            "one question at a time"
        );
    }

    #[test]
    fn a_follower_that_reached_what_the_leader_had_last_time_counts_as_caught_up() {
        let mut l = leadership();
        l.record_fetch(2, 5, 10, 10_000);
        // Fetches 10 while the leader is at 12: it had caught up as of its last fetch.
        l.record_fetch(2, 10, 12, 35_000);
        assert_eq!(l.followers[&2].last_caught_up_ms, 10_000);
        // At 39 s only 3 (never fetched) is behind by more than 30 s; 2 stays.
        assert_eq!(l.shrink_proposal(39_000, 30_000), Some(vec![1, 2]));
    }

    #[test]
    fn a_caught_up_follower_outside_the_isr_is_proposed_back() {
        let mut l = leadership();
        l.isr = vec![1, 2];
        l.record_fetch(3, 7, 10, 1_500);
        assert_eq!(l.expand_proposal(3, 8, 0), None, "below the high watermark");
        l.record_fetch(3, 9, 10, 1_600);
        assert_eq!(l.expand_proposal(3, 8, 0), Some(vec![1, 2, 3]));
        assert_eq!(
            l.expand_proposal(3, 8, 10),
            None,
            "below this epoch's start"
        );
        assert_eq!(l.expand_proposal(2, 8, 0), None, "already in");
    }
}
