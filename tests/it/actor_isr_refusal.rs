//! A leader's ISR expansion that the controller refuses is no longer pending. While it
//! was, the maximal ISR (KIP-497) held the high watermark to the proposed follower's log
//! end; had the refusal never reached the partition (as before), a follower that stopped
//! fetching after it was proposed would have held acks=all produces for the rest of the
//! leader epoch.

use std::time::Duration;

use broker::actors::partition::ReplicationMsg;
use broker::config::FlushPolicy;

use crate::actor_partition::append;
use crate::actor_replication::{
    batch, fetch_round, follow, lead, produce_all, replica, role, send,
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
            new_isr: vec![1, 3],
        },
    );
    assert_eq!(role(&l).await.high_watermark, 2);
    // The controller refuses the expansion (f3 was fenced meanwhile, say): the ISR in
    // force, [1, 2], has the batch, so the high watermark moves and acks=all is answered.
    send(
        &l,
        ReplicationMsg::IsrChangeRefused {
            leader_epoch: 1,
            new_isr: vec![1, 2, 3],
        },
    );
    let out = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("answered once the refusal arrives")
        .unwrap();
    assert_eq!(out.unwrap().last_offset, 2);
    assert_eq!(role(&l).await.high_watermark, 3);
}
