//! Replicated partitions across three real broker processes: an idempotent acks=all
//! producer (librdkafka, given all three addresses) keeps producing while the partition's
//! leader is killed with SIGKILL; with RF=3 and min.insync.replicas=2 every acknowledged
//! record is read back exactly once, in order, from the new leader; the old leader,
//! restarted, catches up and rejoins the ISR. Bounded waits only.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseRecord;

use super::cluster_metadata::{
    broker_ids, create_topic_with, every, metadata, start_cluster, topic, wait_everywhere, SLACK,
};
use super::harness::{consume, consumer, flush, producer, send, send_and_wait};

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
    let bootstrap = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (producer, deliveries) = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "5"),
        ],
    );
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
