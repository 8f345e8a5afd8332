//! Issue 15, proof 5: a rolling restart of three broker processes under load. Each broker
//! in turn is stopped with SIGTERM (it exits cleanly), started again, and waited for until
//! it is back in the partition's ISR before the next one goes, while idempotent acks=all
//! producers run. Nothing acknowledged is lost, no record is read twice, and no delivery
//! fails: whatever the producers met on the way was retriable, and librdkafka retried it.

use super::cluster_load::{assert_acknowledged_once, start_load};
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, start_cluster, topic, wait_everywhere, SLACK,
};
use super::harness::bootstrap_all;

const TOPIC: &str = "rolling-restart";

#[test]
fn a_rolling_restart_under_load_loses_nothing_acknowledged() {
    let mut brokers = start_cluster(0);
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], TOPIC, 1, &[("min.insync.replicas", "2")]);
    let full_isr = |r: &kafka_protocol::messages::MetadataResponse| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    };
    wait_everywhere(
        &every(&brokers),
        SLACK,
        "the partition with ISR 3",
        full_isr,
    );
    let bootstrap = bootstrap_all(&brokers);
    let load = start_load(&bootstrap, TOPIC, 2, 300);
    load.acks.wait_for_more(100, SLACK, &every(&brokers));
    for i in 0..brokers.len() {
        let status = brokers[i].sigterm();
        assert!(status.success(), "broker {} exited with {status}", i + 1);
        brokers[i].restart();
        wait_everywhere(
            &every(&brokers),
            SLACK,
            "the broker back in the ISR",
            full_isr,
        );
        load.acks.wait_for_more(50, SLACK, &every(&brokers));
        eprintln!("broker {} restarted and back in the ISR", i + 1);
    }
    let acks = load.finish();
    let errors = acks.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "deliveries failed: {errors:?}");
    let read = assert_acknowledged_once(&bootstrap, TOPIC, &acks);
    eprintln!(
        "{} acknowledged, {} read, no delivery failed",
        acks.count(),
        read.len()
    );
}
