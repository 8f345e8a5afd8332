//! SCRAM bootstrap (Kafka's `kafka-storage format --add-scram`): three voters whose
//! inter-broker listener is SASL_PLAINTEXT with SCRAM-SHA-512, User:broker's credential made
//! ONLY offline, by `broker user add` on each stopped voter before its first start. The
//! quorum's first leader commits its bootstrap file before it answers a heartbeat, so the
//! followers log in and replicate: acks=all with min.insync.replicas=3 is acknowledged.
//! After every broker restarts (a new leader among them), the credentials are not applied a
//! second time: each voter finds the cluster bootstrapped and says its file was not used.
//! Before, `user add` refused on a cluster node, and with the bootstrap not applied the
//! followers' logins fail and no acks=all produce succeeds.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rdkafka::producer::BaseRecord;

use super::cluster_metadata::{
    broker_ids, create_topic_with, every, three_voters, topic, wait_everywhere, SLACK,
};
use super::harness::{free_port, producer, send_and_wait, TestBroker};

const TOPIC: &str = "bootstrapped";
const BROKER_PASSWORD: &str = "broker-secret-from-user-add";
const COMMITTED: &str = "Committed the SCRAM credentials of this voter's bootstrap file";
const NOT_APPLIED: &str = "SCRAM bootstrap file was not applied";

/// Three voters configured (not started): a PLAINTEXT client listener (the one
/// `TestBroker::port` names) and a SASL_PLAINTEXT inter-broker listener where the brokers
/// log in to each other with SCRAM-SHA-512 as `broker`, whose credential no config holds.
fn configure() -> Vec<TestBroker> {
    let voters = three_voters();
    (1..=3)
        .map(|id| {
            let internal = free_port();
            TestBroker::configured_with_port(|external| {
                format!(
                    "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                     broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n\
                     replica_lag_time_max_ms = 2000\n\
                     listeners = \"EXTERNAL://127.0.0.1:{external},INTERNAL://127.0.0.1:{internal}\"\n\
                     listener_security_protocol_map = \"EXTERNAL:PLAINTEXT,INTERNAL:SASL_PLAINTEXT\"\n\
                     inter_broker_listener_name = \"INTERNAL\"\n\
                     sasl_mechanism_inter_broker_protocol = \"SCRAM-SHA-512\"\n\
                     sasl_inter_broker_jaas_config = 'org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"{BROKER_PASSWORD}\";'\n"
                )
            })
        })
        .collect()
}

/// `broker --config C user add --name broker --mechanism SCRAM-SHA-512 --password-file F`,
/// the built binary, on a stopped voter.
fn user_add(broker: &TestBroker) {
    let password_file = broker.config_path().with_file_name("broker.password");
    std::fs::write(&password_file, format!("{BROKER_PASSWORD}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--config")
        .arg(broker.config_path())
        .args([
            "user",
            "add",
            "--name",
            "broker",
            "--mechanism",
            "SCRAM-SHA-512",
        ])
        .arg("--password-file")
        .arg(&password_file)
        .output()
        .expect("broker user add runs");
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = broker
        .data_dir()
        .join("__cluster_metadata/bootstrap.checkpoint");
    let bytes = std::fs::read(&file).expect("the bootstrap file written");
    let secret = BROKER_PASSWORD.as_bytes();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret));
}

/// How many lines of all of a broker's logs (every start) hold `text`.
fn count(brokers: &[TestBroker], text: &str) -> usize {
    brokers.iter().map(|b| b.logs().matches(text).count()).sum()
}

/// Sends `n` acks=all records and asserts each acknowledged; returns the seconds taken.
fn produce(brokers: &[TestBroker], n: usize, from: usize) -> f64 {
    let bootstrap = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (producer, deliveries) = producer(
        &bootstrap,
        &[("acks", "all"), ("message.timeout.ms", "15000")],
    );
    let started = Instant::now();
    for i in from..from + n {
        let value = format!("record-{i}");
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to(TOPIC).payload(value.as_bytes()),
        );
        let failed = deliveries.failed.load(Ordering::SeqCst);
        assert_eq!(
            failed,
            0,
            "acks=all with min.insync.replicas=3 failed at record {i}: the followers do not replicate\n{}",
            brokers
                .iter()
                .map(|b| b.logs())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
    }
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), n);
    started.elapsed().as_secs_f64()
}

#[test]
fn followers_log_in_with_a_credential_made_only_by_user_add() {
    let mut brokers = configure();
    for broker in &brokers {
        user_add(broker);
    }
    let started = Instant::now();
    for broker in &mut brokers {
        broker.restart(); // the first start
    }
    let all = every(&brokers);
    wait_everywhere(&all, SLACK, "three brokers", |r| broker_ids(r).len() == 3);
    create_topic_with(&brokers[0], TOPIC, 1, &[("min.insync.replicas", "3")]);
    wait_everywhere(&all, SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let took = produce(&brokers, 20, 0);
    eprintln!(
        "20 acks=all records acknowledged by 3 in-sync replicas in {took:.2} s, {:.2} s after the first start",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(count(&brokers, COMMITTED), 1, "one leader commits its file");
    drop(all);

    // Every voter restarts (the leader changes on the way): no file is applied again, and
    // the credential committed at the start still lets the followers in.
    for broker in &mut brokers {
        broker.sigterm();
        broker.restart();
    }
    let all = every(&brokers);
    wait_everywhere(
        &all,
        SLACK,
        "the partition with ISR 3 after the restarts",
        |r| topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3),
    );
    produce(&brokers, 20, 20);
    assert_eq!(count(&brokers, COMMITTED), 1, "no file is applied twice");
    let ignored = count(&brokers, NOT_APPLIED);
    assert_eq!(
        ignored, 5,
        "each voter that did not commit its file says so once per start: 2 at the first start, 3 after"
    );
}
