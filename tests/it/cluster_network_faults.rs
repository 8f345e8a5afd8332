//! Issue 15, proof 3: network faults between three broker processes. Every inter-broker
//! path goes through a `FaultProxy` the test controls: each node reaches each voter's Raft
//! transport through a proxy of its own for that link (its `controller_quorum_voters`
//! names the proxies), and each broker registers a proxy in front of its listener as its
//! advertised address, so replica fetches (and clients after bootstrap) cross it.
//!
//! The isolated-leader case: the partition's leader is cut off from the other two while
//! idempotent acks=all producers run. The old leader stops acknowledging acks=all (an
//! acks=all produce sent straight to it gets an error or no answer, never an ack: it
//! cannot reach min.insync.replicas), the other two elect a new leader and carry on; after
//! healing, the old leader truncates what only it had (the record it took alone is gone
//! from its log and never served) and every acknowledged record is read back exactly once.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::client_hostile_records::request;
use super::cluster_load::{assert_acknowledged_once, start_load};
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, metadata, topic, wait_everywhere, SLACK,
};
use super::fault_proxy::{Fault, FaultProxy};
use super::harness::{free_port, TestBroker};

const TOPIC: &str = "network-faults";
const MARKER: &[u8] = b"taken-alone-by-the-isolated-leader";

pub(crate) struct ProxiedCluster {
    pub(crate) brokers: Vec<TestBroker>,
    /// (from, to): the proxy node `from` reaches voter `to`'s Raft transport through.
    raft: BTreeMap<(i32, i32), FaultProxy>,
    /// The proxy in front of each broker's listener (its advertised address).
    advertised: BTreeMap<i32, FaultProxy>,
}

impl ProxiedCluster {
    pub(crate) fn start() -> ProxiedCluster {
        let controllers: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut raft = BTreeMap::new();
        for from in 1..=3 {
            for to in (1..=3).filter(|to| *to != from) {
                let proxy = FaultProxy::start(controllers[to as usize - 1]);
                raft.insert((from, to), proxy);
            }
        }
        let mut advertised = BTreeMap::new();
        let brokers = (1..=3)
            .map(|id: i32| {
                let voters = (1..=3)
                    .map(|to| {
                        let port = match raft.get(&(id, to)) {
                            Some(proxy) => proxy.port(),
                            None => controllers[to as usize - 1],
                        };
                        format!("{to}@127.0.0.1:{port}")
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let own = controllers[id as usize - 1];
                TestBroker::start_with_port(|port| {
                    let proxy = FaultProxy::start(port);
                    let line = format!(
                        "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                         controller_listen = \"127.0.0.1:{own}\"\n\
                         advertised_listener = \"127.0.0.1:{}\"\n\
                         broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n",
                        proxy.port()
                    );
                    advertised.insert(id, proxy);
                    line
                })
            })
            .collect();
        ProxiedCluster {
            brokers,
            raft,
            advertised,
        }
    }

    pub(crate) fn broker(&self, id: i32) -> &TestBroker {
        &self.brokers[id as usize - 1]
    }

    /// Applies `fault` to every path into and out of broker `id`: its Raft links both ways
    /// and its advertised listener.
    pub(crate) fn isolate(&self, id: i32, raft: Fault, listener: Fault) {
        for ((from, to), proxy) in &self.raft {
            if *from == id || *to == id {
                proxy.set(raft);
            }
        }
        self.advertised[&id].set(listener);
    }

    pub(crate) fn set_all(&self, fault: Fault) {
        for proxy in self.raft.values().chain(self.advertised.values()) {
            proxy.set(fault);
        }
    }

    fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The partition's (leader, ISR size) as `broker` sees it.
fn leadership(broker: &TestBroker) -> Option<(i32, usize)> {
    let r = metadata(broker)?;
    let p = &topic(&r, TOPIC)?.partitions[0];
    Some((p.leader_id.0, p.isr_nodes.len()))
}

/// An acks=all Produce of one record to partition 0 of `topic` straight to `broker`'s own
/// listener: Some(error code), or None when no answer came within `wait` (the request's
/// timeout is 3 s).
pub(crate) fn produce_straight_to(
    broker: &TestBroker,
    topic: &str,
    value: &[u8],
    wait: Duration,
) -> Option<i16> {
    let batch = broker::storage::batch_builder::build_batch(&[(None, Some(value))], 0);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(3_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(super::protocol_versions::name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    let (answered, answer) = std::sync::mpsc::channel();
    // A read that times out panics in `request`: on its own thread, that means no answer.
    std::thread::spawn(move || {
        let r: ProduceResponse = request(&mut socket, ApiKey::Produce, 9, 11, &produce);
        let _ = answered.send(r.responses[0].partition_responses[0].error_code);
    });
    answer.recv_timeout(wait + Duration::from_secs(1)).ok()
}

/// True when some file of the topic's partition directory under `data_dir` holds `needle`.
fn partition_files_hold(data_dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            return partition_files_hold(&path, needle);
        }
        let in_topic = path.to_string_lossy().contains(TOPIC);
        in_topic
            && std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

#[test]
fn an_isolated_leader_stops_acknowledging_and_truncates_after_healing() {
    let cluster = ProxiedCluster::start();
    let all = every(&cluster.brokers);
    wait_everywhere(&all, SLACK, "three brokers", |r| broker_ids(r).len() == 3);
    create_topic_with(cluster.broker(1), TOPIC, 1, &[("min.insync.replicas", "2")]);
    wait_everywhere(&all, SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let load = start_load(&cluster.bootstrap(), TOPIC, 2, 300);
    load.acks.wait_for_more(100, SLACK, &all);

    // Slow links: everything still gets through.
    cluster.set_all(Fault::Delay(Duration::from_millis(20)));
    load.acks.wait_for_more(100, SLACK, &all);
    cluster.set_all(Fault::Pass);

    let (old, _) = leadership(cluster.broker(1)).expect("a leader");
    cluster.isolate(old, Fault::Drop, Fault::Cut);
    let isolated = Instant::now();
    let code = produce_straight_to(cluster.broker(old), TOPIC, MARKER, Duration::from_secs(10));
    assert_ne!(
        code,
        Some(0),
        "the isolated leader acknowledged an acks=all produce"
    );
    assert!(
        partition_files_hold(&cluster.broker(old).data_dir(), MARKER),
        "the isolated leader appended the record it could not replicate"
    );
    let others: Vec<&TestBroker> = (1..=3)
        .filter(|id| *id != old)
        .map(|id| cluster.broker(id))
        .collect();
    wait_everywhere(&others, SLACK, "a new leader on the majority side", |r| {
        topic(r, TOPIC).is_some_and(|t| {
            let leader = t.partitions[0].leader_id.0;
            leader != old && leader != -1
        })
    });
    let at_takeover = load.acks.count();
    load.acks.wait_for_more(100, SLACK, &all);
    eprintln!(
        "isolated leader {old} answered {code:?}; the majority acknowledged again {:?} after the cut",
        isolated.elapsed()
    );

    cluster.set_all(Fault::Pass);
    wait_everywhere(&all, SLACK, "the old leader back in the ISR", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let deadline = Instant::now() + SLACK;
    while partition_files_hold(&cluster.broker(old).data_dir(), MARKER) {
        assert!(
            Instant::now() < deadline,
            "the old leader kept the record only it had"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let acks = load.finish();
    let read = assert_acknowledged_once(&cluster.bootstrap(), TOPIC, &acks);
    let marker = String::from_utf8_lossy(MARKER).into_owned();
    assert!(
        !read.contains_key(&marker),
        "the divergent record was served"
    );
    eprintln!(
        "{} records read, {} acknowledged ({at_takeover} when the majority had a new leader), {} delivery errors",
        read.len(),
        acks.count(),
        acks.errors.lock().unwrap().len()
    );
}
