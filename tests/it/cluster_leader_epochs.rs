//! Leader epochs on client requests (KIP-320), with raw frames against three broker
//! processes, as Kafka's Partition.getLocalLog checks them: a current_leader_epoch older
//! than the replica's is FENCED_LEADER_EPOCH (74), a newer one UNKNOWN_LEADER_EPOCH (75),
//! -1 is not checked; the epoch is checked before the role, on the leader and on a
//! follower alike:
//! - Fetch (consumer, replica_id -1), served by the leader and from v11 by a follower
//!   (KIP-392), with the current leader and its epoch on a fenced partition (KIP-951, v12+);
//! - ListOffsets (v4+), answered by the leader only, each offset with the epoch it was
//!   written in;
//! - OffsetForLeaderEpoch (consumer), answered by the leader only;
//! - OffsetCommit's committed_leader_epoch, kept and answered by OffsetFetch.
//!
//! The partition's leader is killed once so that its epoch is above 0.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, GroupId, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::producer::BaseRecord;

use super::client_hostile_records::request;
use super::cluster_admin::create_assigned;
use super::cluster_coordinators::find_coordinator;
use super::cluster_follower_fetch::fetch_at_epoch;
use super::cluster_metadata::{
    broker_ids, eventually, every, metadata, start_cluster, topic, wait_everywhere, SLACK,
};
use super::harness::{bootstrap_all, flush, producer, send, TestBroker};
use super::protocol_versions::name;

const TOPIC: &str = "epochs";
const GROUP: &str = "epoch-committer";
/// Records written at epoch 0, then as many at the epoch after the kill.
const EACH: usize = 10;
const FENCED: i16 = 74;
const UNKNOWN: i16 = 75;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn connect(broker: &TestBroker) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket
}

/// A consumer's Fetch of partition 0 from offset 0 at `current` epoch.
fn fetch(broker: &TestBroker, version: i16, current: i32) -> PartitionData {
    fetch_at_epoch(broker, version, TOPIC, "", current)
}

/// ListOffsets v7 of partition 0 for `timestamp` at `current` epoch.
fn list_offset(broker: &TestBroker, timestamp: i64, current: i32) -> ListOffsetsPartitionResponse {
    let body = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(current)
                .with_timestamp(timestamp)])]);
    let r: ListOffsetsResponse = request(&mut connect(broker), ApiKey::ListOffsets, 7, 1, &body);
    r.topics[0].partitions[0].clone()
}

/// A consumer's OffsetForLeaderEpoch v4 of partition 0: (error, epoch, end offset).
fn end_offset_for_epoch(broker: &TestBroker, current: i32, epoch: i32) -> (i16, i32, i64) {
    let body = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let r: OffsetForLeaderEpochResponse = request(
        &mut connect(broker),
        ApiKey::OffsetForLeaderEpoch,
        4,
        1,
        &body,
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[test]
fn client_leader_epochs_are_checked_by_the_leader_and_by_followers() {
    let mut brokers = start_cluster(0);
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    let (code, message) = create_assigned(&brokers[0], TOPIC, -1, &[&[1, 2, 3]]);
    assert_eq!(code, 0, "{message}");
    wait_everywhere(
        &every(&brokers),
        SLACK,
        "the partition led by 1, ISR 3",
        |r| {
            topic(r, TOPIC).is_some_and(|t| {
                t.partitions.len() == 1
                    && t.partitions[0].leader_id.0 == 1
                    && t.partitions[0].isr_nodes.len() == 3
            })
        },
    );
    let (p, deliveries) = producer(&bootstrap_all(&brokers), &[("acks", "all")]);
    let write = |tag: &str| {
        for i in 0..EACH {
            let payload = format!("{tag}-{i}");
            send(
                &p,
                BaseRecord::to(TOPIC)
                    .partition(0)
                    .payload(payload.as_bytes()),
            );
        }
        flush(&p);
    };
    write("epoch-0");

    // Broker 1 dies: another leads at a newer epoch, and the rest is written there.
    brokers[0].kill9();
    let survivors = [&brokers[1], &brokers[2]];
    wait_everywhere(&survivors, SLACK, "a new leader", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].leader_id.0 > 1)
    });
    write("later");
    assert_eq!(
        deliveries.ok.load(Ordering::SeqCst),
        2 * EACH,
        "all acknowledged"
    );
    let placed = topic(&metadata(&brokers[1]).unwrap(), TOPIC)
        .unwrap()
        .partitions[0]
        .clone();
    let (leader_id, epoch) = (placed.leader_id.0, placed.leader_epoch);
    assert!(epoch > 0, "epoch {epoch}");
    let follower_id = if leader_id == 2 { 3 } else { 2 };
    let (leader, follower) = (
        &brokers[(leader_id - 1) as usize],
        &brokers[(follower_id - 1) as usize],
    );
    eventually("the follower at the new epoch", || {
        let read = fetch(follower, 12, epoch);
        (read.error_code == 0, format!("{read:?}"))
    });

    // Fetch: on the leader and on the follower (v11+) alike; -1 is not checked.
    for (broker, what) in [(leader, "leader"), (follower, "follower")] {
        assert_eq!(
            fetch(broker, 12, epoch).error_code,
            0,
            "{what} at the epoch"
        );
        assert_eq!(fetch(broker, 12, -1).error_code, 0, "{what} unchecked");
        assert_eq!(fetch(broker, 12, epoch + 1).error_code, UNKNOWN, "{what}");
        let fenced = fetch(broker, 12, epoch - 1);
        assert_eq!(fenced.error_code, FENCED, "{what}");
        // KIP-951: the current leader and its epoch come with the refusal.
        assert_eq!(
            (
                fenced.current_leader.leader_id.0,
                fenced.current_leader.leader_epoch
            ),
            (leader_id, epoch),
            "{what}"
        );
    }
    let served = fetch(leader, 12, epoch);
    assert!(served.records.is_some_and(|r| !r.is_empty()));
    // Below v11 only the leader serves; the epoch is still checked first.
    assert_eq!(
        fetch(follower, 10, epoch).error_code,
        NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(fetch(follower, 10, epoch - 1).error_code, FENCED);

    // ListOffsets: the leader only, each offset with the epoch it was written in.
    let latest = list_offset(leader, -1, epoch);
    assert_eq!(
        (latest.error_code, latest.offset, latest.leader_epoch),
        (0, 2 * EACH as i64, epoch)
    );
    let earliest = list_offset(leader, -2, -1);
    assert_eq!(
        (earliest.error_code, earliest.offset, earliest.leader_epoch),
        (0, 0, 0)
    );
    for (broker, what) in [(leader, "leader"), (follower, "follower")] {
        assert_eq!(
            list_offset(broker, -1, epoch - 1).error_code,
            FENCED,
            "{what}"
        );
        assert_eq!(
            list_offset(broker, -1, epoch + 1).error_code,
            UNKNOWN,
            "{what}"
        );
    }
    assert_eq!(
        list_offset(follower, -1, epoch).error_code,
        NOT_LEADER_OR_FOLLOWER
    );

    // OffsetForLeaderEpoch: the leader answers; the follower checks the epoch, then
    // refuses.
    assert_eq!(
        end_offset_for_epoch(leader, epoch, 0),
        (0, 0, EACH as i64),
        "epoch 0 ends where the new one starts"
    );
    assert_eq!(end_offset_for_epoch(leader, epoch - 1, epoch).0, FENCED);
    assert_eq!(end_offset_for_epoch(leader, epoch + 1, epoch).0, UNKNOWN);
    assert_eq!(end_offset_for_epoch(follower, epoch - 1, epoch).0, FENCED);
    assert_eq!(end_offset_for_epoch(follower, epoch + 1, epoch).0, UNKNOWN);
    assert_eq!(
        end_offset_for_epoch(follower, epoch, epoch).0,
        NOT_LEADER_OR_FOLLOWER
    );

    committed_leader_epochs_are_kept(&brokers, epoch);
}

/// OffsetCommit v8 (a simple commit: generation -1, no member) with a leader epoch, then
/// OffsetFetch v7 answers it, as Kafka stores it (unchecked) for the consumer's
/// truncation check after a restart (KIP-320).
fn committed_leader_epochs_are_kept(brokers: &[TestBroker], epoch: i32) {
    let id = find_coordinator(&brokers[1], GROUP, 0);
    let coordinator = &brokers[(id - 1) as usize];
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(2 * EACH as i64)
                .with_committed_leader_epoch(epoch)])]);
    eventually("the commit", || {
        let r: OffsetCommitResponse = request(
            &mut connect(coordinator),
            ApiKey::OffsetCommit,
            8,
            1,
            &commit,
        );
        let code = r.topics[0].partitions[0].error_code;
        (
            code == 0,
            format!("{:?}", ResponseError::try_from_code(code)),
        )
    });
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let r: OffsetFetchResponse =
        request(&mut connect(coordinator), ApiKey::OffsetFetch, 7, 1, &fetch);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.committed_offset, p.committed_leader_epoch),
        (0, 2 * EACH as i64, epoch)
    );
}
