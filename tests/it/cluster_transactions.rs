//! Transactions across three real broker processes: a librdkafka transactional producer
//! (given all three addresses) writes to a topic whose three partitions are led by three
//! different brokers, so its transaction coordinator must send markers to the other two
//! (WriteTxnMarkers). A read_committed consumer reads every committed record, and never
//! one of the aborted transaction. Bounded waits only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use broker::coordinator::offsets_topic::partition_for;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::client_hostile_records::request;
use super::client_transactions::{payloads, transactional_producer};
use super::cluster_coordinators::find_coordinator;
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, metadata, start_cluster_with, topic, wait_everywhere,
    SLACK,
};
use super::harness::{bootstrap_all, consume, consumer, send, CountingProducer, TestBroker};

const TOPIC: &str = "spread-txn";
const PER_PARTITION: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Begins a transaction and writes `per_partition` records named `{name}-{p}-{i}` to each
/// of the three partitions of `topic`, flushed (so an aborted transaction's records really
/// are in the logs); answers the names.
pub(crate) fn write_transaction(
    producer: &CountingProducer,
    topic: &str,
    name: &str,
    per_partition: usize,
) -> BTreeSet<String> {
    producer.begin_transaction().expect("begin");
    let mut written = BTreeSet::new();
    for partition in 0..3 {
        for i in 0..per_partition {
            let value = format!("{name}-{partition}-{i:03}");
            send(
                producer,
                BaseRecord::to(topic)
                    .partition(partition)
                    .payload(value.as_bytes()),
            );
            written.insert(value);
        }
    }
    producer.flush(TIMEOUT).expect("flushed");
    written
}

/// Writes `PER_PARTITION` records to every partition of `TOPIC` in one transaction, then
/// commits or aborts it; answers the names.
fn transaction(producer: &CountingProducer, name: &str, commit: bool) -> BTreeSet<String> {
    let written = write_transaction(producer, TOPIC, name, PER_PARTITION);
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
    let bootstrap = bootstrap_all(&brokers);
    let (producer, _) = transactional_producer(&bootstrap, "spread-producer");
    let mut committed = transaction(&producer, "first", true);
    let aborted = transaction(&producer, "aborted", false);
    committed.extend(transaction(&producer, "last", true));

    let reader = consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let seen = payloads(&consume(&reader, TOPIC, 3, committed.len(), TIMEOUT));
    assert_read_committed(seen, &committed, &aborted, &brokers);
}

/// What a read_committed consumer read (`seen`) is exactly the `committed` records: none
/// of the `aborted`, none twice, none missing.
pub(crate) fn assert_read_committed(
    seen: Vec<String>,
    committed: &BTreeSet<String>,
    aborted: &BTreeSet<String>,
    brokers: &[TestBroker],
) {
    let read_aborted: Vec<&String> = seen.iter().filter(|v| aborted.contains(*v)).collect();
    assert!(
        read_aborted.is_empty(),
        "read_committed read aborted records: {read_aborted:?}"
    );
    let logs = || {
        brokers
            .iter()
            .map(|b| b.logs())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        seen.len(),
        committed.len(),
        "read_committed: exactly the committed records\n{}",
        logs()
    );
    assert_eq!(&seen.into_iter().collect::<BTreeSet<_>>(), committed);
}

const KILL_TOPIC: &str = "txn-coordinator-kill";
const KILL_ID: &str = "coordinator-kill-producer";
const KILL_PER_PARTITION: usize = 10;
const TRANSACTION_STATE: &str = "__transaction_state";

/// One request (version 3) sent straight to `broker`, and its response.
fn ask<Req: Encodable, Resp: Decodable>(broker: &TestBroker, api: ApiKey, req: &Req) -> Resp {
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    request(&mut socket, api, 3, 1, req)
}

/// Sends `signal` (`-STOP`, `-CONT`) to the broker's process.
fn signal(broker: &TestBroker, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &broker.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal}");
}

/// The high watermark of `topic`'s partition `index` (ListOffsets v5, latest) on `socket`;
/// -1 when refused.
fn high_watermark(socket: &mut TcpStream, topic: &str, index: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(index)
                .with_timestamp(-1)])]);
    let r: ListOffsetsResponse = request(socket, ApiKey::ListOffsets, 5, 1, &req);
    let p = &r.topics[0].partitions[0];
    if p.error_code == 0 {
        p.offset
    } else {
        -1
    }
}

/// InitProducerId for `id` at `broker`: its error code, producer id and epoch.
fn init_producer_id_at(broker: &TestBroker, id: &str) -> (i16, i64, i16) {
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = ask(broker, ApiKey::InitProducerId, &init);
    (r.error_code, r.producer_id.0, r.producer_epoch)
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

/// Waits until every broker shows three live brokers and every partition of `KILL_TOPIC`
/// and of `__transaction_state` with its three replicas in sync.
fn wait_in_sync(brokers: &[TestBroker]) {
    wait_everywhere(&every(brokers), SLACK, "every replica in sync", |r| {
        broker_ids(r).len() == 3
            && [KILL_TOPIC, TRANSACTION_STATE].iter().all(|name| {
                topic(r, name).is_some_and(|t| {
                    t.partitions
                        .iter()
                        .all(|p| p.leader_id.0 >= 0 && p.isr_nodes.len() == p.replica_nodes.len())
                })
            })
    });
}

/// Transactions on `__transaction_state` across three real brokers. A transactional id is
/// coordinated by the leader of its `__transaction_state` partition only: another broker
/// answers NOT_COORDINATOR. A librdkafka transactional producer (all three addresses)
/// loses its coordinator to kill -9 once after writing and before committing (the open
/// transaction survives and commits on the new coordinator), and once between EndTxn and
/// its answer, after PrepareCommit (the new coordinator loads it and finishes the commit).
/// A transaction whose producer never ends it is aborted at its timeout by the coordinator
/// that took over. A read_committed consumer sees each transaction whole or not at all,
/// every committed one exactly once.
#[test]
fn a_transaction_survives_the_kill_of_its_coordinator() {
    let mut brokers = start_cluster_with(
        0,
        (200, 2_000),
        "offsets_topic_num_partitions = 3\ntransaction_state_log_num_partitions = 3\n\
         transaction_state_log_replication_factor = 2\ntransaction_state_log_min_isr = 1\n",
    );
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], KILL_TOPIC, 3, &[("min.insync.replicas", "2")]);

    // Only the coordinator serves an id; the others refuse with NOT_COORDINATOR.
    let probe = "probe-producer";
    let coordinator = find_coordinator(&brokers[0], probe, 1);
    let deadline = Instant::now() + SLACK;
    let (code, producer_id, epoch) = loop {
        let answer = init_producer_id_at(&brokers[(coordinator - 1) as usize], probe);
        // The coordinator may still be loading the id's partition.
        if answer.0 != ResponseError::CoordinatorLoadInProgress.code() || Instant::now() > deadline
        {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        code, 0,
        "InitProducerId at the coordinator, broker {coordinator}"
    );
    let not_coordinator = ResponseError::NotCoordinator.code();
    for (i, broker) in brokers.iter().enumerate() {
        if i as i32 + 1 == coordinator {
            continue;
        }
        let code = init_producer_id_at(broker, probe).0;
        assert_eq!(code, not_coordinator, "InitProducerId at broker {}", i + 1);
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str(probe)))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_committed(false);
        let r: EndTxnResponse = ask(broker, ApiKey::EndTxn, &end);
        assert_eq!(r.error_code, not_coordinator, "EndTxn at broker {}", i + 1);
    }
    wait_in_sync(&brokers);

    let bootstrap = bootstrap_all(&brokers);
    let (mut producer, _) = transactional_producer(&bootstrap, KILL_ID);
    let mut transactions: Vec<(String, BTreeSet<String>, Outcome)> = Vec::new();
    let first = write_transaction(&producer, KILL_TOPIC, "before", KILL_PER_PARTITION);
    transactions.push(("before".into(), first, commit(&mut producer, &bootstrap)));

    // Killed after the sends, before the commit: the open transaction survives.
    let written = write_transaction(&producer, KILL_TOPIC, "open", KILL_PER_PARTITION);
    let victim = find_coordinator(&brokers[0], KILL_ID, 1);
    brokers[(victim - 1) as usize].kill9();
    eprintln!("killed coordinator {victim} with a transaction open");
    let outcome = commit(&mut producer, &bootstrap);
    transactions.push(("open".into(), written, outcome));
    brokers[(victim - 1) as usize].restart();
    wait_in_sync(&brokers);

    // Killed between EndTxn and its answer. `__transaction_state` has two replicas here,
    // so the third broker holds none of the id's partition but a replica of every
    // partition of the topic: frozen (SIGSTOP), it holds up the markers (acks=all) and not
    // PrepareCommit. The coordinator is killed once PrepareCommit is durable (its
    // partition's high watermark moved), the frozen broker thawed; the next coordinator
    // loads PrepareCommit and finishes the commit.
    let index = partition_for(KILL_ID, 3);
    let victim = find_coordinator(&brokers[0], KILL_ID, 1);
    let replicas = metadata(&brokers[0])
        .and_then(|r| {
            let t = topic(&r, TRANSACTION_STATE)?;
            let p = t.partitions.iter().find(|p| p.partition_index == index)?;
            Some(
                p.replica_nodes
                    .iter()
                    .map(|b| b.0)
                    .collect::<BTreeSet<i32>>(),
            )
        })
        .expect("the id's __transaction_state partition");
    let frozen = (1..=3)
        .find(|id| !replicas.contains(id))
        .expect("a third broker");
    let written = write_transaction(&producer, KILL_TOPIC, "ending", KILL_PER_PARTITION);
    let mut socket =
        TcpStream::connect(("127.0.0.1", brokers[(victim - 1) as usize].port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let before = high_watermark(&mut socket, TRANSACTION_STATE, index);
    signal(&brokers[(frozen - 1) as usize], "-STOP");
    let outcome = std::thread::scope(|s| {
        let committing = s.spawn(|| commit(&mut producer, &bootstrap));
        let deadline = Instant::now() + SLACK;
        let mut seen = before;
        while seen == before && Instant::now() < deadline {
            seen = high_watermark(&mut socket, TRANSACTION_STATE, index);
        }
        brokers[(victim - 1) as usize].kill9();
        signal(&brokers[(frozen - 1) as usize], "-CONT");
        eprintln!(
            "killed coordinator {victim} with broker {frozen} frozen as the transaction \
             commits: __transaction_state-{index} high watermark {before} -> {seen}"
        );
        committing.join().expect("commit thread")
    });
    transactions.push(("ending".into(), written, outcome));
    let finishing = "Finishing a transaction that was ending";
    assert!(
        brokers.iter().any(|b| b.logs().contains(finishing)),
        "the next coordinator finished the commit"
    );
    brokers[(victim - 1) as usize].restart();
    wait_in_sync(&brokers);

    // A producer that never ends its transaction loses its coordinator: the next one
    // keeps the transaction open and aborts it at its timeout, which frees the
    // read_committed readers (the last transaction below is read after it).
    let orphan_id = "orphan-producer";
    let (orphan, _) = super::harness::producer(
        &bootstrap,
        &[
            ("transactional.id", orphan_id),
            ("transaction.timeout.ms", "3000"),
            ("message.timeout.ms", "3000"),
        ],
    );
    orphan
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    let written = write_transaction(&orphan, KILL_TOPIC, "orphan", KILL_PER_PARTITION);
    transactions.push(("orphan".into(), written, Outcome::Aborted));
    let victim = find_coordinator(&brokers[0], orphan_id, 1);
    brokers[(victim - 1) as usize].kill9();
    eprintln!("killed coordinator {victim} of a transaction nobody ends");
    brokers[(victim - 1) as usize].restart();
    wait_in_sync(&brokers);

    let last = write_transaction(&producer, KILL_TOPIC, "after", KILL_PER_PARTITION);
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
    assert_eq!(transactions.last().map(|t| t.2), Some(Outcome::Committed));

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
