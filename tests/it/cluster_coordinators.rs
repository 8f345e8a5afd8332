//! Group coordinators on `__consumer_offsets` across three real broker processes: a
//! librdkafka consumer group (given all three addresses) consumes with a synchronous
//! commit per record; its coordinator is killed with SIGKILL halfway; the group resumes
//! on the new coordinator (the new leader of its `__consumer_offsets` partition) from
//! the committed offsets, with its member id (the group's metadata is on
//! `__consumer_offsets` too). Every record is consumed, and no record whose commit was
//! acknowledged is consumed again. Bounded waits only.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::Message;

use super::client_hostile_records::request;
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, start_cluster_with, topic, wait_everywhere, SLACK,
};
use super::harness::{bootstrap_all, flush, producer, send, TestBroker};

const TOPIC: &str = "coordinated";
const GROUP: &str = "survivors";
const RECORDS: usize = 100;
const BEFORE_KILL: usize = 50;

/// The group's coordinator as `broker` answers FindCoordinator (v3), retried while it
/// answers an error (none yet, or being loaded).
fn coordinator(broker: &TestBroker) -> i32 {
    find_coordinator(broker, GROUP, 0)
}

/// The coordinator of `key` (key type 0 a group, 1 a transactional id) as `broker` answers
/// FindCoordinator (v3), retried while it answers an error (none yet, or being loaded).
pub(crate) fn find_coordinator(broker: &TestBroker, key: &str, key_type: i8) -> i32 {
    let find = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.to_string()))
        .with_key_type(key_type);
    let deadline = Instant::now() + SLACK;
    loop {
        let answer = TcpStream::connect(("127.0.0.1", broker.port()))
            .ok()
            .map(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let r: FindCoordinatorResponse =
                    request(&mut s, ApiKey::FindCoordinator, 3, 1, &find);
                r
            });
        if let Some(r) = answer.filter(|r| r.error_code == 0) {
            return r.node_id.0;
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator for {key} within {SLACK:?}\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The group's member ids as `broker` describes them (DescribeGroups v3); None when it
/// does not coordinate the group or the group has no members there.
fn members_on(broker: &TestBroker) -> Option<Vec<String>> {
    let describe = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_static_str(GROUP))]);
    let mut s = TcpStream::connect(("127.0.0.1", broker.port())).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r: DescribeGroupsResponse = request(&mut s, ApiKey::DescribeGroups, 3, 1, &describe);
    let group = r.groups.into_iter().next()?;
    let members: Vec<String> = group
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    (group.error_code == 0 && !members.is_empty()).then_some(members)
}

/// The broker whose coordinator holds the group's members (the one DescribeGroups shows
/// them on), and their ids. Asking the brokers rather than FindCoordinator makes the test
/// kill the coordinator the consumer really uses, whatever FindCoordinator answers.
fn serving_coordinator(brokers: &[TestBroker]) -> (i32, Vec<String>) {
    let deadline = Instant::now() + SLACK;
    loop {
        let serving: Vec<(i32, Vec<String>)> = brokers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| members_on(b).map(|members| (i as i32 + 1, members)))
            .collect();
        if serving.len() == 1 {
            return serving.into_iter().next().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no single broker holds the group's members: {serving:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A synchronous commit of `message`, retried while the coordinator answers a retriable
/// error (the new one still loading its partition: COORDINATOR_LOAD_IN_PROGRESS), as
/// Kafka's own commitSync retries. librdkafka hands that error to the application, and
/// a record whose commit is dropped there is never delivered again, so the loop above
/// would wait for its commit forever. Other errors are returned.
fn commit_until_answered(
    consumer: &BaseConsumer,
    message: &rdkafka::message::BorrowedMessage<'_>,
    deadline: Instant,
) -> rdkafka::error::KafkaResult<()> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
    loop {
        match consumer.commit_message(message, CommitMode::Sync) {
            Err(KafkaError::ConsumerCommit(
                Code::CoordinatorLoadInProgress
                | Code::CoordinatorNotAvailable
                | Code::NotCoordinator
                | Code::RequestTimedOut,
            )) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            answer => return answer,
        }
    }
}

#[test]
fn a_consumer_group_resumes_from_its_commits_after_a_coordinator_kill() {
    let mut brokers = start_cluster_with(
        0,
        (200, 2_000),
        "offsets_topic_num_partitions = 3\n\
         group_initial_rebalance_delay_ms = 0\n\
         group_min_session_timeout_ms = 1000\n",
    );
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], TOPIC, 1, &[("min.insync.replicas", "2")]);
    wait_everywhere(&every(&brokers), SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC)
            .is_some_and(|t| t.partitions.len() == 1 && t.partitions[0].isr_nodes.len() == 3)
    });
    let bootstrap = bootstrap_all(&brokers);
    let (producer, deliveries) = producer(&bootstrap, &[("acks", "all")]);
    for i in 0..RECORDS {
        let value = format!("record-{i}").into_bytes();
        send(
            &producer,
            BaseRecord::to(TOPIC).partition(0).payload(&value[..]),
        );
    }
    flush(&producer);
    assert_eq!(
        deliveries.ok.load(std::sync::atomic::Ordering::SeqCst),
        RECORDS
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // The new coordinator gives every member it loads a full session from the load;
        // the member reaches it only once librdkafka has found it (about 6 s after the
        // kill here, longer on a loaded machine), so the session must outlast that for the
        // member id to survive, as it must against Kafka. librdkafka may take much longer:
        // the commit in flight at the kill fails on the closed connection, which marks the
        // coordinator dead, which closes its next connection for a "nodename change",
        // which fails the retried commit again (librdkafka issue 3645). Seen here lasting
        // 9 to 30 s before a retry happens to get through; past the session, librdkafka
        // drops its member id and rejoins.
        .set("session.timeout.ms", "60000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).unwrap();

    // payload -> times delivered; the payloads whose commit was acknowledged.
    let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
    let mut committed: HashSet<String> = HashSet::new();
    let mut recommitted_reads = Vec::new();
    let mut failed_commits = 0;
    let mut killed: Option<(i32, Instant)> = None;
    let mut members_before_kill = Vec::new();
    let mut resumed_after = None;
    // Long enough for librdkafka's commit loop above (bounded by the session).
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    while committed.len() < RECORDS || delivered.len() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "{} of {RECORDS} records committed, {} delivered, {failed_commits} commits \
             refused, within {limit:?}; coordinator killed {:?} ago\n{}",
            committed.len(),
            delivered.len(),
            killed.map(|(_, at)| at.elapsed()),
            brokers
                .iter()
                .map(|b| b.logs())
                .collect::<Vec<_>>()
                .join("\n")
        );
        if killed.is_none() && committed.len() >= BEFORE_KILL {
            let (id, members) = serving_coordinator(&brokers);
            brokers[(id - 1) as usize].kill9();
            eprintln!("killed coordinator {id} after {} commits", committed.len());
            killed = Some((id, Instant::now()));
            members_before_kill = members;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(message) = message else {
            continue;
        };
        let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        if committed.contains(&payload) {
            recommitted_reads.push(payload.clone());
        }
        *delivered.entry(payload.clone()).or_default() += 1;
        match commit_until_answered(&consumer, &message, deadline) {
            Ok(()) => {
                if let (Some((_, at)), None) = (killed, resumed_after) {
                    resumed_after = Some(at.elapsed());
                }
                committed.insert(payload);
            }
            Err(_) => failed_commits += 1,
        }
    }
    let (victim, _) = killed.expect("the coordinator was killed");
    eprintln!(
        "coordinator {victim} killed; first commit acknowledged {resumed_after:?} later; \
         {failed_commits} commits failed; {} records delivered twice or more",
        delivered.values().filter(|n| **n > 1).count()
    );
    assert!(
        recommitted_reads.is_empty(),
        "records consumed again after their commit was acknowledged: {recommitted_reads:?}"
    );
    assert_eq!(delivered.len(), RECORDS);
    let survivor = brokers
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != victim)
        .map(|(_, b)| b)
        .unwrap();
    let new_coordinator = coordinator(survivor);
    assert_ne!(new_coordinator, victim);
    // The group's metadata was on __consumer_offsets: the new coordinator loaded the
    // member, whose heartbeats went on, so it kept its member id (an unknown member
    // would have rejoined under a new one).
    assert_eq!(
        members_on(&brokers[(new_coordinator - 1) as usize]),
        Some(members_before_kill),
        "the member id survived the coordinator's kill"
    );
    // The live broker that does not coordinate the group says so.
    let other = (1..=3)
        .find(|id| *id != victim && *id != new_coordinator)
        .unwrap();
    let describe = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_static_str(GROUP))]);
    let mut socket =
        TcpStream::connect(("127.0.0.1", brokers[(other - 1) as usize].port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r: DescribeGroupsResponse = request(&mut socket, ApiKey::DescribeGroups, 3, 1, &describe);
    assert_eq!(r.groups[0].error_code, ResponseError::NotCoordinator.code());
}
