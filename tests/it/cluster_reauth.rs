//! KIP-368 between brokers: with `connections_max_reauth_ms` set, a follower logs in again
//! on its connection to the leader before its session ends, as Kafka's inter-broker client
//! does, instead of having the leader close the connection at the session's end and
//! connecting anew (one failed fetch round each time, before this).

use std::sync::atomic::Ordering;
use std::time::Instant;

use rdkafka::producer::BaseRecord;

use super::client_metrics::{sample, scrape};
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, three_voters, topic, wait_everywhere, SLACK,
};
use super::harness::{free_port, producer, send_and_wait, TestBroker};

const TOPIC: &str = "renewed";
/// Short sessions, so a few pass within the test.
const LIFETIME_MS: u64 = 1_500;
const RENEWED: &str = "broker_successful_reauthentication_total";
const KILLED: &str = "broker_expired_connections_killed_total";

/// Each broker with a PLAINTEXT client listener (the one `TestBroker::port` names), a
/// SASL_PLAINTEXT inter-broker listener where brokers log in with PLAIN, and metrics.
fn start() -> Vec<(TestBroker, u16)> {
    let voters = three_voters();
    (1..=3)
        .map(|id| {
            let internal = free_port();
            let metrics = free_port();
            let broker = TestBroker::start_with_port(|external| {
                format!(
                    "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                     broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n\
                     listeners = \"EXTERNAL://127.0.0.1:{external},INTERNAL://127.0.0.1:{internal}\"\n\
                     listener_security_protocol_map = \"EXTERNAL:PLAINTEXT,INTERNAL:SASL_PLAINTEXT\"\n\
                     inter_broker_listener_name = \"INTERNAL\"\n\
                     sasl_mechanism_inter_broker_protocol = \"PLAIN\"\n\
                     sasl_inter_broker_jaas_config = 'org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"broker-secret\";'\n\
                     connections_max_reauth_ms = {LIFETIME_MS}\n\
                     metrics_listen = \"127.0.0.1:{metrics}\"\n\
                     [sasl_plain_users]\nbroker = \"broker-secret\"\n"
                )
            });
            (broker, metrics)
        })
        .collect()
}

/// The sum of a counter over every broker.
fn total(metrics: &[u16], name: &str) -> f64 {
    metrics
        .iter()
        .map(|port| {
            scrape(*port)
                .and_then(|page| sample(&page, name, &[]))
                .unwrap_or(0.0)
        })
        .sum()
}

/// Followers of an RF=3 topic with min.insync.replicas=3 keep every acks=all produce
/// acknowledged across several session lifetimes, renewing their sessions on the same
/// connections: the brokers count renewals and close no connection for an expired
/// session. Before, the renewals stayed at 0 and each lifetime cost every follower its
/// connection.
#[test]
fn followers_renew_their_sasl_sessions_on_the_same_connection() {
    let started = start();
    let metrics: Vec<u16> = started.iter().map(|(_, m)| *m).collect();
    let brokers: Vec<TestBroker> = started.into_iter().map(|(b, _)| b).collect();
    let all = every(&brokers);
    wait_everywhere(&all, SLACK, "three brokers", |r| broker_ids(r).len() == 3);
    create_topic_with(&brokers[0], TOPIC, 1, &[("min.insync.replicas", "3")]);
    wait_everywhere(&all, SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let bootstrap = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (producer, deliveries) = producer(&bootstrap, &[("acks", "all")]);

    // Two followers, each renewing every 85-95 % of 1.5 s: 4 renewals take about 3 s.
    let deadline = Instant::now() + SLACK;
    let mut sent = 0;
    while total(&metrics, RENEWED) < 4.0 {
        assert!(
            Instant::now() < deadline,
            "{} renewals within {SLACK:?}; connections closed at their session's end: {}",
            total(&metrics, RENEWED),
            total(&metrics, KILLED)
        );
        let value = format!("record-{sent}");
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to(TOPIC).payload(value.as_bytes()),
        );
        sent += 1;
    }
    assert_eq!(deliveries.failed.load(Ordering::SeqCst), 0);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), sent);
    assert_eq!(total(&metrics, KILLED), 0.0, "a session ran out");
    wait_everywhere(&all, SLACK, "the partition still with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    eprintln!("{sent} records acknowledged while followers renewed their sessions");
}
