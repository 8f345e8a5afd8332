//! Issue 15, proof 2: three broker processes, RF=3, min.insync.replicas=2, idempotent
//! acks=all producers at load while a loop kill -9s the partition's current leader and
//! restarts it, N times. Every acknowledged record is read back exactly once, and the
//! failover time (the kill to the first acknowledgement of a record sent after the kill,
//! which only a new leader can give) is printed per kill with its p50/p99.
//!
//! N is 3 by default (CI); `BROKER_FAILOVER_KILLS=20` is the documented long run
//! (docs/PERFORMANCE.md). The brokers run with the test cluster's short heartbeat (200 ms)
//! and session timeout (2 s) unless `BROKER_FAILOVER_DEFAULT_TIMEOUTS=1`, which keeps
//! Kafka's defaults (2 s, 9 s).

use std::time::{Duration, Instant};

use super::cluster_load::{assert_acknowledged_once, percentile, start_load};
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, metadata, start_cluster_with, topic, wait_everywhere,
    SLACK,
};
use super::harness::{bootstrap_all, TestBroker};

const TOPIC: &str = "leader-kills";

fn kills() -> usize {
    std::env::var("BROKER_FAILOVER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The partition's leader as the live brokers see it once its ISR is full again.
fn leader_with_full_isr(brokers: &[TestBroker]) -> i32 {
    wait_everywhere(&every(brokers), SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let r = metadata(&brokers[0]).expect("metadata");
    topic(&r, TOPIC).unwrap().partitions[0].leader_id.0
}

/// True once `survivor` names a leader other than `old`.
fn new_leader(survivor: &TestBroker, old: i32) -> bool {
    metadata(survivor)
        .and_then(|r| topic(&r, TOPIC).map(|t| t.partitions[0].leader_id.0))
        .is_some_and(|l| l != old && l != -1)
}

#[test]
fn acks_all_records_survive_repeated_leader_kills_exactly_once() {
    let defaults = std::env::var("BROKER_FAILOVER_DEFAULT_TIMEOUTS").is_ok_and(|v| v == "1");
    let timeouts = if defaults {
        (2_000, 9_000)
    } else {
        (200, 2_000)
    };
    let mut brokers = start_cluster_with(0, timeouts, "");
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], TOPIC, 1, &[("min.insync.replicas", "2")]);
    let bootstrap = bootstrap_all(&brokers);
    leader_with_full_isr(&brokers);
    let load = start_load(&bootstrap, TOPIC, 2, 500);
    load.acks.wait_for_more(100, SLACK, &every(&brokers));

    let mut failovers = Vec::new();
    for kill in 1..=kills() {
        let leader = leader_with_full_isr(&brokers);
        load.acks.wait_for_more(20, SLACK, &every(&brokers));
        brokers[(leader - 1) as usize].kill9();
        let killed = Instant::now();
        let marks = load.sent();
        let deadline = killed + Duration::from_secs(60);
        let survivor = &brokers[(leader % 3) as usize];
        let mut moved = None;
        let first = loop {
            if let Some(at) = load.acks.first_of_sent_after(&marks) {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "kill {kill}: nothing acknowledged within 60 s of killing leader {leader}"
            );
            if moved.is_none() && new_leader(survivor, leader) {
                moved = Some(killed.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let failover = first - killed;
        eprintln!(
            "kill {kill}: leader {leader} killed; new leader in metadata after {moved:?}, \
             first acknowledgement after {failover:?}"
        );
        failovers.push(failover);
        brokers[(leader - 1) as usize].restart();
    }
    leader_with_full_isr(&brokers);
    let acks = load.finish();
    let read = assert_acknowledged_once(&bootstrap, TOPIC, &acks).len();
    eprintln!(
        "{} kills: failover p50 {:?}, p99 {:?}, max {:?}; {} acknowledged, {read} read, {} delivery errors",
        failovers.len(),
        percentile(&failovers, 50),
        percentile(&failovers, 99),
        failovers.iter().max().unwrap(),
        acks.count(),
        acks.errors.lock().unwrap().len()
    );
}
