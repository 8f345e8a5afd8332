//! Transactions across three real broker processes: a librdkafka transactional producer
//! (given all three addresses) writes to a topic whose three partitions are led by three
//! different brokers, so its transaction coordinator must send markers to the other two
//! (WriteTxnMarkers). A read_committed consumer reads every committed record, and never
//! one of the aborted transaction. Bounded waits only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client_hostile_records::request;
use super::client_transactions::{payloads, transactional_producer};
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, start_cluster_with, topic, wait_everywhere, SLACK,
};
use super::harness::{consume, consumer, send, CountingProducer, TestBroker};

const TOPIC: &str = "spread-txn";
const PER_PARTITION: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `PER_PARTITION` records named `{name}-{partition}-{i}` to every partition in one
/// transaction, then commits or aborts it; answers the names.
fn transaction(producer: &CountingProducer, name: &str, commit: bool) -> BTreeSet<String> {
    producer.begin_transaction().expect("begin");
    let mut written = BTreeSet::new();
    for partition in 0..3 {
        for i in 0..PER_PARTITION {
            let value = format!("{name}-{partition}-{i:03}");
            send(
                producer,
                BaseRecord::to(TOPIC)
                    .partition(partition)
                    .payload(value.as_bytes()),
            );
            written.insert(value);
        }
    }
    // Flushed first, so an aborted transaction's records really are in the logs.
    producer.flush(TIMEOUT).expect("flushed");
    if commit {
        producer.commit_transaction(TIMEOUT).expect("commit");
    } else {
        producer.abort_transaction(TIMEOUT).expect("abort");
    }
    written
}

#[test]
fn a_transaction_over_partitions_led_by_three_brokers_commits_and_aborts_whole() {
    let brokers = start_cluster_with(0, (200, 2_000), "offsets_topic_num_partitions = 3\n");
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], TOPIC, 3, &[]);
    wait_everywhere(
        &every(&brokers),
        SLACK,
        "three partitions led by three brokers",
        |r| {
            topic(r, TOPIC).is_some_and(|t| {
                let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
                t.partitions.len() == 3
                    && leaders.len() == 3
                    && !leaders.contains(&-1)
                    && t.partitions.iter().all(|p| p.isr_nodes.len() == 3)
            })
        },
    );
    let bootstrap = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (producer, _) = transactional_producer(&bootstrap, "spread-producer");
    let mut committed = transaction(&producer, "first", true);
    let aborted = transaction(&producer, "aborted", false);
    committed.extend(transaction(&producer, "last", true));

    let reader = consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let seen = payloads(&consume(&reader, TOPIC, 3, committed.len(), TIMEOUT));
    let logs = || {
        brokers
            .iter()
            .map(|b| b.logs())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let read_aborted: Vec<&String> = seen.iter().filter(|v| aborted.contains(*v)).collect();
    assert!(
        read_aborted.is_empty(),
        "read_committed read aborted records: {read_aborted:?}"
    );
    assert_eq!(
        seen.len(),
        committed.len(),
        "read_committed: exactly the committed records\n{}",
        logs()
    );
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), committed);
}

const KILL_TOPIC: &str = "txn-coordinator-kill";
const KILL_ID: &str = "coordinator-kill-producer";
const KILL_PER_PARTITION: usize = 10;

/// The broker FindCoordinator(TRANSACTION) (v3) names for `id`, as `broker` answers it;
/// retried while it answers an error (the topic being created, a partition without a
/// leader or being loaded).
fn txn_coordinator(broker: &TestBroker, id: &str) -> i32 {
    let find = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(id.to_string()))
        .with_key_type(1);
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
            "no transaction coordinator for {id} within {SLACK:?}\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// InitProducerId (v3) for `id` sent straight to `broker`; answers its error code.
fn init_producer_id_at(broker: &TestBroker, id: &str) -> i16 {
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let r: InitProducerIdResponse = request(&mut socket, ApiKey::InitProducerId, 3, 1, &init);
    r.error_code
}

/// How a transaction ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
    /// The producer failed fatally (a new one fenced it): committed or aborted, unknown.
    Unknown,
}

/// Commits the open transaction, retrying a retriable failure; aborts when the client
/// says the transaction must be aborted; after a fatal error starts a new producer for
/// the id (which fences the old one and aborts what it left open).
fn commit(producer: &mut CountingProducer, bootstrap: &str) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let err = match producer.commit_transaction(TIMEOUT) {
            Ok(()) => return Outcome::Committed,
            Err(err) => err,
        };
        eprintln!("commit_transaction: {err}");
        let txn = match &err {
            KafkaError::Transaction(txn) => Some(txn),
            _ => None,
        };
        if txn.is_some_and(|e| e.is_retriable()) && Instant::now() < deadline {
            continue;
        }
        if txn.is_some_and(|e| e.txn_requires_abort())
            && producer.abort_transaction(TIMEOUT).is_ok()
        {
            return Outcome::Aborted;
        }
        *producer = transactional_producer(bootstrap, KILL_ID).0;
        return Outcome::Unknown;
    }
}

/// Begins a transaction and writes `KILL_PER_PARTITION` records named `{name}-{p}-{i}`
/// to each partition, flushed; answers the names.
fn write_transaction(producer: &CountingProducer, name: &str) -> BTreeSet<String> {
    producer.begin_transaction().expect("begin");
    let mut written = BTreeSet::new();
    for partition in 0..3 {
        for i in 0..KILL_PER_PARTITION {
            let value = format!("{name}-{partition}-{i:03}");
            send(
                producer,
                BaseRecord::to(KILL_TOPIC)
                    .partition(partition)
                    .payload(value.as_bytes()),
            );
            written.insert(value);
        }
    }
    producer.flush(TIMEOUT).expect("flushed");
    written
}

/// Waits until every broker shows three live brokers and every partition of `KILL_TOPIC`
/// and of `__transaction_state` with its three replicas in sync.
fn wait_in_sync(brokers: &[TestBroker]) {
    wait_everywhere(&every(brokers), SLACK, "every replica in sync", |r| {
        broker_ids(r).len() == 3
            && [KILL_TOPIC, "__transaction_state"].iter().all(|name| {
                topic(r, name).is_some_and(|t| {
                    t.partitions
                        .iter()
                        .all(|p| p.leader_id.0 >= 0 && p.isr_nodes.len() == 3)
                })
            })
    });
}

/// Transactions on `__transaction_state` across three real brokers. A transactional id is
/// coordinated by the leader of its `__transaction_state` partition only: another broker
/// answers NOT_COORDINATOR. A librdkafka transactional producer (all three addresses)
/// loses its coordinator to kill -9 once after writing and before committing (the open
/// transaction survives and commits on the new coordinator), and once as it commits
/// (EndTxn on its way or being answered). A read_committed consumer sees each transaction
/// whole or not at all, every committed one exactly once.
#[test]
fn a_transaction_survives_the_kill_of_its_coordinator() {
    let mut brokers = start_cluster_with(
        0,
        (200, 2_000),
        "offsets_topic_num_partitions = 3\ntransaction_state_log_num_partitions = 3\n",
    );
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], KILL_TOPIC, 3, &[("min.insync.replicas", "2")]);

    // Only the coordinator serves an id; the others refuse with NOT_COORDINATOR.
    let probe = "probe-producer";
    let coordinator = txn_coordinator(&brokers[0], probe);
    for (i, broker) in brokers.iter().enumerate() {
        let expected = if i as i32 + 1 == coordinator {
            0
        } else {
            ResponseError::NotCoordinator.code()
        };
        let deadline = Instant::now() + SLACK;
        let mut code = init_producer_id_at(broker, probe);
        // The coordinator may still be loading the id's partition.
        while code == ResponseError::CoordinatorLoadInProgress.code() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            code = init_producer_id_at(broker, probe);
        }
        assert_eq!(code, expected, "InitProducerId at broker {}", i + 1);
    }
    wait_in_sync(&brokers);

    let bootstrap = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (mut producer, _) = transactional_producer(&bootstrap, KILL_ID);
    let mut transactions: Vec<(String, BTreeSet<String>, Outcome)> = Vec::new();
    let first = write_transaction(&producer, "before");
    transactions.push(("before".into(), first, commit(&mut producer, &bootstrap)));

    // Killed after the sends, before the commit: the open transaction survives.
    let written = write_transaction(&producer, "open");
    let victim = txn_coordinator(&brokers[0], KILL_ID);
    brokers[(victim - 1) as usize].kill9();
    eprintln!("killed coordinator {victim} with a transaction open");
    let outcome = commit(&mut producer, &bootstrap);
    transactions.push(("open".into(), written, outcome));
    brokers[(victim - 1) as usize].restart();
    wait_in_sync(&brokers);

    // Killed as the commit goes out: committed or aborted, but whole.
    let written = write_transaction(&producer, "ending");
    let victim = txn_coordinator(&brokers[0], KILL_ID);
    let outcome = std::thread::scope(|s| {
        let committing = s.spawn(|| commit(&mut producer, &bootstrap));
        std::thread::sleep(Duration::from_millis(5));
        brokers[(victim - 1) as usize].kill9();
        eprintln!("killed coordinator {victim} as the transaction commits");
        committing.join().expect("commit thread")
    });
    transactions.push(("ending".into(), written, outcome));
    brokers[(victim - 1) as usize].restart();

    let last = write_transaction(&producer, "after");
    transactions.push((
        "after".into(),
        last.clone(),
        commit(&mut producer, &bootstrap),
    ));
    eprintln!(
        "outcomes: {:?}",
        transactions
            .iter()
            .map(|(n, _, o)| (n.as_str(), *o))
            .collect::<Vec<_>>()
    );
    let logs = || {
        brokers
            .iter()
            .map(|b| b.logs())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(transactions[0].2, Outcome::Committed);
    assert_eq!(
        transactions[1].2,
        Outcome::Committed,
        "the transaction open when its coordinator died commits\n{}",
        logs()
    );
    assert_eq!(transactions[3].2, Outcome::Committed);

    // The last transaction is last in every partition: once it is read, all is settled.
    let reader = consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(KILL_TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !last.iter().all(|v| seen.contains_key(v)) {
        assert!(
            Instant::now() < deadline,
            "read_committed read {} records, not the last transaction, within 60 s\n{}",
            seen.len(),
            logs()
        );
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            *seen.entry(value).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "records read twice: {twice:?}");
    for (name, written, outcome) in &transactions {
        let read = written.iter().filter(|v| seen.contains_key(*v)).count();
        assert!(
            read == 0 || read == written.len(),
            "transaction {name} ({outcome:?}) read in part: {read} of {}",
            written.len()
        );
        match outcome {
            Outcome::Committed => assert_eq!(read, written.len(), "committed {name} read whole"),
            Outcome::Aborted => assert_eq!(read, 0, "aborted {name} not read"),
            Outcome::Unknown => {}
        }
    }
}
