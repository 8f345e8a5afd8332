//! The consumer group protocol of Kafka 4 (KIP-848) in raw frames against a broker
//! process: ConsumerGroupHeartbeat joins with epoch 0 and gets epochs from the group; a
//! partition is revoked from its owner before it is assigned to a new member; fencing
//! (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID); UNSUPPORTED_ASSIGNOR and bad regexes; classic
//! and consumer groups side by side (INCONSISTENT_GROUP_PROTOCOL, GROUP_ID_NOT_FOUND, an
//! empty classic group converted with its offsets); regex subscriptions that follow new
//! topics; OffsetCommit and OffsetFetch checked against the member epoch (STALE_MEMBER_EPOCH); a member
//! whose session runs out loses its partitions; a static member that leaves with -2 comes
//! back to its partitions; ConsumerGroupDescribe, ListGroups and DescribeGroups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::harness::TestBroker;
use crate::hostile_wire::{text, topic, Wire};

const FENCED_MEMBER_EPOCH: i16 = 110;
const UNKNOWN_MEMBER_ID: i16 = 25;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const INVALID_REGULAR_EXPRESSION: i16 = 128;
const INVALID_REQUEST: i16 = 42;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const GROUP_ID_NOT_FOUND: i16 = 69;
const STALE_MEMBER_EPOCH: i16 = 113;
const UNRELEASED_INSTANCE_ID: i16 = 111;

pub(crate) type Owned = BTreeMap<Uuid, BTreeSet<i32>>;

pub(crate) fn topic_id(wire: &mut Wire, name: &str) -> Uuid {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic(name)))
    ]));
    let resp = wire.call(12, &req).expect("Metadata answered");
    resp.topics[0].topic_id
}

pub(crate) fn heartbeat(
    wire: &mut Wire,
    req: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    wire.call(1, req)
        .expect("ConsumerGroupHeartbeat answered (the broker serves API 68)")
}

pub(crate) fn join(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| topic(t)).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

pub(crate) fn beat(
    group: &str,
    member: &str,
    epoch: i32,
    owned: &Owned,
) -> ConsumerGroupHeartbeatRequest {
    let owned = owned
        .iter()
        .map(|(id, ps)| {
            TopicPartitions::default()
                .with_topic_id(*id)
                .with_partitions(ps.iter().copied().collect())
        })
        .collect();
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_member_epoch(epoch)
        .with_topic_partitions(Some(owned))
}

/// The assignment in a response (None when the response carries none).
pub(crate) fn assigned(resp: &ConsumerGroupHeartbeatResponse) -> Option<Owned> {
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    resp.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
            .collect()
    })
}

fn count(owned: &Owned) -> usize {
    owned.values().map(BTreeSet::len).sum()
}

#[test]
fn partitions_are_revoked_before_they_are_reassigned() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("cg-orders", 12);
    let id = topic_id(&mut wire, "cg-orders");

    let a = heartbeat(&mut wire, &join("cg", "member-a", &["cg-orders"]));
    let a_all = assigned(&a).expect("a join is answered with an assignment");
    assert_eq!((a.member_epoch, count(&a_all)), (1, 12));
    assert_eq!(a.heartbeat_interval_ms, 5000);

    // b joins at epoch 2 but gets nothing while a still owns every partition.
    let b = heartbeat(&mut wire, &join("cg", "member-b", &["cg-orders"]));
    assert_eq!(b.member_epoch, 2);
    assert_eq!(assigned(&b).map(|o| count(&o)), Some(0));
    // a is told what it keeps; its epoch stays 1 until it lets the rest go.
    let a = heartbeat(&mut wire, &beat("cg", "member-a", 1, &a_all));
    let a_kept = assigned(&a).expect("a's assignment changed");
    assert_eq!((a.member_epoch, count(&a_kept)), (1, 6));
    let b = heartbeat(&mut wire, &beat("cg", "member-b", 2, &Owned::new()));
    assert_eq!(
        assigned(&b).map(|o| count(&o)),
        Some(0),
        "not before a revoked"
    );
    // a acks; then b gets the six a gave up.
    let a = heartbeat(&mut wire, &beat("cg", "member-a", 1, &a_kept));
    assert_eq!(a.member_epoch, 2);
    let b = heartbeat(&mut wire, &beat("cg", "member-b", 2, &Owned::new()));
    let b_got = assigned(&b).expect("b's assignment");
    assert_eq!(count(&b_got), 6);
    assert!(b_got[&id].is_disjoint(&a_kept[&id]));

    // ConsumerGroupDescribe, ListGroups (type consumer) and DescribeGroups (not classic).
    let describe = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(text("cg")), GroupId(text("missing"))]);
    let d = wire
        .call(1, &describe)
        .expect("ConsumerGroupDescribe answered");
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
    assert_eq!((g.group_epoch, g.assignment_epoch), (2, 2));
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        assert_eq!(m.member_epoch, 2);
        assert_eq!(
            m.assignment.topic_partitions[0].topic_name.0.as_str(),
            "cg-orders"
        );
        assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 6);
        assert_eq!(m.member_type, 1);
    }
    assert_eq!(d.groups[1].error_code, GROUP_ID_NOT_FOUND);
    let listed = wire
        .call(5, &ListGroupsRequest::default())
        .expect("ListGroups answered");
    let cg = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "cg")
        .expect("listed");
    assert_eq!(
        (
            cg.group_type.as_str(),
            cg.protocol_type.as_str(),
            cg.group_state.as_str()
        ),
        ("consumer", "consumer", "Stable")
    );
    let classic_only = ListGroupsRequest::default().with_types_filter(vec![text("classic")]);
    let listed = wire.call(5, &classic_only).expect("ListGroups answered");
    assert!(listed.groups.iter().all(|g| g.group_id.0.as_str() != "cg"));
    let dg = DescribeGroupsRequest::default().with_groups(vec![GroupId(text("cg"))]);
    let dg = wire.call(6, &dg).expect("DescribeGroups answered");
    assert_eq!(dg.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(dg.groups[0].group_state.as_str(), "Dead");
}

#[test]
fn epochs_are_fenced_and_bad_joins_refused() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("cg-fence", 3);
    let a = heartbeat(&mut wire, &join("fence", "member-a", &["cg-fence"]));
    let owned = assigned(&a).unwrap();
    let r = heartbeat(&mut wire, &beat("fence", "member-a", 7, &owned));
    assert_eq!(r.error_code, FENCED_MEMBER_EPOCH);
    let r = heartbeat(&mut wire, &beat("fence", "nobody", 1, &owned));
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    let r = heartbeat(
        &mut wire,
        &join("fence", "member-b", &["cg-fence"]).with_server_assignor(Some(text("sticky"))),
    );
    assert_eq!(r.error_code, UNSUPPORTED_ASSIGNOR);
    let r = heartbeat(
        &mut wire,
        &join("fence", "member-b", &[])
            .with_subscribed_topic_names(None)
            .with_subscribed_topic_regex(Some(text("cg-("))),
    );
    assert_eq!(r.error_code, INVALID_REGULAR_EXPRESSION);
    let r = heartbeat(&mut wire, &join("fence", "", &["cg-fence"]));
    assert_eq!(r.error_code, INVALID_REQUEST, "v1 needs the member id");
    // v0: the broker names the member.
    let r = wire
        .call(0, &join("fence", "", &["cg-fence"]))
        .expect("answered");
    assert_eq!(r.error_code, 0);
    assert!(r.member_id.is_some_and(|id| !id.is_empty()));
    // Leaving: epoch -1.
    let r = heartbeat(&mut wire, &beat("fence", "member-a", -1, &Owned::new()));
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
}

pub(crate) fn classic_join(group: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(bytes::Bytes::from_static(b"x"))])
}

pub(crate) fn commit(
    group: &str,
    member: &str,
    epoch: i32,
    name: &str,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])])
}

fn fetched(wire: &mut Wire, group: &str, name: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic(name))
            .with_partition_indexes(vec![0])]));
    let resp = wire.call(7, &req).expect("OffsetFetch answered");
    resp.topics[0].partitions[0].committed_offset
}

#[test]
fn classic_and_consumer_groups_live_side_by_side() {
    let broker = TestBroker::start("group_initial_rebalance_delay_ms = 0");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("cg-mixed", 2);
    // A consumer group refuses classic members.
    heartbeat(&mut wire, &join("modern", "m1", &["cg-mixed"]));
    let r = wire
        .call(7, &classic_join("modern"))
        .expect("JoinGroup answered");
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
    // OffsetCommit on it: the member's epoch, or STALE_MEMBER_EPOCH.
    let r = wire
        .call(9, &commit("modern", "m1", 0, "cg-mixed", 5))
        .unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, STALE_MEMBER_EPOCH);
    let r = wire
        .call(9, &commit("modern", "m1", 1, "cg-mixed", 5))
        .unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetched(&mut wire, "modern", "cg-mixed"), 5);
    // OffsetFetch v9 naming the member is checked the same way.
    for (member, epoch, code) in [
        ("m1", 1, 0),
        ("m1", 0, STALE_MEMBER_EPOCH),
        ("m9", 1, UNKNOWN_MEMBER_ID),
    ] {
        let group = offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text("modern")))
            .with_member_id(Some(text(member)))
            .with_member_epoch(epoch)
            .with_topics(None);
        let req = OffsetFetchRequest::default().with_groups(vec![group]);
        let r = wire.call(9, &req).expect("OffsetFetch answered");
        assert_eq!(r.groups[0].error_code, code, "{member} at {epoch}");
    }

    // A classic group with a member refuses ConsumerGroupHeartbeat.
    let first = wire.call(7, &classic_join("old")).unwrap();
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let joined = wire
        .call(
            7,
            &classic_join("old").with_member_id(first.member_id.clone()),
        )
        .unwrap();
    assert_eq!(joined.error_code, 0);
    let r = heartbeat(&mut wire, &join("old", "m1", &["cg-mixed"]));
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);
    // Once it is empty (its offsets kept) it converts, offsets and all.
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(text("old")))
        .with_member_id(first.member_id.clone())
        .with_generation_id(joined.generation_id);
    assert_eq!(wire.call(5, &sync).unwrap().error_code, 0);
    let r = wire
        .call(
            8,
            &commit(
                "old",
                first.member_id.as_str(),
                joined.generation_id,
                "cg-mixed",
                9,
            ),
        )
        .unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(text("old")))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(first.member_id.clone())
        ]);
    assert_eq!(wire.call(5, &leave).unwrap().error_code, 0);
    let r = heartbeat(&mut wire, &join("old", "m1", &["cg-mixed"]));
    assert_eq!(
        (r.error_code, r.member_epoch),
        (0, 1),
        "{:?}",
        r.error_message
    );
    assert_eq!(fetched(&mut wire, "old", "cg-mixed"), 9);
}

#[test]
fn regex_subscriptions_follow_new_topics() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("rx-a", 2);
    wire.create_topic("other", 4);
    let req = join("rx", "m1", &[])
        .with_subscribed_topic_names(None)
        .with_subscribed_topic_regex(Some(text("rx-.*")));
    let r = heartbeat(&mut wire, &req);
    let owned = assigned(&r).unwrap();
    assert_eq!((r.member_epoch, count(&owned)), (1, 2));
    wire.create_topic("rx-b", 3);
    let r = heartbeat(&mut wire, &beat("rx", "m1", 1, &owned));
    let owned = assigned(&r).unwrap();
    assert_eq!(
        (r.member_epoch, count(&owned)),
        (2, 5),
        "rx-b's partitions too"
    );
    assert!(owned.contains_key(&topic_id(&mut wire, "rx-b")));
}

#[test]
fn a_silent_members_partitions_move_within_the_session_timeout() {
    let broker = TestBroker::start(
        "group_consumer_session_timeout_ms = 1500\ngroup_consumer_heartbeat_interval_ms = 200",
    );
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("cg-session", 4);
    let a = heartbeat(&mut wire, &join("session", "a", &["cg-session"]));
    let a_all = assigned(&a).unwrap();
    heartbeat(&mut wire, &join("session", "b", &["cg-session"]));
    let a = heartbeat(&mut wire, &beat("session", "a", 1, &a_all));
    let mut owned = assigned(&a).unwrap();
    let mut epoch = heartbeat(&mut wire, &beat("session", "a", 1, &owned)).member_epoch;
    assert_eq!(epoch, 2);
    // b falls silent: a keeps heartbeating until it holds all four.
    let started = Instant::now();
    while count(&owned) < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "b's partitions did not move"
        );
        std::thread::sleep(Duration::from_millis(200));
        let r = heartbeat(&mut wire, &beat("session", "a", epoch, &owned));
        epoch = r.member_epoch;
        if let Some(now) = assigned(&r) {
            owned = now;
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "not before the session ran out"
    );
    assert!(broker.logs().contains("its session timed out"));
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("cg-static", 4);
    let req = join("static", "s1", &["cg-static"]).with_instance_id(Some(text("host-1")));
    let owned = assigned(&heartbeat(&mut wire, &req)).unwrap();
    let other = req.clone().with_member_id(text("s2"));
    assert_eq!(
        heartbeat(&mut wire, &other).error_code,
        UNRELEASED_INSTANCE_ID
    );
    let away = beat("static", "s1", -2, &Owned::new()).with_instance_id(Some(text("host-1")));
    assert_eq!(heartbeat(&mut wire, &away).member_epoch, -2);
    let back = heartbeat(&mut wire, &other);
    assert_eq!(assigned(&back), Some(owned));
    assert_eq!(back.member_epoch, 1, "no new epoch: no rebalance");
}

/// Both new APIs encode at every advertised version through the real dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_the_new_apis_answers() {
    use std::sync::Arc;

    use broker::actors::broker::Broker;
    use broker::config::Config;
    use broker::storage::sim::SimStorage;

    use crate::protocol_versions::{range, serve};

    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        ..Config::default()
    };
    let broker = Broker::start(config, Arc::new(SimStorage::new()))
        .await
        .unwrap();
    let ctx = broker.context();
    for v in range(ApiKey::ConsumerGroupHeartbeat) {
        let req = join("vers", &format!("m{v}"), &["absent"]);
        let ResponseKind::ConsumerGroupHeartbeat(r) = serve(
            &ctx,
            ApiKey::ConsumerGroupHeartbeat,
            v,
            RequestKind::ConsumerGroupHeartbeat(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, 0, "v{v}: {:?}", r.error_message);
    }
    for v in range(ApiKey::ConsumerGroupDescribe) {
        let req =
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text("vers"))]);
        let ResponseKind::ConsumerGroupDescribe(r) = serve(
            &ctx,
            ApiKey::ConsumerGroupDescribe,
            v,
            RequestKind::ConsumerGroupDescribe(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.groups[0].error_code, r.groups[0].members.len()),
            (0, 2),
            "v{v}"
        );
    }
    broker.shutdown().await;
}
