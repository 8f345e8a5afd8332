//! Fetch from the closest replica (KIP-392) and leader hints on Fetch (KIP-951), on three
//! broker processes in racks rack-1..rack-3 with Kafka's RackAwareReplicaSelector:
//! - the leader sends a consumer whose `rack_id` is a follower's rack to that follower
//!   (preferred_read_replica, no records), and serves one from its own rack itself;
//! - a follower serves Fetch v11+ up to its high watermark, and refuses v10 with
//!   NOT_LEADER_OR_FOLLOWER as Kafka does;
//! - a broker that is no replica answers NOT_LEADER_OR_FOLLOWER with the current leader
//!   (v12+) and its endpoint (v16+);
//! - librdkafka with `client.rack` reads every record.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::BaseRecord;

use super::client_hostile_records::request;
use super::cluster_admin::create_assigned;
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, metadata, start_cluster_per_node, topic, wait_everywhere,
    SESSION_TIMEOUT_MS, SLACK,
};
use super::harness::{bootstrap_all, consume, consumer, flush, producer, send, TestBroker};
use super::protocol_versions::name;

const SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const RECORDS: usize = 50;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Fetch of partition 0 from offset 0 by a consumer in `rack`, by name (v12 and below).
fn fetch(broker: &TestBroker, version: i16, topic: &str, rack: &str) -> PartitionData {
    fetch_at_epoch(broker, version, topic, rack, -1)
}

/// `fetch` with the consumer's current leader epoch (-1: unchecked).
pub(crate) fn fetch_at_epoch(
    broker: &TestBroker,
    version: i16,
    topic: &str,
    rack: &str,
    current_leader_epoch: i32,
) -> PartitionData {
    let request_body = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_rack_id(StrBytes::from_string(rack.to_string()))
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_fetch_offset(0)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let r: FetchResponse = request(&mut socket, ApiKey::Fetch, version, 1, &request_body);
    assert_eq!(r.error_code, 0, "fetch v{version}");
    r.responses[0].partitions[0].clone()
}

fn partition(r: &MetadataResponse, name: &str) -> Option<MetadataResponsePartition> {
    topic(r, name).and_then(|t| t.partitions.first().cloned())
}

#[test]
fn consumers_fetch_from_an_in_sync_replica_in_their_rack() {
    let brokers = start_cluster_per_node(0, (200, SESSION_TIMEOUT_MS), |id| {
        format!("broker_rack = \"rack-{id}\"\nreplica_selector_class = \"{SELECTOR}\"\n")
    });
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r) == BTreeSet::from([1, 2, 3])
    });
    create_topic_with(&brokers[0], "closest", 1, &[("min.insync.replicas", "2")]);
    wait_everywhere(&every(&brokers), SLACK, "closest placed", |r| {
        partition(r, "closest").is_some_and(|p| p.isr_nodes.len() == 3 && p.leader_id.0 > 0)
    });
    let bootstrap = bootstrap_all(&brokers);
    let (p, deliveries) = producer(&bootstrap, &[("acks", "all")]);
    for i in 0..RECORDS {
        let payload = format!("r{i}");
        send(
            &p,
            BaseRecord::to("closest")
                .partition(0)
                .payload(payload.as_bytes()),
        );
    }
    flush(&p);
    assert_eq!(
        deliveries.ok.load(std::sync::atomic::Ordering::SeqCst),
        RECORDS,
        "every record acknowledged"
    );

    let placed = partition(&metadata(&brokers[0]).unwrap(), "closest").unwrap();
    let leader_id = placed.leader_id.0;
    let follower_id = placed
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .find(|id| *id != leader_id)
        .unwrap();
    let by_id = |id: i32| &brokers[(id - 1) as usize];
    let (leader, follower) = (by_id(leader_id), by_id(follower_id));

    // The leader sends a consumer in the follower's rack there, with no records.
    let sent = fetch(leader, 12, "closest", &format!("rack-{follower_id}"));
    assert_eq!(
        (sent.error_code, sent.preferred_read_replica.0),
        (0, follower_id)
    );
    assert!(sent.records.as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(sent.high_watermark, RECORDS as i64);
    // In the leader's own rack, and below v11, the leader serves the records itself.
    for (version, rack) in [
        (12, format!("rack-{leader_id}")),
        (10, format!("rack-{follower_id}")),
    ] {
        let own = fetch(leader, version, "closest", &rack);
        assert_eq!(own.preferred_read_replica.0, -1, "v{version} {rack}");
        assert!(
            own.records.is_some_and(|r| !r.is_empty()),
            "v{version} {rack}"
        );
    }

    // The follower serves v11+ up to its high watermark (it learns the leader's with its
    // next fetch), and refuses v10.
    let deadline = Instant::now() + SLACK;
    loop {
        let read = fetch(follower, 12, "closest", "");
        assert_eq!(read.error_code, 0, "the follower serves Fetch v12");
        if read.high_watermark == RECORDS as i64
            && read.records.as_ref().is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "follower high watermark {read:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let old = fetch(follower, 10, "closest", "");
    assert_eq!(old.error_code, NOT_LEADER_OR_FOLLOWER);

    // librdkafka in the follower's rack follows the leader's pointer and reads everything.
    let c = consumer(
        &bootstrap,
        &[("client.rack", &format!("rack-{follower_id}"))],
    );
    let read = consume(&c, "closest", 1, RECORDS, Duration::from_secs(30));
    let offsets: Vec<i64> = read.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..RECORDS as i64).collect::<Vec<_>>());

    leader_hints_from_a_broker_that_is_no_replica(&brokers);
}

/// KIP-951: a topic on brokers 1 and 2 only, fetched from broker 3.
fn leader_hints_from_a_broker_that_is_no_replica(brokers: &[TestBroker]) {
    let (code, message) = create_assigned(&brokers[0], "elsewhere", -1, &[&[1, 2]]);
    assert_eq!(code, 0, "{message}");
    wait_everywhere(&every(brokers), SLACK, "elsewhere placed", |r| {
        partition(r, "elsewhere").is_some_and(|p| p.isr_nodes.len() == 2 && p.leader_id.0 > 0)
    });
    let leader = partition(&metadata(&brokers[2]).unwrap(), "elsewhere")
        .unwrap()
        .leader_id;
    let hinted = fetch(&brokers[2], 12, "elsewhere", "");
    assert_eq!(hinted.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(hinted.current_leader.leader_id, leader);
    assert!(hinted.current_leader.leader_epoch >= 0);

    let mut socket = TcpStream::connect(("127.0.0.1", brokers[2].port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let id = metadata(&brokers[2])
        .and_then(|r| topic(&r, "elsewhere").map(|t| t.topic_id))
        .unwrap();
    let body = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = request(&mut socket, ApiKey::Fetch, 16, 2, &body);
    let endpoints: Vec<i32> = r.node_endpoints.iter().map(|e| e.node_id.0).collect();
    assert_eq!(endpoints, vec![leader.0]);
    assert_eq!(
        r.node_endpoints[0].port,
        i32::from(brokers[(leader.0 - 1) as usize].port())
    );
}
