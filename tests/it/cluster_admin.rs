//! The cluster admin APIs against three real broker processes on 127.0.0.1 (free ports,
//! temp dirs), with raw frames: CreateTopics and CreatePartitions with explicit
//! assignments (and Kafka's INVALID_REPLICA_ASSIGNMENT / INVALID_REQUEST for bad ones),
//! DescribeCluster listing every broker, logs opened only where a replica is, DescribeQuorum's voters and their lag, and
//! ElectLeaders moving leadership back to the preferred replica after a failover; and
//! AlterPartitionReassignments / ListPartitionReassignments moving a replica under load. One
//! cluster for all of it, to keep the CI time down. Every wait polls and is bounded.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use rdkafka::producer::BaseRecord;

use super::client_hostile_records::request;
use super::cluster_metadata::{
    broker_ids, eventually, every, start_cluster, topic, wait_everywhere, SLACK,
};
use super::harness::{
    bootstrap_all, consume, consumer, flush, idempotent_producer, send, TestBroker,
};
use super::protocol_versions::name;

const NOT_CONTROLLER: i16 = 41;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
const ELECTION_NOT_NEEDED: i16 = 84;

pub(crate) fn ask<Req: Encodable, Resp: Decodable>(
    broker: &TestBroker,
    api: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    request(&mut socket, api, version, 1, body)
}

/// Repeats `attempt` while it answers NOT_CONTROLLER (no quorum leader yet), or `also`,
/// until SLACK has passed; the last answer.
fn retried(also: i16, mut attempt: impl FnMut() -> (i16, String)) -> (i16, String) {
    let deadline = Instant::now() + SLACK;
    loop {
        let (code, message) = attempt();
        if (code != NOT_CONTROLLER && code != also) || Instant::now() > deadline {
            return (code, message);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn create_assigned(
    broker: &TestBroker,
    topic: &str,
    partitions: i32,
    assignments: &[&[i32]],
) -> (i16, String) {
    let assignments = assignments
        .iter()
        .enumerate()
        .map(|(index, replicas)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(index as i32)
                .with_broker_ids(replicas.iter().map(|id| BrokerId(*id)).collect())
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_assignments(assignments);
    let create = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    retried(NOT_CONTROLLER, || {
        let r: CreateTopicsResponse = ask(broker, ApiKey::CreateTopics, 5, &create);
        let t = &r.topics[0];
        (t.error_code, format!("{:?}", t.error_message))
    })
}

fn grow_assigned(broker: &TestBroker, topic: &str, count: i32, assignments: &[&[i32]]) -> i16 {
    let assignments = assignments
        .iter()
        .map(|replicas| {
            CreatePartitionsAssignment::default()
                .with_broker_ids(replicas.iter().map(|id| BrokerId(*id)).collect())
        })
        .collect();
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(count)
            .with_assignments(Some(assignments))])
        .with_timeout_ms(30_000);
    retried(NOT_CONTROLLER, || {
        let r: CreatePartitionsResponse = ask(broker, ApiKey::CreatePartitions, 3, &grow);
        (
            r.results[0].error_code,
            format!("{:?}", r.results[0].error_message),
        )
    })
    .0
}

/// ElectLeaders v2 for one partition: its error code.
fn elect(broker: &TestBroker, election: i8, topic: &str, partition: i32) -> (i16, String) {
    let req = ElectLeadersRequest::default()
        .with_election_type(election)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
        )
        .with_topic(name(topic))
        .with_partitions(vec![partition])]))
        .with_timeout_ms(30_000);
    let r: ElectLeadersResponse = ask(broker, ApiKey::ElectLeaders, 2, &req);
    let p = &r.replica_election_results[0].partition_result[0];
    (p.error_code, format!("{:?}", p.error_message))
}

fn replicas_and_leader(
    r: &MetadataResponse,
    name: &str,
    partition: usize,
) -> Option<(Vec<i32>, i32)> {
    let p = topic(r, name)?.partitions.get(partition)?;
    Some((p.replica_nodes.iter().map(|b| b.0).collect(), p.leader_id.0))
}

#[test]
fn admin_apis_assign_describe_and_elect_on_three_brokers() {
    let started = Instant::now();
    let mut brokers = start_cluster(0);
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r) == BTreeSet::from([1, 2, 3])
    });

    // DescribeCluster through any broker lists all three.
    let described: DescribeClusterResponse = ask(
        &brokers[1],
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    );
    let ids: BTreeSet<i32> = described.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));

    // Bad assignments, as Kafka's controller answers them.
    let bad: [(&str, i32, &[&[i32]], i16); 4] = [
        ("uneven", -1, &[&[1, 2], &[2]], INVALID_REPLICA_ASSIGNMENT),
        ("twice", -1, &[&[1, 1]], INVALID_REPLICA_ASSIGNMENT),
        ("unknown-broker", -1, &[&[1, 9]], INVALID_REPLICA_ASSIGNMENT),
        ("with-count", 2, &[&[1, 2], &[2, 3]], INVALID_REQUEST),
    ];
    for (topic, count, assignments, code) in bad {
        let (got, message) = create_assigned(&brokers[0], topic, count, assignments);
        assert_eq!(got, code, "{topic}: {message}");
    }
    // Partition 0 prefers broker 3, partition 1 broker 2.
    let (code, message) = create_assigned(&brokers[0], "manual", -1, &[&[3, 1, 2], &[2, 3, 1]]);
    assert_eq!(code, 0, "{message}\n{}", brokers[0].logs());
    wait_everywhere(&every(&brokers), SLACK, "the manual assignment", |r| {
        replicas_and_leader(r, "manual", 0) == Some((vec![3, 1, 2], 3))
            && replicas_and_leader(r, "manual", 1) == Some((vec![2, 3, 1], 2))
    });
    assert_eq!(
        grow_assigned(&brokers[1], "manual", 3, &[&[1, 2]]),
        INVALID_REPLICA_ASSIGNMENT,
        "RF 2 for an RF 3 topic"
    );
    assert_eq!(grow_assigned(&brokers[1], "manual", 3, &[&[1, 3, 2]]), 0);
    wait_everywhere(&every(&brokers), SLACK, "the added partition", |r| {
        replicas_and_leader(r, "manual", 2) == Some((vec![1, 3, 2], 1))
    });

    // A partition opens its log only on its replicas: RF 1 on broker 2.
    let (code, message) = create_assigned(&brokers[0], "pinned", -1, &[&[2]]);
    assert_eq!(code, 0, "{message}");
    wait_everywhere(&every(&brokers), SLACK, "the pinned topic", |r| {
        replicas_and_leader(r, "pinned", 0) == Some((vec![2], 2))
    });
    let deadline = Instant::now() + SLACK;
    while !brokers[1].data_dir().join("pinned-0").exists() {
        assert!(
            Instant::now() < deadline,
            "broker 2 opened no log for pinned-0"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for other in [&brokers[0], &brokers[2]] {
        assert!(
            !other.data_dir().join("pinned-0").exists(),
            "a broker that is no replica opened a log"
        );
    }

    // DescribeQuorum through a follower: three voters, caught up with the leader.
    let quorum_caught_up = || {
        let req = DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(name("__cluster_metadata"))
                .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
        ]);
        let r: DescribeQuorumResponse = ask(&brokers[1], ApiKey::DescribeQuorum, 1, &req);
        let p = &r.topics[0].partitions[0];
        let voters: BTreeSet<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        let ends: BTreeSet<i64> = p.current_voters.iter().map(|v| v.log_end_offset).collect();
        let ok = p.error_code == 0
            && voters == BTreeSet::from([1, 2, 3])
            && voters.contains(&p.leader_id.0)
            && p.leader_epoch >= 1
            && ends.len() == 1
            && p.high_watermark > 0
            && ends.iter().all(|e| *e >= p.high_watermark);
        (ok, format!("{p:?}"))
    };
    eventually("DescribeQuorum", quorum_caught_up);

    // Nothing to elect where the preferred replica leads.
    assert_eq!(elect(&brokers[0], 0, "manual", 1).0, ELECTION_NOT_NEEDED);
    assert_eq!(elect(&brokers[0], 1, "manual", 1).0, ELECTION_NOT_NEEDED);

    // Broker 3 dies: partition 0's leadership moves to 1; back, it is not given back.
    brokers[2].kill9();
    let survivors = [&brokers[0], &brokers[1]];
    wait_everywhere(&survivors, SLACK, "partition 0 led by broker 1", |r| {
        replicas_and_leader(r, "manual", 0).is_some_and(|(_, leader)| leader == 1)
    });
    brokers[2].restart();
    // PREFERRED_LEADER_NOT_AVAILABLE until broker 3 is back in the ISR.
    let (code, message) = retried(PREFERRED_LEADER_NOT_AVAILABLE, || {
        elect(&brokers[1], 0, "manual", 0)
    });
    assert_eq!(code, 0, "{message}\n{}", brokers[2].logs());
    wait_everywhere(&every(&brokers), SLACK, "broker 3 leading again", |r| {
        replicas_and_leader(r, "manual", 0) == Some((vec![3, 1, 2], 3))
    });
    eprintln!("cluster admin test took {:?}", started.elapsed());
}

/// A partition under reassignment: (index, replicas, adding, removing).
type Ongoing = (i32, Vec<i32>, Vec<i32>, Vec<i32>);

fn reassignments(broker: &TestBroker) -> Vec<Ongoing> {
    let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000);
    let r: ListPartitionReassignmentsResponse =
        ask(broker, ApiKey::ListPartitionReassignments, 0, &req);
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    r.topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            (
                p.partition_index,
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            )
        })
        .collect()
}

/// Kafka's reassignment under acks=all load: broker 3's replica moves to a fourth broker
/// (4 joins, catches up, enters the ISR, then 3 leaves and deletes its log); the list API
/// shows it under way, then none; every acknowledged record is read back once, in order.
#[test]
fn a_reassignment_moves_a_replica_to_a_fourth_broker_under_load() {
    const RECORDS: usize = 3_000;
    let brokers = start_cluster(1);
    wait_everywhere(&every(&brokers), SLACK, "four brokers", |r| {
        broker_ids(r) == BTreeSet::from([1, 2, 3, 4])
    });
    let (code, message) = create_assigned(&brokers[0], "moving", -1, &[&[1, 2, 3]]);
    assert_eq!(code, 0, "{message}");
    wait_everywhere(&every(&brokers), SLACK, "the topic with ISR 3", |r| {
        topic(r, "moving")
            .is_some_and(|t| t.partitions.len() == 1 && t.partitions[0].isr_nodes.len() == 3)
    });
    let bootstrap = bootstrap_all(&brokers);
    let (producer, deliveries) = idempotent_producer(&bootstrap);
    let payload = |i: usize| format!("record-{i}").into_bytes();
    let send_range = |range: std::ops::Range<usize>| {
        for i in range {
            let value = payload(i);
            send(
                &producer,
                BaseRecord::to("moving").partition(0).payload(&value[..]),
            );
        }
    };
    send_range(0..RECORDS / 2);

    let alter = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(name("moving"))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(vec![BrokerId(1), BrokerId(2), BrokerId(4)])),
                ]),
        ]);
    let (code, message) = retried(NOT_CONTROLLER, || {
        let r: AlterPartitionReassignmentsResponse =
            ask(&brokers[1], ApiKey::AlterPartitionReassignments, 0, &alter);
        let p = &r.responses[0].partitions[0];
        (p.error_code, format!("{:?}", p.error_message))
    });
    assert_eq!(code, 0, "{message}");
    // Committed before the answer: the broker that took it lists it under way at once.
    assert_eq!(
        reassignments(&brokers[1]),
        vec![(0, vec![1, 2, 4, 3], vec![4], vec![3])]
    );
    send_range(RECORDS / 2..RECORDS);

    let deadline = Instant::now() + SLACK;
    while !reassignments(&brokers[1]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reassignment did not complete\n{}",
            brokers[3].logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_everywhere(&every(&brokers), SLACK, "replicas 1, 2, 4", |r| {
        replicas_and_leader(r, "moving", 0) == Some((vec![1, 2, 4], 1))
    });
    assert!(
        brokers[3].data_dir().join("moving-0").exists(),
        "broker 4 holds the log"
    );
    let deadline = Instant::now() + SLACK;
    while brokers[2].data_dir().join("moving-0").exists() {
        assert!(
            Instant::now() < deadline,
            "broker 3 kept the log it no longer replicates"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    flush(&producer);
    assert_eq!(
        (
            deliveries.ok.load(Ordering::SeqCst),
            deliveries.failed.load(Ordering::SeqCst)
        ),
        (RECORDS, 0),
        "{:?}",
        deliveries.first_error.lock().unwrap()
    );
    let reader = consumer(&bootstrap, &[]);
    let read = consume(&reader, "moving", 1, RECORDS, Duration::from_secs(60));
    let payloads: Vec<Vec<u8>> = read.iter().filter_map(|r| r.payload.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..RECORDS).map(payload).collect();
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
