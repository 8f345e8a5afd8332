//! A restarted broker takes its replicas' roles from a current image only. A broker
//! killed while it led a partition replays, when it starts again, an image from its own
//! Raft log in which it still leads at the old epoch; the controller has since fenced it
//! and moved the leadership on. Acting on that image it would answer produces as leader
//! at a stale epoch until the quorum's newer records reached it. It must wait until its
//! image is as new as the controller's was at its first answered heartbeat (Kafka's broker
//! catches up with the metadata log before it serves): until then, and after, as the
//! follower it now is, it refuses produces with NOT_LEADER_OR_FOLLOWER.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::client_hostile_records::request;
use super::cluster_metadata::{
    broker_ids, create_topic_with, metadata, start_cluster, topic, wait_everywhere, SLACK,
};
use super::harness::TestBroker;

const TOPIC: &str = "restart-roles";
/// How long the restarted broker is watched for produces it should refuse.
const WATCH: Duration = Duration::from_secs(3);

/// An acks=1 produce of one record to partition 0 through `broker`: its error code, or
/// None when the broker does not answer (not listening yet, or mid-start).
fn produce_acks_one(broker: &TestBroker) -> Option<i16> {
    let batch = broker::storage::batch_builder::build_batch(&[(None, Some(&b"stale?"[..]))], 0);
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(super::protocol_versions::name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let r: ProduceResponse = request(&mut socket, ApiKey::Produce, 9, 11, &produce);
    Some(r.responses[0].partition_responses[0].error_code)
}

/// (leader, leader epoch) of the topic's partition as `broker` sees it.
fn leadership(broker: &TestBroker) -> Option<(i32, i32)> {
    let r = metadata(broker)?;
    let p = topic(&r, TOPIC)?.partitions.first()?.clone();
    Some((p.leader_id.0, p.leader_epoch))
}

#[test]
fn a_restarted_leader_never_answers_produces_at_its_old_epoch() {
    let mut brokers = start_cluster(0);
    let all: Vec<&TestBroker> = brokers.iter().collect();
    wait_everywhere(&all, SLACK, "three brokers", |r| broker_ids(r).len() == 3);
    create_topic_with(&brokers[0], TOPIC, 1, &[]);
    wait_everywhere(&all, SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let (old_leader, old_epoch) = leadership(&brokers[0]).expect("a leader");
    let at = (old_leader - 1) as usize;
    assert_eq!(
        produce_acks_one(&brokers[at]),
        Some(0),
        "the leader takes produces"
    );

    brokers[at].kill9();
    let survivors: Vec<&TestBroker> = brokers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, b)| b)
        .collect();
    wait_everywhere(&survivors, SLACK, "a new leader at a newer epoch", |r| {
        topic(r, TOPIC).is_some_and(|t| {
            let p = &t.partitions[0];
            p.leader_id.0 != old_leader && p.leader_id.0 >= 0 && p.leader_epoch > old_epoch
        })
    });

    // From the moment it listens again, every produce it answers must be refused.
    brokers[at].restart();
    let deadline = Instant::now() + WATCH;
    let mut answered = Vec::new();
    while Instant::now() < deadline {
        if let Some(code) = produce_acks_one(&brokers[at]) {
            answered.push(code);
        }
    }
    assert!(
        !answered.is_empty(),
        "the restarted broker answered no produce"
    );
    let taken = answered.iter().filter(|code| **code == 0).count();
    assert_eq!(
        taken,
        0,
        "the restarted broker took {taken} of {} produces as leader at the old epoch",
        answered.len()
    );
    // Its own log: it never became the leader at the old epoch after the restart.
    let dir = brokers[at].data_dir();
    let second_start = dir
        .parent()
        .map(|d| std::fs::read_to_string(d.join("broker-2.log")).unwrap_or_default())
        .unwrap_or_default();
    let stale = format!("leader_epoch={old_epoch} ");
    let stale_lines: Vec<&str> = second_start
        .lines()
        .filter(|l| l.contains("Became the partition's leader") && l.contains(&stale))
        .collect();
    assert!(
        stale_lines.is_empty(),
        "the restarted broker led at the old epoch {old_epoch}: {stale_lines:#?}"
    );
    // It follows and rejoins the ISR.
    let all: Vec<&TestBroker> = brokers.iter().collect();
    wait_everywhere(&all, SLACK, "the ISR with the restarted broker", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
}
