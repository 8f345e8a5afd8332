//! A replicated leader's group commit under the `acks_all` flush policy: an acks=all
//! produce that arrives while an fsync runs shares the next fsync, started as soon as the
//! running one returns, without waiting for another append or the flush interval.

use std::time::Duration;

use broker::config::FlushPolicy;
use tokio::time::Instant;

use crate::actor_replication::{batch, fetch_round, follow, lead, produce_all, replica, role};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_acks_all_produce_that_arrived_during_an_fsync_gets_the_next_one() {
    let (l, _alter) = replica(1, 2, FlushPolicy::AcksAll).await;
    let (f2, _) = replica(2, 2, FlushPolicy::AcksAll).await;
    lead(&l, 1, &[1, 2], &[1, 2]).await;
    follow(&f2, 1, 1).await;
    // The leader's first fsync hangs; a second produce arrives meanwhile.
    l.storage.stall_syncs(".log");
    let first = produce_all(&l, batch(2, "a"));
    let deadline = Instant::now() + WAIT;
    while l.storage.stalled_syncs() == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader never began its fsync"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = produce_all(&l, batch(3, "b"));
    // The follower has both batches and says so: only the leader's fsyncs are missing.
    fetch_round(&l, &f2, 1).await;
    fetch_round(&l, &f2, 1).await;
    assert_eq!(role(&l).await.high_watermark, 5);
    l.storage.release_writes();
    let first = tokio::time::timeout(WAIT, first)
        .await
        .expect("first answered");
    assert_eq!(first.unwrap().unwrap().last_offset, 1);
    // Nothing else reaches the leader: the fsync for the second must start by itself.
    let second = tokio::time::timeout(WAIT, second)
        .await
        .expect("the second produce waited for an fsync nobody started");
    assert_eq!(second.unwrap().unwrap().last_offset, 4);
}
