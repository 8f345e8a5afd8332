//! A cluster whose brokers each have a client listener and an inter-broker listener: a
//! client is told of every broker at the listener it came in on, as Kafka matches a
//! registration's endpoints by listener name. Before, every broker registered only its
//! inter-broker address, and a client on the other listener was sent there.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cluster_metadata::{metadata, three_voters, SLACK};
use super::harness::{free_port, TestBroker};

#[test]
fn metadata_names_each_broker_at_the_listener_the_client_uses() {
    let voters = three_voters();
    let mut internal = BTreeMap::new();
    let brokers: Vec<TestBroker> = (1..=3)
        .map(|id| {
            let port = free_port();
            internal.insert(id, port);
            TestBroker::start_with_port(|external| {
                format!(
                    "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                     broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n\
                     listeners = \"EXTERNAL://127.0.0.1:{external},INTERNAL://127.0.0.1:{port}\"\n\
                     listener_security_protocol_map = \"EXTERNAL:PLAINTEXT,INTERNAL:PLAINTEXT\"\n\
                     inter_broker_listener_name = \"INTERNAL\"\n"
                )
            })
        })
        .collect();
    let external: BTreeMap<i32, u16> = (1..=3).zip(brokers.iter().map(|b| b.port())).collect();
    let expected: BTreeMap<i32, (String, i32)> = external
        .iter()
        .map(|(id, port)| (*id, ("127.0.0.1".to_string(), *port as i32)))
        .collect();
    // Asked on broker 1's EXTERNAL listener, every broker is named at its EXTERNAL port.
    let deadline = Instant::now() + SLACK;
    loop {
        let seen: Option<BTreeMap<i32, (String, i32)>> = metadata(&brokers[0]).map(|r| {
            r.brokers
                .iter()
                .map(|b| (b.node_id.0, (b.host.to_string(), b.port)))
                .collect()
        });
        if seen.as_ref() == Some(&expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Metadata on the EXTERNAL listener named {seen:?}, not {expected:?} (INTERNAL ports {internal:?})\n{}",
            brokers[0].logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
