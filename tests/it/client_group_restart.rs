//! A single broker killed (SIGKILL) and started again keeps its groups' members: a
//! classic member's Heartbeat and OffsetCommit at its generation, and a KIP-848 member's
//! ConsumerGroupHeartbeat at its member id and epoch, are answered NONE without a rejoin.
//! Raw frames, so nothing retries or rejoins behind the test's back.

use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::consumer_group_protocol::{
    assigned, beat, classic_join, commit, heartbeat, join, topic_id,
};
use crate::harness::TestBroker;
use crate::hostile_wire::{text, Wire};

const MEMBER_ID_REQUIRED: i16 = 79;

fn classic_heartbeat(wire: &mut Wire, group: &str, member: &StrBytes, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(generation)
        .with_member_id(member.clone());
    wire.call(4, &req).expect("Heartbeat answered").error_code
}

#[test]
fn a_classic_member_goes_on_after_a_broker_restart() {
    let mut broker = TestBroker::start("group_initial_rebalance_delay_ms = 0");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("restart-classic", 1);
    let first = wire.call(5, &classic_join("steady")).expect("JoinGroup");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id;
    let joined = wire
        .call(5, &classic_join("steady").with_member_id(member.clone()))
        .expect("JoinGroup answered");
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader, member, "the only member leads");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(text("steady")))
        .with_generation_id(1)
        .with_member_id(member.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(bytes::Bytes::from_static(b"restart-classic:0"))]);
    let synced = wire.call(3, &sync).expect("SyncGroup answered");
    assert_eq!(synced.error_code, 0);
    assert_eq!(classic_heartbeat(&mut wire, "steady", &member, 1), 0);

    broker.kill9();
    broker.restart();
    let mut wire = Wire::connect(broker.port());
    assert_eq!(
        classic_heartbeat(&mut wire, "steady", &member, 1),
        0,
        "the member and its generation survived the restart"
    );
    let committed = wire
        .call(
            9,
            &commit("steady", member.as_str(), 1, "restart-classic", 7),
        )
        .expect("OffsetCommit answered");
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let again = wire.call(3, &sync).expect("SyncGroup answered");
    assert_eq!(
        (again.error_code, again.assignment.as_ref()),
        (0, b"restart-classic:0".as_slice()),
        "its assignment too"
    );
}

#[test]
fn a_consumer_group_member_goes_on_after_a_broker_restart() {
    let mut broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("restart-modern", 4);
    topic_id(&mut wire, "restart-modern");
    let joined = heartbeat(&mut wire, &join("modern", "member-r", &["restart-modern"]));
    let owned = assigned(&joined).expect("a join is answered with its assignment");
    let member = joined.member_id.clone().expect("a member id");
    assert_eq!(joined.member_epoch, 1);

    broker.kill9();
    broker.restart();
    let mut wire = Wire::connect(broker.port());
    let after = heartbeat(&mut wire, &beat("modern", member.as_str(), 1, &owned));
    assert_eq!(
        (after.error_code, after.member_epoch),
        (0, 1),
        "not fenced, no rejoin at epoch 0: {:?}",
        after.error_message
    );
    assert_eq!(after.member_id, Some(member.clone()));
    assert_eq!(assigned(&after), Some(owned), "its assignment is kept");
    let committed = wire
        .call(
            9,
            &commit("modern", member.as_str(), 1, "restart-modern", 3),
        )
        .expect("OffsetCommit answered");
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
}
