//! A group's membership outlives its coordinator actor: an actor stopped (after a power
//! cut of its storage) and started again over the same store serves the old members, of
//! a classic group at their generation and of a consumer group (KIP-848) at their epochs,
//! without a rejoin. On tokio's paused clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use broker::actors::call;
use broker::actors::group::{GroupDescription, GroupMsg, GroupState};
use broker::coordinator::assignors::Assignment;
use broker::coordinator::consumer_group::{
    ConsumerHeartbeat, ConsumerHeartbeatResult, TopicCatalog,
};
use broker::coordinator::group_store::CommittedOffset;
use broker::storage::sim::SimStorage;
use bytes::Bytes;
use ractor::ActorRef;
use uuid::Uuid;

use crate::actor_group::{heartbeat, join, join_req, start, state, sync, WAIT};

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const NON_EMPTY_GROUP: i16 = 68;

/// The initial rebalance delay, so that both first members join one generation.
const DELAY_MS: u64 = 3000;

/// Stops the actor, cuts the power of its storage and starts a new one over it.
async fn restart(g: ActorRef<GroupMsg>, storage: &SimStorage) -> ActorRef<GroupMsg> {
    g.stop_and_wait(None, Some(WAIT)).await.unwrap();
    storage.power_cut();
    start(storage, DELAY_MS).await
}

async fn describe(g: &ActorRef<GroupMsg>) -> GroupDescription {
    call(g, |reply| GroupMsg::Describe { reply }, WAIT)
        .await
        .unwrap()
}

async fn commit(g: &ActorRef<GroupMsg>, member: &str, generation: i32) -> i16 {
    let offset = CommittedOffset {
        offset: 5,
        leader_epoch: -1,
        metadata: None,
    };
    let member_id = member.to_string();
    let commit = |reply| GroupMsg::Commit {
        member_id,
        instance_id: None,
        generation,
        offsets: vec![(("t".into(), 0), offset)],
        reply,
    };
    call(g, commit, WAIT).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_classic_group_is_stable_with_its_members_after_a_restart() {
    let storage = SimStorage::new();
    let g = start(&storage, DELAY_MS).await;
    let first = join(&g, join_req("", None, &["range"])).await.unwrap();
    assert_eq!(first.error, MEMBER_ID_REQUIRED);
    let a = first.member_id;
    let a_join = join(&g, join_req(&a, None, &["range"]));
    let b_join = join(&g, join_req("", Some("instance-b"), &["range"]));
    let (ja, jb) = (a_join.await.unwrap(), b_join.await.unwrap());
    assert_eq!(
        (ja.generation, jb.generation, ja.leader.as_str()),
        (1, 1, a.as_str())
    );
    let b = jb.member_id;
    let b_sync = sync(&g, &b, 1, vec![]).await;
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"pa")),
        (b.clone(), Bytes::from_static(b"pb")),
    ];
    let a_sync = sync(&g, &a, 1, assignments).await.await.unwrap();
    assert_eq!(
        (a_sync.error, a_sync.assignment.as_ref()),
        (0, b"pa".as_slice())
    );
    assert_eq!(b_sync.await.unwrap().assignment.as_ref(), b"pb");

    let g = restart(g, &storage).await;
    let described = describe(&g).await;
    assert_eq!(
        (described.state, described.generation),
        (GroupState::Stable, 1)
    );
    assert_eq!(
        (described.protocol.as_str(), described.members.len()),
        ("range", 2)
    );
    assert_eq!(described.members[0].member_id, a, "join order kept");
    assert_eq!(
        described.members[1].instance_id.as_deref(),
        Some("instance-b")
    );
    assert_eq!(described.members[1].assignment.as_ref(), b"pb");
    // Both go on at generation 1: heartbeats, a commit, a SyncGroup with the assignment.
    assert_eq!(heartbeat(&g, &a, 1).await, 0);
    assert_eq!(heartbeat(&g, &b, 1).await, 0);
    assert_eq!(commit(&g, &a, 1).await, 0);
    let again = sync(&g, &b, 1, vec![]).await.await.unwrap();
    assert_eq!(
        (again.error, again.assignment.as_ref()),
        (0, b"pb".as_slice())
    );
    assert_eq!(heartbeat(&g, "stranger", 1).await, UNKNOWN_MEMBER_ID);
    let refused = call(&g, |reply| GroupMsg::Delete { reply }, WAIT).await;
    assert_eq!(refused.unwrap(), NON_EMPTY_GROUP, "the members are back");

    // Sessions start anew at the load: a member silent past its session is dropped. (On
    // the paused clock time moves only once every task waits: each sleep lets the
    // session checks due by then run.)
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        heartbeat(&g, &a, 1).await;
    }
    assert_eq!(
        state(&g).await,
        GroupState::PreparingRebalance,
        "b timed out"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_group_is_loaded_empty_at_its_generation() {
    let storage = SimStorage::new();
    let g = start(&storage, DELAY_MS).await;
    let a = join(&g, join_req("", Some("instance-a"), &["range"]))
        .await
        .unwrap();
    sync(&g, &a.member_id, 1, vec![]).await.await.unwrap();
    let leave = |reply| GroupMsg::Leave {
        members: vec![(a.member_id.clone(), Some("instance-a".into()))],
        reply,
    };
    assert_eq!(call(&g, leave, WAIT).await.unwrap(), vec![0]);
    let g = restart(g, &storage).await;
    let described = describe(&g).await;
    assert_eq!(
        (described.state, described.generation),
        (GroupState::Empty, 2)
    );
    assert!(described.members.is_empty());
    // Deleted (its actor stops): nothing comes back.
    assert_eq!(
        call(&g, |reply| GroupMsg::Delete { reply }, WAIT)
            .await
            .unwrap(),
        0
    );
    storage.power_cut();
    let g = start(&storage, DELAY_MS).await;
    let described = describe(&g).await;
    assert_eq!(
        (described.state, described.generation),
        (GroupState::Empty, 0)
    );
}

fn topics() -> Arc<dyn TopicCatalog> {
    Arc::new(BTreeMap::from([("t".to_string(), (Uuid::from_u128(7), 4))]))
}

async fn consumer_beat(
    g: &ActorRef<GroupMsg>,
    request: ConsumerHeartbeat,
) -> ConsumerHeartbeatResult {
    let topics = topics();
    let beat = |reply| GroupMsg::ConsumerHeartbeat {
        request,
        topics,
        reply,
    };
    let result = call(g, beat, WAIT).await.unwrap();
    assert_eq!(result.error, 0, "{:?}", result.error_message);
    result
}

fn consumer_join(member: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..ConsumerHeartbeat::default()
    }
}

fn consumer_ack(member: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_id: member.into(),
        member_epoch: epoch,
        owned: Some(owned.clone()),
        ..ConsumerHeartbeat::default()
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

#[tokio::test(start_paused = true)]
async fn a_consumer_group_goes_on_at_its_epochs_after_a_restart() {
    let storage = SimStorage::new();
    let g = start(&storage, DELAY_MS).await;
    let a = consumer_beat(&g, consumer_join("member-a")).await;
    let a_all = a.assignment.clone().unwrap();
    assert_eq!((a.member_epoch, count(&a_all)), (1, 4));
    // b joins at epoch 2; a must give two partitions up first (its epoch stays 1).
    let b = consumer_beat(&g, consumer_join("member-b")).await;
    assert_eq!(b.member_epoch, 2);
    let a = consumer_beat(&g, consumer_ack("member-a", 1, &a_all)).await;
    let a_kept = a.assignment.clone().unwrap();
    assert_eq!((a.member_epoch, count(&a_kept)), (1, 2));

    let g = restart(g, &storage).await;
    let described = call(&g, |reply| GroupMsg::ConsumerDescribe { reply }, WAIT)
        .await
        .unwrap()
        .expect("still a consumer group");
    assert_eq!((described.group_epoch, described.members.len()), (2, 2));
    // a acks the revocation at its old epoch and moves to 2; then b gets the rest.
    let a = consumer_beat(&g, consumer_ack("member-a", 1, &a_kept)).await;
    assert_eq!(a.member_epoch, 2);
    let b = consumer_beat(&g, consumer_ack("member-b", 2, &Assignment::new())).await;
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment.map(|got| count(&got)), Some(2));
    let code = commit(&g, "member-a", 2).await;
    assert_eq!(code, 0, "OffsetCommit at the member epoch");

    // Restarted again: the epochs reached after the first restart were stored too.
    let g = restart(g, &storage).await;
    let a = consumer_beat(&g, consumer_ack("member-a", 2, &a_kept)).await;
    assert_eq!(a.member_epoch, 2);
}
