//! Group coordinator actor driven directly on tokio's paused clock: joins, syncs,
//! heartbeats, session and rebalance timeouts, leaves, static members, durable offsets,
//! each state transition and error code.

use std::sync::Arc;
use std::time::Duration;

use broker::actors::call;
use broker::actors::group::{
    GroupArgs, GroupCoordinator, GroupMsg, GroupSettings, GroupState, JoinRequest, JoinResult,
    SyncResult,
};
use broker::coordinator::group_store::CommittedOffset;
use broker::storage::sim::SimStorage;
use bytes::Bytes;
use ractor::{Actor, ActorRef};

pub(crate) const WAIT: Duration = Duration::from_secs(3600);

// Kafka's error codes, as the client sees them.
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;

fn settings(delay_ms: u64) -> GroupSettings {
    GroupSettings {
        initial_rebalance_delay: Duration::from_millis(delay_ms),
        min_session_timeout: Duration::from_millis(1000),
        max_session_timeout: Duration::from_secs(300),
        offsets_retention: Duration::from_secs(24 * 3600),
        consumer: Default::default(),
    }
}

pub(crate) async fn start(storage: &SimStorage, delay_ms: u64) -> ActorRef<GroupMsg> {
    let args = GroupArgs {
        group_id: "g".into(),
        dir: "/data/__groups".into(),
        storage: Arc::new(storage.clone()),
        settings: settings(delay_ms),
        log: None,
    };
    Actor::spawn(None, GroupCoordinator, args).await.unwrap().0
}

pub(crate) fn join_req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        instance_id: instance.map(|s| s.to_string()),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

pub(crate) fn join(
    g: &ActorRef<GroupMsg>,
    request: JoinRequest,
) -> broker::actors::Reply<JoinResult> {
    broker::actors::ask(g, |reply| GroupMsg::Join { request, reply }).unwrap()
}

/// A new dynamic member: MEMBER_ID_REQUIRED first, then a join with that id.
pub(crate) async fn new_member(
    g: &ActorRef<GroupMsg>,
    protocols: &[&str],
) -> (String, broker::actors::Reply<JoinResult>) {
    let first = join(g, join_req("", None, protocols)).await.unwrap();
    assert_eq!(first.error, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    let id = first.member_id.clone();
    (id.clone(), join(g, join_req(&id, None, protocols)))
}

pub(crate) async fn sync(
    g: &ActorRef<GroupMsg>,
    member: &str,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
) -> broker::actors::Reply<SyncResult> {
    let member_id = member.to_string();
    broker::actors::ask(g, |reply| GroupMsg::Sync {
        member_id,
        instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments,
        reply,
    })
    .unwrap()
}

pub(crate) async fn heartbeat(g: &ActorRef<GroupMsg>, member: &str, generation: i32) -> i16 {
    let member_id = member.to_string();
    call(
        g,
        |reply| GroupMsg::Heartbeat {
            member_id,
            instance_id: None,
            generation,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap()
}

pub(crate) async fn state(g: &ActorRef<GroupMsg>) -> GroupState {
    call(g, |reply| GroupMsg::Describe { reply }, WAIT)
        .await
        .unwrap()
        .state
}

#[tokio::test(start_paused = true)]
async fn two_members_rebalance_sync_heartbeat_and_time_out() {
    let storage = SimStorage::new();
    let g = start(&storage, 0).await;
    assert_eq!(state(&g).await, GroupState::Empty);

    // First member: a generation of one; it is the leader and gets the member list.
    let (a, a_join) = new_member(&g, &["range", "roundrobin"]).await;
    let joined = a_join.await.unwrap();
    assert_eq!(
        (joined.error, joined.generation, joined.leader.as_str()),
        (0, 1, a.as_str())
    );
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(state(&g).await, GroupState::CompletingRebalance);
    let a_sync = sync(&g, &a, 1, vec![(a.clone(), Bytes::from_static(b"all"))])
        .await
        .await
        .unwrap();
    assert_eq!(
        (a_sync.error, a_sync.assignment.as_ref()),
        (0, b"all".as_slice())
    );
    assert_eq!(state(&g).await, GroupState::Stable);
    assert_eq!(heartbeat(&g, &a, 1).await, 0);
    assert_eq!(heartbeat(&g, &a, 0).await, ILLEGAL_GENERATION);
    assert_eq!(heartbeat(&g, "stranger", 1).await, UNKNOWN_MEMBER_ID);

    // Second member (prefers roundrobin, also speaks range): a rebalance.
    let (b, b_join) = new_member(&g, &["roundrobin", "range"]).await;
    assert_eq!(state(&g).await, GroupState::PreparingRebalance);
    assert_eq!(heartbeat(&g, &a, 1).await, REBALANCE_IN_PROGRESS);
    let a_join = join(&g, join_req(&a, None, &["range", "roundrobin"]));
    let (ja, jb) = (a_join.await.unwrap(), b_join.await.unwrap());
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(ja.leader, a, "the leader stays the leader");
    assert_eq!(
        (ja.members.len(), jb.members.len()),
        (2, 0),
        "only the leader gets the members"
    );
    // A tie between range and roundrobin: one of them, the same for both.
    assert_eq!(ja.protocol_name, jb.protocol_name);
    let b_sync = sync(&g, &b, 2, vec![]).await;
    let a_sync = sync(
        &g,
        &a,
        2,
        vec![
            (a.clone(), Bytes::from_static(b"p0")),
            (b.clone(), Bytes::from_static(b"p1")),
        ],
    )
    .await;
    assert_eq!(
        b_sync.await.unwrap().assignment.as_ref(),
        b"p1",
        "the follower waited for the leader"
    );
    assert_eq!(a_sync.await.unwrap().assignment.as_ref(), b"p0");
    assert_eq!(state(&g).await, GroupState::Stable);

    // b stops heartbeating: after its session timeout a rebalance drops it.
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(matches!(
            heartbeat(&g, &a, 2).await,
            0 | REBALANCE_IN_PROGRESS
        ));
    }
    assert_eq!(state(&g).await, GroupState::PreparingRebalance);
    let ja = join(&g, join_req(&a, None, &["range"])).await.unwrap();
    assert_eq!((ja.generation, ja.members.len()), (3, 1));
    assert_eq!(heartbeat(&g, &b, 3).await, UNKNOWN_MEMBER_ID);

    // a leaves: the group is empty.
    let left = call(
        &g,
        |reply| GroupMsg::Leave {
            members: vec![(a.clone(), None)],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(left, vec![0]);
    assert_eq!(state(&g).await, GroupState::Empty);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let g = start(&SimStorage::new(), 0).await;
    let (a, a_join) = new_member(&g, &["range"]).await;
    a_join.await.unwrap();
    sync(&g, &a, 1, vec![]).await.await.unwrap();
    let (_b, b_join) = new_member(&g, &["range"]).await;
    // a never rejoins; after the 30 s rebalance timeout b's join completes alone.
    tokio::time::advance(Duration::from_secs(31)).await;
    let jb = b_join.await.unwrap();
    assert_eq!((jb.error, jb.generation, jb.members.len()), (0, 2, 1));
    assert_eq!(heartbeat(&g, &a, 2).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test(start_paused = true)]
async fn the_initial_delay_gathers_the_first_members() {
    let g = start(&SimStorage::new(), 3000).await;
    let (_a, a_join) = new_member(&g, &["range"]).await;
    tokio::time::advance(Duration::from_millis(1000)).await;
    let (_b, b_join) = new_member(&g, &["range"]).await;
    tokio::time::advance(Duration::from_millis(2500)).await;
    let (ja, jb) = (a_join.await.unwrap(), b_join.await.unwrap());
    assert_eq!(
        (ja.generation, jb.generation),
        (1, 1),
        "one generation for both"
    );
}

#[tokio::test(start_paused = true)]
async fn static_members_rejoin_without_a_rebalance_and_old_ids_are_fenced() {
    let g = start(&SimStorage::new(), 0).await;
    let a = join(&g, join_req("", Some("instance-a"), &["range"]))
        .await
        .unwrap();
    assert_eq!(a.error, 0, "static members skip MEMBER_ID_REQUIRED");
    sync(
        &g,
        &a.member_id,
        1,
        vec![(a.member_id.clone(), Bytes::from_static(b"pa"))],
    )
    .await
    .await
    .unwrap();
    let b_join = join(&g, join_req("", Some("instance-b"), &["range"]));
    let a_again = join(&g, join_req(&a.member_id, Some("instance-a"), &["range"]));
    let (b, a2) = (b_join.await.unwrap(), a_again.await.unwrap());
    assert_eq!((b.generation, a2.generation), (2, 2));
    let bs = sync(&g, &b.member_id, 2, vec![]).await;
    sync(
        &g,
        &a.member_id,
        2,
        vec![
            (a.member_id.clone(), Bytes::from_static(b"pa")),
            (b.member_id.clone(), Bytes::from_static(b"pb")),
        ],
    )
    .await
    .await
    .unwrap();
    assert_eq!(bs.await.unwrap().assignment.as_ref(), b"pb");

    // instance-b restarts: a new process joins with no member id but the same instance id.
    let b_new = join(&g, join_req("", Some("instance-b"), &["range"]))
        .await
        .unwrap();
    assert_eq!(
        (b_new.error, b_new.generation),
        (0, 2),
        "same generation: no rebalance"
    );
    assert_ne!(b_new.member_id, b.member_id);
    assert_eq!(state(&g).await, GroupState::Stable);
    let resync = sync(&g, &b_new.member_id, 2, vec![]).await.await.unwrap();
    assert_eq!(resync.assignment.as_ref(), b"pb", "it keeps its partitions");
    assert_eq!(
        heartbeat(&g, &a.member_id, 2).await,
        0,
        "the other member saw nothing"
    );
    // The old process is fenced.
    let old = call(
        &g,
        |reply| GroupMsg::Heartbeat {
            member_id: b.member_id.clone(),
            instance_id: Some("instance-b".into()),
            generation: 2,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(old, FENCED_INSTANCE_ID);
}

#[tokio::test(start_paused = true)]
async fn offsets_are_durable_validated_and_deleted_with_the_group() {
    let storage = SimStorage::new();
    let g = start(&storage, 0).await;
    let offset = |o: i64| CommittedOffset {
        offset: o,
        leader_epoch: 0,
        metadata: Some(format!("m{o}")),
    };
    // A standalone commit (no member, generation -1) to an empty group.
    let code = call(
        &g,
        |reply| GroupMsg::Commit {
            member_id: String::new(),
            instance_id: None,
            generation: -1,
            offsets: vec![(("t".into(), 0), offset(42))],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    // A member of a stable group commits with its generation; a wrong one is refused.
    let (a, a_join) = new_member(&g, &["range"]).await;
    a_join.await.unwrap();
    sync(&g, &a, 1, vec![]).await.await.unwrap();
    let code = call(
        &g,
        |reply| GroupMsg::Commit {
            member_id: a.clone(),
            instance_id: None,
            generation: 7,
            offsets: vec![(("t".into(), 1), offset(5))],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, ILLEGAL_GENERATION);
    let code = call(
        &g,
        |reply| GroupMsg::Commit {
            member_id: a.clone(),
            instance_id: None,
            generation: 1,
            offsets: vec![(("t".into(), 1), offset(7))],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    let refused = call(&g, |reply| GroupMsg::Delete { reply }, WAIT)
        .await
        .unwrap();
    assert_eq!(refused, NON_EMPTY_GROUP);
    // Power cut, new actor: the committed offsets are back.
    g.stop(None);
    storage.power_cut();
    let g = start(&storage, 0).await;
    let found = call(
        &g,
        |reply| GroupMsg::FetchOffsets {
            partitions: None,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        found,
        vec![
            (("t".into(), 0), Some(offset(42))),
            (("t".into(), 1), Some(offset(7)))
        ]
    );
    // The member came back with the group (its metadata is durable too); once its
    // session runs out without a heartbeat the group is empty and may be deleted.
    assert_eq!(state(&g).await, GroupState::Stable);
    // Paused clock: the runtime moves time on only once every task waits, so the session
    // check the load scheduled has run when this returns.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(state(&g).await, GroupState::Empty);
    assert_eq!(
        call(&g, |reply| GroupMsg::Delete { reply }, WAIT)
            .await
            .unwrap(),
        0
    );
    let g = start(&storage, 0).await;
    let found = call(
        &g,
        |reply| GroupMsg::FetchOffsets {
            partitions: None,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert!(found.is_empty(), "deleting the group removed its offsets");
}

#[tokio::test(start_paused = true)]
async fn offsets_of_an_empty_group_expire_after_the_retention() {
    let storage = SimStorage::new();
    let args = GroupArgs {
        group_id: "short".into(),
        dir: "/data/__groups".into(),
        storage: Arc::new(storage.clone()),
        settings: GroupSettings {
            offsets_retention: Duration::from_secs(60),
            ..settings(0)
        },
        log: None,
    };
    let (g, handle) = Actor::spawn(None, GroupCoordinator, args).await.unwrap();
    let code = call(
        &g,
        |reply| GroupMsg::Commit {
            member_id: String::new(),
            instance_id: None,
            generation: -1,
            offsets: vec![(
                ("t".into(), 0),
                CommittedOffset {
                    offset: 1,
                    leader_epoch: -1,
                    metadata: None,
                },
            )],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the expired group's actor stops")
        .unwrap();
    assert!(
        storage
            .paths()
            .iter()
            .all(|p| !p.starts_with("/data/__groups")),
        "its file is gone"
    );
}

#[tokio::test(start_paused = true)]
async fn session_timeouts_outside_the_bounds_are_refused() {
    let g = start(&SimStorage::new(), 0).await;
    let mut req = join_req("", None, &["range"]);
    req.session_timeout = Duration::from_millis(10);
    assert_eq!(join(&g, req).await.unwrap().error, INVALID_SESSION_TIMEOUT);
}

/// A member whose last sign of life is its SyncGroup (it died before its first heartbeat)
/// still expires one session after that SyncGroup. The check its join scheduled sees the
/// newer sync and must leave another check behind (under load, a consumer killed right
/// after its assignment stayed in the group forever).
#[tokio::test(start_paused = true)]
async fn a_member_that_dies_right_after_its_sync_expires_one_session_later() {
    let g = start(&SimStorage::new(), 0).await;
    let (a, a_join) = new_member(&g, &["range"]).await;
    let ja = a_join.await.unwrap();
    assert_eq!((ja.error, ja.generation), (0, 1));
    // The join completed now; the member syncs 5 s later and is never heard of again.
    tokio::time::advance(Duration::from_secs(5)).await;
    sync(&g, &a, 1, vec![(a.clone(), Bytes::from_static(b"pa"))])
        .await
        .await
        .unwrap();
    assert_eq!(state(&g).await, GroupState::Stable);
    // Past the check the join scheduled (10 s after it) the member is still within the
    // session its sync restarted.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(state(&g).await, GroupState::Stable);
    // Its session runs out 15 s after the join: step the clock to 20 s, one second at a
    // time, so a timer's message is handled before the next look.
    for _ in 0..9 {
        if state(&g).await == GroupState::Empty {
            break;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(
        state(&g).await,
        GroupState::Empty,
        "the dead member expired"
    );
}

/// The same for a member whose last sign of life is a JoinGroup answered at once (same
/// subscription, group stable): its session restarts there and runs out from there.
#[tokio::test(start_paused = true)]
async fn a_member_that_dies_after_a_quiet_rejoin_expires_one_session_later() {
    let g = start(&SimStorage::new(), 0).await;
    let (a, a_join) = new_member(&g, &["range"]).await;
    a_join.await.unwrap();
    sync(&g, &a, 1, vec![]).await.await.unwrap();
    let (b, b_join) = new_member(&g, &["range"]).await;
    // a is the leader: it rejoins at the rebalance and both sync.
    let ja = join(&g, join_req(&a, None, &["range"])).await.unwrap();
    let jb = b_join.await.unwrap();
    assert_eq!((ja.generation, jb.generation), (2, 2));
    sync(&g, &a, 2, vec![]).await.await.unwrap();
    sync(&g, &b, 2, vec![]).await.await.unwrap();
    assert_eq!(state(&g).await, GroupState::Stable);
    // b rejoins with the same subscription 5 s later: answered at once, no rebalance.
    tokio::time::advance(Duration::from_secs(5)).await;
    let again = join(&g, join_req(&b, None, &["range"])).await.unwrap();
    assert_eq!((again.error, again.generation), (0, 2));
    // a keeps heartbeating; b is never heard of again.
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(3)).await;
        let code = heartbeat(&g, &a, 2).await;
        if code != 0 {
            assert_eq!(code, REBALANCE_IN_PROGRESS);
            break;
        }
    }
    assert_eq!(
        state(&g).await,
        GroupState::PreparingRebalance,
        "b's session ran out and the group rebalances without it"
    );
}
