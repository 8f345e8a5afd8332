//! Replicated partitions driven directly: a leader and followers as partition actors in
//! one process, over simulated disks, wired by a test fetcher that does what the replica
//! fetcher does (follower fetch from the leader, append as follower, KIP-279 truncation).
//! No controller: the test plays it, sending roles and answering ISR changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use broker::actors::call;
use broker::actors::partition::{
    AlterPartitionRequest, AppendOutcome, FollowerOffsets, LeaderCheck, PartitionArgs,
    PartitionMsg, ReplicaArgs, ReplicaReadOutcome, ReplicationMsg, RoleView,
};
use broker::config::FlushPolicy;
use broker::error::PartitionError;
use broker::storage::batch::BatchHeader;
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;
use bytes::Bytes;
use ractor::ActorRef;
use tokio::sync::{mpsc, oneshot};

use crate::actor_partition::{append, args, spawn};

const WAIT: Duration = Duration::from_secs(10);
pub(crate) const LAG: Duration = Duration::from_secs(30);

pub(crate) struct Replica {
    pub(crate) id: i32,
    pub(crate) actor: ActorRef<PartitionMsg>,
    pub(crate) storage: SimStorage,
}

/// A replicated partition on broker `id`, with min.insync.replicas `min_isr`.
pub(crate) async fn replica(
    id: i32,
    min_isr: i32,
    policy: FlushPolicy,
) -> (Replica, mpsc::Receiver<AlterPartitionRequest>) {
    let storage = SimStorage::new();
    let (tx, rx) = mpsc::channel(16);
    let mut a: PartitionArgs = args(Arc::new(storage.clone()), PathBuf::from("/d/t-0"), policy);
    a.replica = Some(ReplicaArgs {
        broker_id: id,
        min_insync_replicas: min_isr,
        replica_lag_time_max: LAG,
        alter_partition: tx,
    });
    let actor = spawn(a).await;
    (Replica { id, actor, storage }, rx)
}

pub(crate) async fn ask<T: Send + 'static>(
    r: &Replica,
    build: impl FnOnce(ractor::RpcReplyPort<T>) -> ReplicationMsg,
) -> T {
    call(
        &r.actor,
        |reply| PartitionMsg::Replication(build(reply)),
        WAIT,
    )
    .await
    .expect("the partition answers")
}

pub(crate) fn send(r: &Replica, msg: ReplicationMsg) {
    r.actor
        .send_message(PartitionMsg::Replication(msg))
        .expect("alive");
}

pub(crate) async fn role(r: &Replica) -> RoleView {
    ask(r, |reply| ReplicationMsg::DescribeRole { reply }).await
}

pub(crate) async fn lead(r: &Replica, epoch: i32, isr: &[i32], replicas: &[i32]) {
    send(
        r,
        ReplicationMsg::BecomeLeader {
            leader_epoch: epoch,
            partition_epoch: 0,
            isr: isr.to_vec(),
            replicas: replicas.to_vec(),
        },
    );
    assert_eq!(role(r).await.leader_epoch, epoch);
}

pub(crate) async fn follow(r: &Replica, leader: i32, epoch: i32) {
    send(
        r,
        ReplicationMsg::BecomeFollower {
            leader,
            leader_epoch: epoch,
        },
    );
    assert_eq!(role(r).await.leader, Some(leader));
}

pub(crate) fn batch(n: usize, tag: &str) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    Bytes::from(build_batch(&records, 1_700_000_000_000))
}

pub(crate) fn now() -> i64 {
    broker::actors::partition::lag_clock_ms()
}

async fn replica_fetch(
    leader: &Replica,
    replica_id: i32,
    fetch_offset: i64,
    epoch: i32,
) -> Result<ReplicaReadOutcome, PartitionError> {
    replica_fetch_at(leader, replica_id, fetch_offset, epoch, now()).await
}

pub(crate) async fn replica_fetch_at(
    leader: &Replica,
    replica_id: i32,
    fetch_offset: i64,
    epoch: i32,
    now_ms: i64,
) -> Result<ReplicaReadOutcome, PartitionError> {
    ask(leader, |reply| ReplicationMsg::ReplicaFetch {
        replica_id,
        fetch_offset,
        current_leader_epoch: epoch,
        max_bytes: 1 << 20,
        now_ms,
        on_append: None,
        reply,
    })
    .await
}

/// One round of the fetcher for `follower`: KIP-279 truncation when asked, then a fetch
/// from its log end and an append of what came back. Returns the follower's offsets.
pub(crate) async fn fetch_round(
    leader: &Replica,
    follower: &Replica,
    epoch: i32,
) -> FollowerOffsets {
    fetch_round_at(leader, follower, epoch, now()).await
}

pub(crate) async fn fetch_round_at(
    leader: &Replica,
    follower: &Replica,
    epoch: i32,
    now_ms: i64,
) -> FollowerOffsets {
    let me = role(follower).await;
    let fetched =
        match replica_fetch_at(leader, follower.id, me.log_end_offset, epoch, now_ms).await {
            Ok(fetched) => fetched,
            Err(PartitionError::OffsetOutOfRange) => {
                // Below the leader's log start: start over there.
                let start = role(leader).await.log_start_offset;
                truncate(follower, start, true).await;
                replica_fetch(leader, follower.id, start, epoch)
                    .await
                    .expect("fetch from the log start")
            }
            Err(err) => panic!("follower fetch: {err}"),
        };
    ask(follower, |reply| ReplicationMsg::AppendAsFollower {
        records: fetched.records,
        leader_epoch: epoch,
        leader_high_watermark: fetched.high_watermark,
        reply,
    })
    .await
    .expect("append as follower")
}

async fn truncate(follower: &Replica, offset: i64, fully: bool) -> FollowerOffsets {
    ask(follower, |reply| ReplicationMsg::TruncateTo {
        offset,
        fully,
        reply,
    })
    .await
    .expect("truncate")
}

/// KIP-279: the follower asks where its latest epoch ends at the leader and cuts there.
async fn truncate_to_leader(leader: &Replica, follower: &Replica, epoch: i32) {
    let latest = role(follower).await.latest_epoch;
    let (_, end) = ask(leader, |reply| ReplicationMsg::EndOffsetForEpoch {
        current_leader_epoch: epoch,
        leader_epoch: latest,
        reply,
    })
    .await
    .expect("offset for leader epoch");
    let own = role(follower).await.log_end_offset;
    if end >= 0 && end < own {
        truncate(follower, end, false).await;
    }
}

/// Sends an acks=all produce and returns its pending answer.
pub(crate) fn produce_all(
    leader: &Replica,
    records: Bytes,
) -> oneshot::Receiver<Result<AppendOutcome, PartitionError>> {
    let (tx, rx) = oneshot::channel();
    leader
        .actor
        .send_message(PartitionMsg::Append {
            records,
            acks: -1,
            reply: tx.into(),
        })
        .expect("alive");
    rx
}

/// Whole batches of a replica's log: (base offset, leader epoch, bytes), read from the
/// files (the partition's own reads stop at the high watermark).
pub(crate) fn log_batches(r: &Replica) -> Vec<(i64, i32, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = r
        .storage
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let bytes = r.storage.file_contents(&path).unwrap_or_default();
        let mut pos = 0;
        while pos + 61 <= bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).unwrap();
            let end = pos + h.total_size();
            out.push((
                h.base_offset,
                h.partition_leader_epoch,
                bytes[pos..end].to_vec(),
            ));
            pos = end;
        }
    }
    out
}

/// Three replicas of one partition: 1 leads at `epoch`, 2 and 3 follow.
async fn trio(
    min_isr: i32,
) -> (
    Replica,
    Replica,
    Replica,
    mpsc::Receiver<AlterPartitionRequest>,
) {
    let (l, alter) = replica(1, min_isr, FlushPolicy::Interval).await;
    let (f2, _) = replica(2, min_isr, FlushPolicy::Interval).await;
    let (f3, _) = replica(3, min_isr, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2, 3], &[1, 2, 3]).await;
    follow(&f2, 1, 1).await;
    follow(&f3, 1, 1).await;
    (l, f2, f3, alter)
}

#[tokio::test]
async fn a_single_node_partition_refuses_replication_messages() {
    let storage = SimStorage::new();
    let p = spawn(args(
        Arc::new(storage),
        PathBuf::from("/d/t-0"),
        FlushPolicy::Interval,
    ))
    .await;
    let fetched = call(
        &p,
        |reply| {
            PartitionMsg::Replication(ReplicationMsg::ReplicaFetch {
                replica_id: 2,
                fetch_offset: 0,
                current_leader_epoch: -1,
                max_bytes: 1024,
                now_ms: 0,
                on_append: None,
                reply,
            })
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(fetched.unwrap_err(), PartitionError::NotAvailable);
    let out = append(&p, batch(2, "a"), -1)
        .await
        .expect("acks=all as before");
    assert_eq!(out.last_offset, 1);
}

#[tokio::test]
async fn followers_copy_the_leaders_batches_with_its_offsets_and_epoch() {
    let (l, f2, _f3, _) = trio(1).await;
    lead(&l, 5, &[1, 2, 3], &[1, 2, 3]).await;
    follow(&f2, 1, 5).await;
    append(&l.actor, batch(3, "a"), 1).await.unwrap();
    append(&l.actor, batch(2, "b"), 1).await.unwrap();
    let offsets = fetch_round(&l, &f2, 5).await;
    assert_eq!(offsets.log_end_offset, 5);
    let leader_log = log_batches(&l);
    assert_eq!(log_batches(&f2), leader_log, "byte for byte the leader's");
    assert!(
        leader_log.iter().all(|(_, epoch, _)| *epoch == 5),
        "stamped"
    );
    assert_eq!(role(&f2).await.latest_epoch, 5);
}

#[tokio::test]
async fn acks_all_is_answered_once_every_isr_member_has_the_batch() {
    let (l, f2, f3, _) = trio(2).await;
    let mut pending = produce_all(&l, batch(2, "a"));
    fetch_round(&l, &f2, 1).await; // f2 gets the batch
    fetch_round(&l, &f2, 1).await; // and tells the leader it has it
    assert!(pending.try_recv().is_err(), "f3 has not fetched it yet");
    assert_eq!(role(&l).await.high_watermark, 0);
    fetch_round(&l, &f3, 1).await;
    fetch_round(&l, &f3, 1).await;
    let out = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(out.unwrap().last_offset, 1);
    assert_eq!(role(&l).await.high_watermark, 2);
}

#[tokio::test]
async fn the_high_watermark_is_the_smallest_log_end_offset_of_the_isr() {
    let (l, f2, f3, _) = trio(1).await;
    append(&l.actor, batch(4, "a"), 1).await.unwrap();
    fetch_round(&l, &f2, 1).await;
    fetch_round(&l, &f3, 1).await;
    fetch_round(&l, &f3, 1).await; // the leader learns f3 has 4
    append(&l.actor, batch(4, "b"), 1).await.unwrap();
    fetch_round(&l, &f2, 1).await;
    fetch_round(&l, &f2, 1).await;
    let view = role(&l).await;
    assert_eq!(view.log_end_offset, 8);
    assert_eq!(
        view.followers
            .iter()
            .map(|f| f.1.log_end_offset)
            .collect::<Vec<_>>(),
        vec![8, 4]
    );
    assert_eq!(view.high_watermark, 4, "f3 is at 4");
    // Followers learn the leader's high watermark with their next fetch.
    let f3_offsets = fetch_round(&l, &f3, 1).await;
    assert_eq!(f3_offsets.high_watermark, 4);
    fetch_round(&l, &f3, 1).await;
    assert_eq!(role(&l).await.high_watermark, 8);
}

#[tokio::test]
async fn acks_all_below_min_insync_replicas_is_not_enough_replicas_and_nothing_is_appended() {
    let (l, _alter) = replica(1, 2, FlushPolicy::Interval).await;
    lead(&l, 1, &[1], &[1, 2]).await;
    let refused = append(&l.actor, batch(1, "a"), -1).await;
    assert_eq!(refused.unwrap_err(), PartitionError::NotEnoughReplicas);
    assert_eq!(role(&l).await.log_end_offset, 0, "nothing appended");
    assert_eq!(
        append(&l.actor, batch(1, "a"), 1)
            .await
            .unwrap()
            .last_offset,
        0,
        "acks=1 is served"
    );
    send(
        &l,
        ReplicationMsg::UpdateMinInsyncReplicas {
            min_insync_replicas: 1,
        },
    );
    let taken = append(&l.actor, batch(1, "b"), -1).await;
    assert_eq!(
        taken.unwrap().last_offset,
        1,
        "min.insync.replicas=1 now: served"
    );
}

#[tokio::test]
async fn an_isr_shrinking_below_min_insync_while_waiting_is_not_enough_replicas_after_append() {
    let (l, _f2, _f3, _) = trio(2).await;
    lead(&l, 1, &[1, 2], &[1, 2, 3]).await;
    let pending = produce_all(&l, batch(2, "a"));
    send(
        &l,
        ReplicationMsg::UpdateIsr {
            leader_epoch: 1,
            partition_epoch: 1,
            isr: vec![1],
        },
    );
    let answer = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(
        answer.unwrap_err(),
        PartitionError::NotEnoughReplicasAfterAppend
    );
    assert_eq!(
        role(&l).await.log_end_offset,
        2,
        "the records are in the log"
    );
}

#[tokio::test]
async fn a_lagging_follower_is_asked_out_of_the_isr_and_back_in_once_caught_up() {
    let (l, f2, f3, mut alter) = trio(1).await;
    let lag = LAG.as_millis() as i64;
    let start = now();
    append(&l.actor, batch(2, "a"), 1).await.unwrap();
    // f2 catches up two thirds of the lag time after the leadership began.
    fetch_round_at(&l, &f2, 1, start + lag * 2 / 3).await;
    fetch_round_at(&l, &f2, 1, start + lag * 2 / 3).await;
    let later = start + lag * 4 / 3;
    let asked = ask(&l, |reply| ReplicationMsg::CheckIsr {
        now_ms: later,
        reply: Some(reply),
    })
    .await
    .expect("a shrink is asked");
    // f2 was caught up just now; f3 never fetched and is past the lag time by `later`.
    assert_eq!(asked.new_isr, vec![1, 2]);
    assert_eq!(
        alter.try_recv().unwrap(),
        asked,
        "sent to the controller side"
    );
    let pending = produce_all(&l, batch(1, "b"));
    // The controller agrees.
    send(
        &l,
        ReplicationMsg::UpdateIsr {
            leader_epoch: 1,
            partition_epoch: 1,
            isr: asked.new_isr.clone(),
        },
    );
    fetch_round_at(&l, &f2, 1, later).await;
    fetch_round_at(&l, &f2, 1, later).await;
    let out = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(
        out.unwrap().last_offset,
        2,
        "acks=all no longer waits for f3"
    );
    // f3 catches up to the high watermark: the leader asks for it back.
    fetch_round(&l, &f3, 1).await;
    fetch_round(&l, &f3, 1).await;
    let expand = alter.try_recv().expect("an expand is asked");
    assert_eq!(expand.new_isr, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_divergent_follower_is_truncated_after_a_leader_change() {
    let (a, _) = replica(1, 1, FlushPolicy::Interval).await;
    let (b, _) = replica(2, 1, FlushPolicy::Interval).await;
    lead(&a, 1, &[1, 2], &[1, 2]).await;
    follow(&b, 1, 1).await;
    append(&a.actor, batch(3, "common"), 1).await.unwrap();
    fetch_round(&a, &b, 1).await;
    // A takes two more batches that B never gets, then loses its leadership.
    append(&a.actor, batch(2, "lost-1"), 1).await.unwrap();
    append(&a.actor, batch(2, "lost-2"), 1).await.unwrap();
    lead(&b, 2, &[2], &[1, 2]).await;
    append(&b.actor, batch(4, "new"), 1).await.unwrap();
    follow(&a, 2, 2).await;
    truncate_to_leader(&b, &a, 2).await;
    assert_eq!(
        role(&a).await.log_end_offset,
        3,
        "cut where epoch 1 ended at B"
    );
    fetch_round(&b, &a, 2).await;
    let (a_log, b_log) = (log_batches(&a), log_batches(&b));
    assert_eq!(a_log, b_log, "no divergent record survives");
    assert_eq!(
        a_log.iter().map(|b| (b.0, b.1)).collect::<Vec<_>>(),
        vec![(0, 1), (3, 2)]
    );
}

#[tokio::test]
async fn a_follower_below_the_leaders_log_start_restarts_at_it() {
    let (l, alter) = replica(1, 1, FlushPolicy::Interval).await;
    drop(alter);
    let (f, _) = replica(2, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1], &[1, 2]).await;
    follow(&f, 1, 1).await;
    for tag in ["a", "b", "c"] {
        append(&l.actor, batch(3, tag), 1).await.unwrap();
    }
    let start = call(
        &l.actor,
        |reply| PartitionMsg::DeleteRecords { offset: 6, reply },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(start, 6);
    let offsets = fetch_round(&l, &f, 1).await;
    assert_eq!((offsets.log_start_offset, offsets.log_end_offset), (6, 9));
    assert_eq!(
        log_batches(&f).iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![6]
    );
}

#[tokio::test]
async fn fetches_and_epoch_queries_with_a_stale_or_future_epoch_are_fenced() {
    let (l, _f2, _f3, _) = trio(1).await;
    lead(&l, 4, &[1, 2, 3], &[1, 2, 3]).await;
    let stale = replica_fetch(&l, 2, 0, 3).await;
    assert_eq!(stale.unwrap_err(), PartitionError::FencedLeaderEpoch);
    let future = replica_fetch(&l, 2, 0, 5).await;
    assert_eq!(future.unwrap_err(), PartitionError::UnknownLeaderEpoch);
    assert!(replica_fetch(&l, 9, 0, 4).await.is_err(), "not a replica");
    let end = ask(&l, |reply| ReplicationMsg::EndOffsetForEpoch {
        current_leader_epoch: 2,
        leader_epoch: 1,
        reply,
    })
    .await;
    assert_eq!(end.unwrap_err(), PartitionError::FencedLeaderEpoch);
    assert_eq!(
        PartitionError::FencedLeaderEpoch.code(),
        74,
        "Kafka's FENCED_LEADER_EPOCH"
    );
    assert_eq!(PartitionError::UnknownLeaderEpoch.code(), 75);
}

#[tokio::test]
async fn a_follower_refuses_produces_and_serves_reads_below_its_high_watermark() {
    let (_l, f2, _f3, _) = trio(1).await;
    assert_eq!(
        append(&f2.actor, batch(1, "x"), 1).await.unwrap_err(),
        PartitionError::NotAvailable
    );
    let read = call(
        &f2.actor,
        |reply| PartitionMsg::Read {
            offset: 0,
            max_bytes: 1024,
            min_one: true,
            read_committed: false,
            check: LeaderCheck::NONE,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    // KIP-392: a follower serves consumers (the protocol layer lets only Fetch v11+ in),
    // never past its high watermark: nothing is committed yet.
    let read = read.expect("a follower serves reads");
    assert_eq!((read.high_watermark, read.records.len()), (0, 0));
    assert_eq!(
        PartitionError::NotAvailable.code(),
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
}

#[tokio::test]
async fn a_follower_fetch_at_the_log_end_waits_for_the_next_append() {
    let (l, _f2, _f3, _) = trio(1).await;
    // The read and its long poll in one message, from broker 2 at offset 0.
    let fetch_with_wait = |on_append: oneshot::Sender<()>| {
        ask(&l, |reply| ReplicationMsg::ReplicaFetch {
            replica_id: 2,
            fetch_offset: 0,
            current_leader_epoch: 1,
            max_bytes: 1 << 20,
            now_ms: now(),
            on_append: Some(on_append.into()),
            reply,
        })
    };
    // Nothing to read: the wait is parked until the next append.
    let (tx, mut parked) = oneshot::channel();
    let read = fetch_with_wait(tx).await.expect("the leader serves");
    assert!(read.records.is_empty());
    assert!(parked.try_recv().is_err(), "nothing to fetch: it waits");
    append(&l.actor, batch(1, "a"), 1).await.unwrap();
    tokio::time::timeout(WAIT, parked).await.unwrap().unwrap();
    // With records to read the wait is not parked: dropped at once.
    let (tx, dropped) = oneshot::channel::<()>();
    let read = fetch_with_wait(tx).await.expect("the leader serves");
    assert!(!read.records.is_empty());
    assert!(tokio::time::timeout(WAIT, dropped).await.unwrap().is_err());
}

#[tokio::test]
async fn acks_all_on_a_leader_that_becomes_follower_is_not_leader_or_follower() {
    let (l, _f2, _f3, _) = trio(1).await;
    let pending = produce_all(&l, batch(1, "a"));
    follow(&l, 2, 2).await;
    let answer = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(answer.unwrap_err(), PartitionError::NotAvailable);
}

#[tokio::test]
async fn a_transaction_marker_waits_for_the_isr_and_carries_the_epoch() {
    let (l, f2, _f3, _) = trio(1).await;
    lead(&l, 3, &[1, 2], &[1, 2, 3]).await;
    follow(&f2, 1, 3).await;
    let marker = |actor: &ActorRef<PartitionMsg>| {
        let (tx, rx) = oneshot::channel();
        actor
            .send_message(PartitionMsg::WriteTxnMarker {
                producer_id: 7,
                producer_epoch: 0,
                commit: true,
                coordinator_epoch: 0,
                reply: tx.into(),
            })
            .unwrap();
        rx
    };
    let refused = tokio::time::timeout(WAIT, marker(&f2.actor)).await.unwrap();
    assert_eq!(refused.unwrap().unwrap_err(), PartitionError::NotAvailable);
    let mut pending = marker(&l.actor);
    role(&l).await;
    assert!(pending.try_recv().is_err(), "f2 has not fetched it");
    fetch_round(&l, &f2, 3).await;
    fetch_round(&l, &f2, 3).await;
    let written = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert_eq!(written, Ok(()));
    assert_eq!(log_batches(&f2), log_batches(&l));
    assert_eq!(
        log_batches(&l)[0].1,
        3,
        "the marker carries the leader epoch"
    );
}
