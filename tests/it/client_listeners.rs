//! Several listeners (Kafka's `listeners`, `advertised_listeners` and
//! `listener_security_protocol_map`): each client is told the advertised address of the
//! listener it came in on, and produces and consumes through it.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;

use crate::harness::*;

/// The (host, port) Metadata gives a client bootstrapped at `bootstrap`.
fn advertised_broker(bootstrap: &str) -> (String, u16) {
    let consumer = consumer(bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let brokers = metadata.brokers();
    assert_eq!(brokers.len(), 1, "one broker in Metadata");
    (brokers[0].host().to_string(), brokers[0].port() as u16)
}

#[test]
fn two_plaintext_listeners_each_advertise_their_own_address() {
    let internal = free_port();
    let broker = TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}\"\n\
             advertised_listeners = \"INTERNAL://localhost:{internal}\"\n\
             listener_security_protocol_map = \"PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT\"\n\
             inter_broker_listener_name = \"INTERNAL\""
        )
    });
    let outer = broker.bootstrap();
    let inner = format!("127.0.0.1:{internal}");
    assert_eq!(
        advertised_broker(&outer),
        ("127.0.0.1".to_string(), broker.port())
    );
    assert_eq!(
        advertised_broker(&inner),
        ("localhost".to_string(), internal)
    );

    // Each listener serves the whole protocol: produce through one, consume through the other.
    create_topic(&inner, "two-listeners", 1);
    let (producer, deliveries) = producer(&inner, &[]);
    for i in 0..10u8 {
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to("two-listeners").payload([i].as_slice()),
        );
    }
    assert_eq!(
        deliveries.failed.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let records = consume(
        &consumer(&outer, &[]),
        "two-listeners",
        1,
        10,
        Duration::from_secs(30),
    );
    let payloads: Vec<u8> = records
        .iter()
        .map(|r| r.payload.clone().unwrap()[0])
        .collect();
    assert_eq!(payloads, (0..10).collect::<Vec<u8>>());
}

#[test]
fn a_listener_missing_from_the_map_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nlisteners = \"CLIENT://127.0.0.1:{}\"\n",
            dir.path().join("data").display(),
            free_port()
        ),
    )
    .unwrap();
    let log = dir.path().join("broker.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--config")
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("broker runs");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker started with a listener the map does not name");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("listener CLIENT is not in listener_security_protocol_map"),
        "{stderr}"
    );
}
