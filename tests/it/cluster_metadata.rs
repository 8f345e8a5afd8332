//! Three real broker processes forming a metadata quorum on 127.0.0.1 (free ports, temp
//! dirs): a topic created with RF=3 through one broker is seen by every broker with three
//! replicas, a full ISR and leaders spread; a broker killed with SIGKILL is fenced within
//! its session timeout and its leaderships move inside the ISR; restarted, it is back.
//! Every wait polls a raw Metadata request and is bounded.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::client_hostile_records::request;
use super::harness::{free_port, TestBroker};

pub(crate) const SESSION_TIMEOUT_MS: u64 = 2_000;
/// Elections (1 to 2 s), a full session from a new controller, and a slow machine.
pub(crate) const SLACK: Duration = Duration::from_secs(20);
const METADATA_VERSION: i16 = 12;

/// Three voters, then `non_voters` brokers that are not (each with its own
/// controller_listen).
pub(crate) fn start_cluster(non_voters: i32) -> Vec<TestBroker> {
    start_cluster_with(non_voters, (200, SESSION_TIMEOUT_MS), "")
}

/// `start_cluster` with this (broker heartbeat interval, session timeout) in ms, and
/// `extra` config lines on every broker.
pub(crate) fn start_cluster_with(
    non_voters: i32,
    timings: (u64, u64),
    extra: &str,
) -> Vec<TestBroker> {
    start_cluster_per_node(non_voters, timings, |_| extra.to_string())
}

/// `start_cluster_with`, with `extra(node_id)` config lines on each broker.
pub(crate) fn start_cluster_per_node(
    non_voters: i32,
    (heartbeat_ms, session_ms): (u64, u64),
    extra: impl Fn(i32) -> String,
) -> Vec<TestBroker> {
    let voters = three_voters();
    (1..=3 + non_voters)
        .map(|id| {
            let listen = if id > 3 {
                format!("controller_listen = \"127.0.0.1:{}\"\n", free_port())
            } else {
                String::new()
            };
            let extra = extra(id);
            TestBroker::start(&format!(
                "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
                 broker_heartbeat_interval_ms = {heartbeat_ms}\n\
                 broker_session_timeout_ms = {session_ms}\n{listen}{extra}"
            ))
        })
        .collect()
}

/// `controller_quorum_voters` for nodes 1, 2 and 3 on free ports.
pub(crate) fn three_voters() -> String {
    quorum_voters(&(0..3).map(|_| free_port()).collect::<Vec<_>>())
}

/// `controller_quorum_voters` of nodes 1, 2, ... with their Raft transports at these
/// ports on 127.0.0.1.
pub(crate) fn quorum_voters(controllers: &[u16]) -> String {
    let voters: Vec<String> = controllers
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect();
    voters.join(",")
}

pub(crate) fn metadata(broker: &TestBroker) -> Option<MetadataResponse> {
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).ok()?;
    // A broker that has not caught up yet answers once it has (its listener waits).
    socket.set_read_timeout(Some(SLACK)).ok()?;
    let all = MetadataRequest::default().with_topics(None);
    Some(request(
        &mut socket,
        ApiKey::Metadata,
        METADATA_VERSION,
        1,
        &all,
    ))
}

pub(crate) fn every(brokers: &[TestBroker]) -> Vec<&TestBroker> {
    brokers.iter().collect()
}

pub(crate) fn broker_ids(r: &MetadataResponse) -> BTreeSet<i32> {
    r.brokers.iter().map(|b| b.node_id.0).collect()
}

/// Polls `check` on every broker in `on` until it holds everywhere, or panics with the
/// last responses after `within`.
pub(crate) fn wait_everywhere(
    brokers: &[&TestBroker],
    within: Duration,
    what: &str,
    check: impl Fn(&MetadataResponse) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let seen: Vec<_> = brokers.iter().map(|b| metadata(b)).collect();
        if seen.iter().all(|r| r.as_ref().is_some_and(&check)) {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = brokers.iter().map(|b| b.logs()).collect();
            panic!(
                "not every broker saw {what} within {within:?}: {seen:#?}\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Repeats `check` (which answers whether it holds, and what it saw) until it holds, or
/// panics with what it saw after SLACK.
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> (bool, String)) {
    let deadline = Instant::now() + SLACK;
    loop {
        let (ok, seen) = check();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_replicated_topic(broker: &TestBroker, name: &str) {
    create_topic_with(broker, name, 3, &[]);
}

/// CreateTopics with RF=3 through `broker`, retried while no quorum leader answers.
pub(crate) fn create_topic_with(
    broker: &TestBroker,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(super::protocol_versions::name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(3)
        .with_configs(configs);
    let create = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let deadline = Instant::now() + SLACK;
    loop {
        let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        let r: CreateTopicsResponse = request(&mut socket, ApiKey::CreateTopics, 5, 2, &create);
        let code = r.topics[0].error_code;
        if code == 0 {
            return;
        }
        // No quorum leader yet: retriable, as for a Kafka client.
        assert!(
            code == ResponseError::NotController.code() && Instant::now() < deadline,
            "CreateTopics answered {code}: {:?}\n{}",
            r.topics[0].error_message,
            broker.logs()
        );
    }
}

pub(crate) fn topic<'a>(
    r: &'a MetadataResponse,
    name: &str,
) -> Option<&'a kafka_protocol::messages::metadata_response::MetadataResponseTopic> {
    r.topics.iter().find(|t| {
        t.name
            .as_ref()
            .is_some_and(|n| n.0 == StrBytes::from_string(name.to_string()))
    })
}

#[test]
fn three_brokers_share_replicated_metadata_and_fence_a_killed_one() {
    let mut brokers = start_cluster(0);
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r) == BTreeSet::from([1, 2, 3])
    });
    create_replicated_topic(&brokers[0], "replicated");
    let placed = |r: &MetadataResponse| {
        let Some(t) = topic(r, "replicated") else {
            return false;
        };
        let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
        t.error_code == 0
            && t.partitions.len() == 3
            && t.partitions
                .iter()
                .all(|p| p.replica_nodes.len() == 3 && p.isr_nodes.len() == 3 && p.error_code == 0)
            && leaders == BTreeSet::from([1, 2, 3])
    };
    wait_everywhere(
        &every(&brokers),
        SLACK,
        "the topic placed with RF=3",
        placed,
    );

    // Broker 2 leads one partition; killed, it is fenced and its leadership moves.
    brokers[1].kill9();
    let killed = Instant::now();
    let moved = |r: &MetadataResponse| {
        let Some(t) = topic(r, "replicated") else {
            return false;
        };
        broker_ids(r) == BTreeSet::from([1, 3])
            && t.partitions.iter().all(|p| {
                let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
                let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
                let offline: Vec<i32> = p.offline_replicas.iter().map(|b| b.0).collect();
                p.leader_id.0 != 2
                    && p.leader_id.0 != -1
                    && isr.contains(&p.leader_id.0)
                    && !isr.contains(&2)
                    && replicas.len() == 3
                    && offline == vec![2]
            })
    };
    let survivors = [&brokers[0], &brokers[2]];
    wait_everywhere(
        &survivors,
        Duration::from_millis(SESSION_TIMEOUT_MS) + SLACK,
        "broker 2 fenced and its leadership moved",
        moved,
    );
    eprintln!(
        "broker 2 fenced and its leadership moved {:?} after the kill",
        killed.elapsed()
    );

    brokers[1].restart();
    wait_everywhere(&every(&brokers), SLACK, "broker 2 back", |r| {
        broker_ids(r) == BTreeSet::from([1, 2, 3]) && topic(r, "replicated").is_some()
    });
}

#[test]
fn a_non_voting_broker_becomes_a_learner_and_writes_through_the_leader() {
    let brokers = start_cluster(1);
    wait_everywhere(&every(&brokers), SLACK, "four brokers", |r| {
        broker_ids(r) == BTreeSet::from([1, 2, 3, 4])
    });
    // Created through the non-voter: forwarded to the quorum's leader.
    create_replicated_topic(&brokers[3], "through-a-learner");
    wait_everywhere(&every(&brokers), SLACK, "the topic", |r| {
        topic(r, "through-a-learner").is_some_and(|t| {
            t.partitions.len() == 3 && t.partitions.iter().all(|p| p.replica_nodes.len() == 3)
        })
    });
}
