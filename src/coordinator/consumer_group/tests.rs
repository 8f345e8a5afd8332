//! The consumer group state machine: joins, epochs, revocation before reassignment,
//! fencing, static members, regex subscriptions and expiry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::*;

fn settings() -> ConsumerGroupSettings {
    ConsumerGroupSettings {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        assignors: vec!["uniform".into(), "range".into()],
        migration_policy: MigrationPolicy::Bidirectional,
    }
}

fn topic_id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn catalog() -> BTreeMap<String, (Uuid, i32)> {
    BTreeMap::from([
        ("orders".to_string(), (topic_id(1), 12)),
        ("orders-eu".to_string(), (topic_id(2), 2)),
        ("__consumer_offsets".to_string(), (topic_id(3), 50)),
    ])
}

fn join(member: &str, topics: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..ConsumerHeartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
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

fn ok(r: &ConsumerHeartbeatResult) -> &Assignment {
    assert_eq!(r.error, 0, "{:?}", r.error_message);
    r.assignment.as_ref().expect("an assignment")
}

#[test]
fn the_first_member_gets_every_partition_at_epoch_one() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let r = g.heartbeat(join("a", &["orders"]), &catalog(), now);
    assert_eq!(count(ok(&r)), 12);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5000);
    assert_eq!(g.group_epoch, 1);
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn a_second_member_waits_for_the_first_to_revoke() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let a_all = ok(&g.heartbeat(join("a", &["orders"]), &catalog(), now)).clone();
    // b joins: the target splits 6/6, but a still owns everything.
    let rb = g.heartbeat(join("b", &["orders"]), &catalog(), now);
    assert_eq!(rb.member_epoch, 2);
    assert_eq!(count(ok(&rb)), 0, "nothing is free yet");
    assert_eq!(g.state_name(), "Reconciling");
    // a is told to keep 6 (its epoch held at 1 until it lets go).
    let ra = g.heartbeat(beat("a", 1, &a_all), &catalog(), now);
    let a_kept = ok(&ra).clone();
    assert_eq!(ra.member_epoch, 1);
    assert_eq!(count(&a_kept), 6);
    // b still gets nothing while a has not acked.
    let rb = g.heartbeat(beat("b", 2, &Assignment::new()), &catalog(), now);
    assert_eq!(rb.assignment.as_ref().map(count), Some(0));
    // a acks: epoch 2; then b gets the other six.
    let ra = g.heartbeat(beat("a", 1, &a_kept), &catalog(), now);
    assert_eq!(ra.member_epoch, 2);
    let b_got = ok(&g.heartbeat(beat("b", 2, &Assignment::new()), &catalog(), now)).clone();
    assert_eq!(count(&b_got), 6);
    for (t, ps) in &b_got {
        assert!(a_kept[t].is_disjoint(ps), "no partition is owned twice");
    }
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn epochs_are_fenced_as_kafka_does() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let a = ok(&g.heartbeat(join("a", &["orders"]), &catalog(), now)).clone();
    let r = g.heartbeat(beat("a", 5, &a), &catalog(), now);
    assert_eq!(r.error, ResponseError::FencedMemberEpoch.code());
    let r = g.heartbeat(beat("nobody", 1, &a), &catalog(), now);
    assert_eq!(r.error, ResponseError::UnknownMemberId.code());
    // The previous epoch with a subset of the assignment is accepted (a lost response).
    g.heartbeat(join("b", &["orders"]), &catalog(), now);
    let kept = ok(&g.heartbeat(beat("a", 1, &a), &catalog(), now)).clone();
    let r = g.heartbeat(beat("a", 1, &kept), &catalog(), now);
    assert_eq!(r.member_epoch, 2);
    let r = g.heartbeat(beat("a", 1, &kept), &catalog(), now);
    assert_eq!(r.error, 0, "previous epoch, subset owned");
    let r = g.heartbeat(beat("a", 1, &a), &catalog(), now);
    assert_eq!(
        r.error,
        ResponseError::FencedMemberEpoch.code(),
        "previous epoch, more owned"
    );
}

#[test]
fn unknown_assignor_invalid_regex_and_malformed_joins_are_refused() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let mut req = join("a", &["orders"]);
    req.server_assignor = Some("sticky".into());
    let r = g.heartbeat(req, &catalog(), now);
    assert_eq!(r.error, ResponseError::UnsupportedAssignor.code());
    let mut req = join("a", &[]);
    req.subscribed_topic_regex = Some("orders(".into());
    let r = g.heartbeat(req, &catalog(), now);
    assert_eq!(r.error, ResponseError::InvalidRegularExpression.code());
    let mut req = join("a", &["orders"]);
    req.rebalance_timeout_ms = -1;
    assert_eq!(
        g.heartbeat(req, &catalog(), now).error,
        ResponseError::InvalidRequest.code()
    );
    assert!(g.members.is_empty());
}

#[test]
fn a_member_that_leaves_hands_its_partitions_over_at_once() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let mut req = join("a", &["orders"]);
    req.server_assignor = Some("range".into());
    g.heartbeat(req, &catalog(), now);
    g.heartbeat(join("b", &["orders"]), &catalog(), now);
    let leave = ConsumerHeartbeat {
        member_id: "a".into(),
        member_epoch: -1,
        ..ConsumerHeartbeat::default()
    };
    let r = g.heartbeat(leave, &catalog(), now);
    assert_eq!((r.error, r.member_epoch), (0, -1));
    let r = g.heartbeat(beat("b", 2, &Assignment::new()), &catalog(), now);
    assert_eq!(count(ok(&r)), 12);
    assert_eq!(r.member_epoch, 3);
}

#[test]
fn a_static_member_away_keeps_its_partitions_and_comes_back_under_a_new_id() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let mut req = join("a", &["orders"]);
    req.instance_id = Some("i1".into());
    let owned = ok(&g.heartbeat(req.clone(), &catalog(), now)).clone();
    // Another member with the same instance id is refused while a is active.
    let mut other = req.clone();
    other.member_id = "a2".into();
    let r = g.heartbeat(other.clone(), &catalog(), now);
    assert_eq!(r.error, ResponseError::UnreleasedInstanceId.code());
    let away = ConsumerHeartbeat {
        member_id: "a".into(),
        member_epoch: -2,
        instance_id: Some("i1".into()),
        ..ConsumerHeartbeat::default()
    };
    assert_eq!(g.heartbeat(away, &catalog(), now).member_epoch, -2);
    let epoch = g.group_epoch;
    let r = g.heartbeat(other, &catalog(), now);
    assert_eq!(ok(&r), &owned);
    assert_eq!(g.group_epoch, epoch, "no rebalance");
    assert!(g.members.contains_key("a2") && !g.members.contains_key("a"));
}

#[test]
fn regex_subscriptions_follow_new_topics_and_skip_internal_ones() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    let mut req = join("a", &[]);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some("orders.*|__.*".into());
    let r = g.heartbeat(req, &catalog(), now);
    assert_eq!(
        count(ok(&r)),
        14,
        "orders and orders-eu, not __consumer_offsets"
    );
    let mut more = catalog();
    more.insert("orders-us".into(), (topic_id(4), 3));
    more.insert("orders".into(), (topic_id(1), 13));
    let r = g.heartbeat(beat("a", 1, ok(&r)), &more, now);
    assert_eq!(count(ok(&r)), 18);
    assert_eq!(r.member_epoch, 2);
}

#[test]
fn a_silent_member_expires_after_its_session() {
    let mut g = ConsumerGroup::new("g", settings());
    let now = Instant::now();
    g.heartbeat(join("a", &["orders"]), &catalog(), now);
    assert_eq!(g.expired("a", now + Duration::from_secs(44)), None);
    assert!(g.expired("a", now + Duration::from_secs(45)).is_some());
    assert_eq!(g.next_check("a"), Some(now + Duration::from_secs(45)));
    assert!(g.remove_member("a"));
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn offset_commits_need_the_current_member_epoch() {
    let mut g = ConsumerGroup::new("g", settings());
    assert_eq!(g.validate_offset_commit("", -1), Ok(()));
    g.heartbeat(join("a", &["orders"]), &catalog(), Instant::now());
    assert_eq!(g.validate_offset_commit("a", 1), Ok(()));
    assert_eq!(
        g.validate_offset_commit("a", 0),
        Err(ResponseError::StaleMemberEpoch.code())
    );
    assert_eq!(
        g.validate_offset_commit("", -1),
        Err(ResponseError::UnknownMemberId.code())
    );
    assert!(g.subscribed_to("orders") && !g.subscribed_to("other"));
    assert_eq!(g.validate_offset_fetch("a", 1), Ok(()));
    assert_eq!(
        g.validate_offset_fetch("a", 2),
        Err(ResponseError::StaleMemberEpoch.code())
    );
    assert_eq!(
        g.validate_offset_fetch("b", 1),
        Err(ResponseError::UnknownMemberId.code())
    );
}
