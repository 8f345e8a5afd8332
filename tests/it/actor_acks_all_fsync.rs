//! A replicated leader under the `acks_all` flush policy answers an acks=all produce once
//! the ISR has it and an fsync covers it. A produce that arrives while an fsync is in
//! flight is not covered by it; the fsync's end must start the next one. Before, only
//! unreplicated appends started it, so such a produce waited for some later append (or
//! the client's retry, 30 s on): with every in-flight request of its producers waiting
//! like that, nothing more came and acknowledgements stopped for the request timeout.

use std::time::{Duration, Instant};

use broker::config::FlushPolicy;

use crate::actor_replication::{batch, fetch_round, follow, lead, produce_all, replica, role};

#[tokio::test]
async fn a_produce_that_arrives_during_an_fsync_gets_the_next_one() {
    let (l, _alter) = replica(1, 2, FlushPolicy::AcksAll).await;
    let (f2, _) = replica(2, 2, FlushPolicy::AcksAll).await;
    lead(&l, 1, &[1, 2], &[1, 2]).await;
    follow(&f2, 1, 1).await;

    l.storage.stall_syncs("t-0");
    let first = produce_all(&l, batch(1, "a"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while l.storage.stalled_syncs() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first produce's fsync never started"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The second produce is written while the first's fsync is in flight.
    let second = produce_all(&l, batch(1, "b"));
    assert_eq!(role(&l).await.log_end_offset, 2);
    // The follower has both: only the fsync holds the acknowledgements now.
    fetch_round(&l, &f2, 1).await;
    fetch_round(&l, &f2, 1).await;
    assert_eq!(role(&l).await.high_watermark, 2);

    l.storage.release_writes();
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first produce is answered once its fsync returns")
        .unwrap();
    assert_eq!(first.unwrap().last_offset, 0);
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second produce is answered by the next fsync, without another append")
        .unwrap();
    assert_eq!(second.unwrap().last_offset, 1);
}
