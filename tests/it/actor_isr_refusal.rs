//! A leader's ISR expansion that the controller refuses is no longer pending. While it
//! was, the maximal ISR (KIP-497) held the high watermark to the proposed follower's log
//! end; had the refusal never reached the partition (as before), a follower that stopped
//! fetching after it was proposed would have held acks=all produces for the rest of the
//! leader epoch.
//!
//! A change refused because the partition moved on since the state it was asked from
//! (INVALID_UPDATE_VERSION) stays pending until that newer state arrives, and the leader
//! asks again from it.

use std::time::Duration;

use broker::actors::partition::{IsrRefusal, ReplicationMsg};
use broker::config::FlushPolicy;

use crate::actor_partition::append;
use crate::actor_replication::{
    ask, batch, fetch_round, fetch_round_at, follow, lead, now, produce_all, replica,
    replica_fetch_at, role, send, LAG,
};

#[tokio::test]
async fn a_refused_expansion_stops_holding_the_high_watermark() {
    let (l, mut alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f2, _) = replica(2, 1, FlushPolicy::Interval).await;
    let (f3, _) = replica(3, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2], &[1, 2, 3]).await;
    follow(&f2, 1, 1).await;
    follow(&f3, 1, 1).await;
    append(&l.actor, batch(2, "a"), 1).await.unwrap();
    fetch_round(&l, &f2, 1).await;
    fetch_round(&l, &f2, 1).await;
    // f3 catches up to the high watermark (2): the leader asks for it back in the ISR.
    fetch_round(&l, &f3, 1).await;
    fetch_round(&l, &f3, 1).await;
    let expand = alter.try_recv().expect("an expansion is asked");
    assert_eq!(expand.new_isr, vec![1, 2, 3]);
    // f3 stops fetching. f2 takes a new batch, but the pending expansion holds the high
    // watermark at f3's log end: the controller may still commit it.
    let pending = produce_all(&l, batch(1, "b"));
    fetch_round(&l, &f2, 1).await;
    fetch_round(&l, &f2, 1).await;
    assert_eq!(role(&f2).await.log_end_offset, 3);
    assert_eq!(role(&l).await.high_watermark, 2);
    // A refusal of some other ISR changes nothing.
    send(
        &l,
        ReplicationMsg::IsrChangeRefused {
            leader_epoch: 1,
            partition_epoch: 0,
            new_isr: vec![1, 3],
            why: IsrRefusal::Refused,
        },
    );
    assert_eq!(role(&l).await.high_watermark, 2);
    // The controller refuses the expansion (f3 was fenced meanwhile, say): the ISR in
    // force, [1, 2], has the batch, so the high watermark moves and acks=all is answered.
    send(
        &l,
        ReplicationMsg::IsrChangeRefused {
            leader_epoch: 1,
            partition_epoch: 0,
            new_isr: vec![1, 2, 3],
            why: IsrRefusal::Refused,
        },
    );
    let out = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("answered once the refusal arrives")
        .unwrap();
    assert_eq!(out.unwrap().last_offset, 2);
    assert_eq!(role(&l).await.high_watermark, 3);
}

/// The leader of cluster_sim seed 588, cut off from the controller: it asked to drop the
/// lagging 3 from the ISR [1, 2, 3] it knew, while the controller had already taken 2 out
/// (a restart with an empty log fenced it) and unfenced it again: the partition was at
/// the next partition epoch with the ISR [1, 3]. The controller refuses the change as
/// asked from an older state. The leader neither asks it again nor anything else until
/// the new state arrives; then it asks again from that state, and leaves out 2, which
/// has not caught up.
#[tokio::test]
async fn a_change_refused_for_a_newer_partition_state_is_asked_again_from_that_state() {
    let (l, mut alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f2, _) = replica(2, 1, FlushPolicy::Interval).await;
    let (f3, _) = replica(3, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2, 3], &[1, 2, 3]).await;
    follow(&f2, 1, 1).await;
    follow(&f3, 1, 1).await;
    let lag = LAG.as_millis() as i64;
    let start = now();
    append(&l.actor, batch(2, "a"), 1).await.unwrap();
    // Both take the batch (the high watermark is 2); 3 stops there, 2 fetches on.
    for (follower, at) in [(&f3, start), (&f2, start + lag * 2 / 3)] {
        fetch_round_at(&l, follower, 1, at).await;
        fetch_round_at(&l, follower, 1, at).await;
    }
    assert_eq!(role(&l).await.high_watermark, 2);
    let check_isr = |at: i64| {
        ask(&l, move |reply| ReplicationMsg::CheckIsr {
            now_ms: at,
            reply: Some(reply),
        })
    };
    // 3 lags by more than the lag time: the leader asks to drop it, at partition epoch 0.
    let later = start + lag * 4 / 3;
    let shrink = check_isr(later).await.expect("a shrink is asked");
    assert_eq!(
        (shrink.new_isr.clone(), shrink.partition_epoch),
        (vec![1, 2], 0)
    );
    assert_eq!(alter.try_recv().unwrap(), shrink);
    send(
        &l,
        ReplicationMsg::IsrChangeRefused {
            leader_epoch: 1,
            partition_epoch: 0,
            new_isr: vec![1, 2],
            why: IsrRefusal::NewerPartitionState,
        },
    );
    // Still pending: the stale change is not asked again, however long 3 lags.
    assert_eq!(check_isr(later + lag).await, None);
    assert!(alter.try_recv().is_err(), "nothing asked");
    // The new state: 2 out of the ISR, partition epoch 1. 2 came back with an empty log
    // and fetches from 0, below the high watermark: it is not asked back in.
    send(
        &l,
        ReplicationMsg::UpdateIsr {
            leader_epoch: 1,
            partition_epoch: 1,
            isr: vec![1, 3],
        },
    );
    let view = role(&l).await;
    assert_eq!((view.isr, view.partition_epoch), (vec![1, 3], 1));
    replica_fetch_at(&l, 2, 0, 1, later + lag).await.unwrap();
    let asked = alter.try_recv();
    assert!(asked.is_err(), "2 is not asked back: {asked:?}");
    // From the new state the leader asks again: 3 still lags.
    let again = check_isr(later + lag).await.expect("asked again");
    assert_eq!((again.new_isr.clone(), again.partition_epoch), (vec![1], 1));
    assert_eq!(alter.try_recv().unwrap(), again);
    // A refusal of a change asked from the older state leaves this one pending.
    send(
        &l,
        ReplicationMsg::IsrChangeRefused {
            leader_epoch: 1,
            partition_epoch: 0,
            new_isr: vec![1],
            why: IsrRefusal::Refused,
        },
    );
    assert_eq!(check_isr(later + 2 * lag).await, None);
}
