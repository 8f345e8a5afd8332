//! Replicated partitions across three real broker processes: an idempotent acks=all
//! producer (librdkafka, given all three addresses) keeps producing while the partition's
//! leader is killed with SIGKILL; with RF=3 and min.insync.replicas=2 every acknowledged
//! record is read back exactly once, in order, from the new leader; the old leader,
//! restarted, catches up and rejoins the ISR. Bounded waits only.
//!
//! After the failover a consumer's OffsetForLeaderEpoch (replica_id -1, KIP-320) is
//! answered by the new leader from its leader-epoch cache, as Kafka's is. A topic's
//! min.insync.replicas changed with IncrementalAlterConfigs reaches its started replicas.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::producer::BaseRecord;

use super::client_hostile_records::request;
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, metadata, start_cluster, topic, wait_everywhere, SLACK,
};
use super::cluster_network_faults::produce_straight_to;
use super::harness::{
    bootstrap_all, consume, consumer, flush, idempotent_producer, send, send_and_wait, TestBroker,
};

const TOPIC: &str = "failover";
const BEFORE: usize = 200;
const AFTER: usize = 200;

#[test]
fn acks_all_records_survive_a_leader_kill_exactly_once() {
    let mut brokers = start_cluster(0);
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], TOPIC, 1, &[("min.insync.replicas", "2")]);
    wait_everywhere(&every(&brokers), SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC)
            .is_some_and(|t| t.partitions.len() == 1 && t.partitions[0].isr_nodes.len() == 3)
    });
    let leader = topic(&metadata(&brokers[0]).unwrap(), TOPIC)
        .unwrap()
        .partitions[0]
        .leader_id
        .0;
    let bootstrap = bootstrap_all(&brokers);
    let (producer, deliveries) = idempotent_producer(&bootstrap);
    let payload = |i: usize| format!("record-{i}").into_bytes();
    for i in 0..BEFORE {
        let value = payload(i);
        send(
            &producer,
            BaseRecord::to(TOPIC).partition(0).payload(&value[..]),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), BEFORE);

    brokers[(leader - 1) as usize].kill9();
    let killed = Instant::now();
    let first = payload(BEFORE);
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to(TOPIC).partition(0).payload(&first[..]),
    );
    eprintln!(
        "first acks=all record acknowledged {:?} after killing leader {leader}",
        killed.elapsed()
    );
    for i in BEFORE + 1..BEFORE + AFTER {
        let value = payload(i);
        send(
            &producer,
            BaseRecord::to(TOPIC).partition(0).payload(&value[..]),
        );
    }
    flush(&producer);
    assert_eq!(
        (
            deliveries.ok.load(Ordering::SeqCst),
            deliveries.failed.load(Ordering::SeqCst)
        ),
        (BEFORE + AFTER, 0),
        "{:?}",
        deliveries.first_error.lock().unwrap()
    );

    consumer_epoch_queries_answered_by_the_new_leader(&brokers, leader);

    // The survivors only: librdkafka reports the dead bootstrap address as a consume error.
    let survivors = brokers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 != leader - 1)
        .map(|(_, b)| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let reader = consumer(&survivors, &[]);
    let read = consume(&reader, TOPIC, 1, BEFORE + AFTER, Duration::from_secs(60));
    let payloads: Vec<Vec<u8>> = read.iter().filter_map(|r| r.payload.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..BEFORE + AFTER).map(payload).collect();
    assert_eq!(
        payloads.len(),
        expected.len(),
        "read {} records",
        payloads.len()
    );
    assert_eq!(
        payloads, expected,
        "every acknowledged record once, in order"
    );
}

/// A consumer's OffsetForLeaderEpoch for (current epoch, epoch) of the partition, sent to
/// `broker`: (error code, epoch, end offset).
fn end_offset_for_epoch(broker: &TestBroker, current: i32, epoch: i32) -> (i16, i32, i64) {
    let partition = OffsetForLeaderPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(current)
        .with_leader_epoch(epoch);
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(super::protocol_versions::name(TOPIC))
            .with_partitions(vec![partition])]);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r: OffsetForLeaderEpochResponse =
        request(&mut socket, ApiKey::OffsetForLeaderEpoch, 4, 7, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// After the kill of `killed`: the new leader answers from its epoch cache (the old epoch
/// ends where the new one starts, the new one at the log end); a stale current epoch is
/// FENCED_LEADER_EPOCH; the surviving follower answers NOT_LEADER_OR_FOLLOWER.
fn consumer_epoch_queries_answered_by_the_new_leader(brokers: &[TestBroker], killed: i32) {
    let survivor = &brokers[if killed == 1 { 1 } else { 0 }];
    let r = metadata(survivor).expect("metadata from a survivor");
    let p = &topic(&r, TOPIC).expect("the topic").partitions[0];
    let (leader, epoch) = (p.leader_id.0, p.leader_epoch);
    assert!(
        leader != killed && epoch > 0,
        "leader {leader} at epoch {epoch}"
    );
    let follower = (1..=3).find(|id| *id != leader && *id != killed).unwrap();
    let (leader, follower) = (
        &brokers[(leader - 1) as usize],
        &brokers[(follower - 1) as usize],
    );
    let end = (BEFORE + AFTER) as i64;
    assert_eq!(end_offset_for_epoch(leader, epoch, epoch), (0, epoch, end));
    assert_eq!(
        end_offset_for_epoch(leader, epoch, 0),
        (0, 0, BEFORE as i64),
        "epoch 0 ends where the new leader's epoch starts"
    );
    assert_eq!(
        end_offset_for_epoch(leader, epoch - 1, epoch).0,
        ResponseError::FencedLeaderEpoch.code()
    );
    assert_eq!(
        end_offset_for_epoch(leader, epoch + 1, epoch).0,
        ResponseError::UnknownLeaderEpoch.code()
    );
    assert_eq!(
        end_offset_for_epoch(follower, epoch, epoch).0,
        ResponseError::NotLeaderOrFollower.code()
    );
}

/// IncrementalAlterConfigs SET of one topic config through `broker`: the error code.
fn set_topic_config(broker: &TestBroker, topic: &str, key: &str, value: &str) -> i16 {
    let text = |s: &str| StrBytes::from_string(s.to_string());
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text(topic))
            .with_configs(vec![AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(0)
                .with_value(Some(text(value)))]),
    ]);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let r: IncrementalAlterConfigsResponse =
        request(&mut socket, ApiKey::IncrementalAlterConfigs, 1, 3, &req);
    r.responses[0].error_code
}

#[test]
fn a_min_insync_replicas_change_reaches_the_started_leader() {
    const NAME: &str = "min-insync-change";
    let mut brokers = start_cluster(0);
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], NAME, 1, &[("min.insync.replicas", "2")]);
    wait_everywhere(&every(&brokers), SLACK, "the partition with ISR 3", |r| {
        topic(r, NAME).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let leader = topic(&metadata(&brokers[0]).unwrap(), NAME)
        .unwrap()
        .partitions[0]
        .leader_id
        .0;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    brokers[(follower - 1) as usize].kill9();
    let live: Vec<&TestBroker> = brokers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 != follower - 1)
        .map(|(_, b)| b)
        .collect();
    wait_everywhere(&live, SLACK, "the ISR without the killed follower", |r| {
        topic(r, NAME).is_some_and(|t| t.partitions[0].isr_nodes.len() == 2)
    });
    let leader = &brokers[(leader - 1) as usize];
    let wait = Duration::from_secs(10);
    assert_eq!(
        produce_straight_to(leader, NAME, b"two in sync", wait),
        Some(0)
    );

    assert_eq!(
        set_topic_config(leader, NAME, "min.insync.replicas", "3"),
        0
    );
    let deadline = Instant::now() + SLACK;
    loop {
        let code = produce_straight_to(leader, NAME, b"needs three", wait);
        if code == Some(ResponseError::NotEnoughReplicas.code()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=all with ISR 2 and min.insync.replicas 3 answered {code:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
