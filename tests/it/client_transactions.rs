//! Transactions with librdkafka against a real broker process: interleaved commits and
//! aborts seen by read_committed and read_uncommitted consumers; consume-transform-produce
//! whose processing client is killed mid-transaction (exactly once after its restart);
//! and the broker killed mid-transaction (never half visible after its restart).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn transactional_producer(
    bootstrap: &str,
    id: &str,
) -> (CountingProducer, std::sync::Arc<Deliveries>) {
    let (producer, deliveries) = producer(
        bootstrap,
        &[
            ("transactional.id", id),
            ("transaction.timeout.ms", "60000"),
            ("linger.ms", "5"),
        ],
    );
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    (producer, deliveries)
}

pub(crate) fn payloads(records: &[Consumed]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[test]
fn committed_and_aborted_transactions_interleaved() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "txn-mix", 3);
    let (producer, _) = transactional_producer(&bootstrap, "txn-mix-producer");
    let mut committed = BTreeSet::new();
    let mut all = BTreeSet::new();
    for t in 0..10 {
        producer.begin_transaction().expect("begin");
        for i in 0..300 {
            let v = format!("t{t:02}-{i:04}");
            send(
                &producer,
                BaseRecord::to("txn-mix")
                    .partition(i % 3)
                    .key(b"k".as_slice())
                    .payload(v.as_bytes()),
            );
            all.insert(v);
        }
        if t % 3 == 1 {
            // Flush first, so the aborted records really are in the log.
            producer.flush(TIMEOUT).expect("flushed");
            producer.abort_transaction(TIMEOUT).expect("abort");
        } else {
            producer.commit_transaction(TIMEOUT).expect("commit");
            committed.extend((0..300).map(|i| format!("t{t:02}-{i:04}")));
        }
    }
    assert_eq!(committed.len(), 7 * 300);

    let read_committed = consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let seen = consume(&read_committed, "txn-mix", 3, committed.len(), TIMEOUT);
    let seen_values = payloads(&seen);
    assert_eq!(
        seen_values.len(),
        committed.len(),
        "read_committed: exact count"
    );
    assert_eq!(
        seen_values.iter().cloned().collect::<BTreeSet<_>>(),
        committed,
        "read_committed sees exactly the committed records"
    );
    // Per partition, in produce order.
    for p in 0..3 {
        let in_partition: Vec<&String> = seen
            .iter()
            .zip(&seen_values)
            .filter(|(r, _)| r.partition == p)
            .map(|(_, v)| v)
            .collect();
        assert!(
            in_partition.windows(2).all(|w| w[0] < w[1]),
            "partition {p} in order"
        );
    }

    let read_uncommitted = consumer(&bootstrap, &[("isolation.level", "read_uncommitted")]);
    let everything = consume(&read_uncommitted, "txn-mix", 3, all.len(), TIMEOUT);
    assert_eq!(
        everything.len(),
        all.len(),
        "read_uncommitted sees every record"
    );
    assert_eq!(
        payloads(&everything).into_iter().collect::<BTreeSet<_>>(),
        all
    );
}

/// The topic's records as a read_committed consumer sees them (up to `committed`), and how
/// many a read_uncommitted one sees (up to `uncommitted`; fewer only after a 30 s wait).
fn read_both(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    committed: usize,
    uncommitted: usize,
) -> (Vec<String>, usize) {
    let reader = consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let seen = payloads(&consume(&reader, topic, partitions, committed, TIMEOUT));
    let reader = consumer(bootstrap, &[("isolation.level", "read_uncommitted")]);
    let all = consume(&reader, topic, partitions, uncommitted, TIMEOUT).len();
    (seen, all)
}

/// Summed latest offsets as ListOffsets answers them for each isolation level:
/// (last stable offsets, high watermarks).
fn stable_and_high(bootstrap: &str, topic: &str, partitions: i32) -> (i64, i64) {
    let committed = consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let uncommitted = consumer(bootstrap, &[("isolation.level", "read_uncommitted")]);
    (
        end_offsets(&committed, topic, partitions).iter().sum(),
        end_offsets(&uncommitted, topic, partitions).iter().sum(),
    )
}

/// `n` records `<prefix>-<i>` to txn-crash, alternating over its two partitions.
fn send_spread(producer: &CountingProducer, prefix: &str, n: i32) {
    for i in 0..n {
        let v = format!("{prefix}-{i:04}");
        send(
            producer,
            BaseRecord::to("txn-crash")
                .partition(i % 2)
                .key(b"k".as_slice())
                .payload(v.as_bytes()),
        );
    }
}

#[test]
fn broker_killed_mid_transaction_is_never_half_visible() {
    let mut broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "txn-crash", 2);

    // 1. Killed with a transaction open; the producer commits it after the restart.
    let (producer, deliveries) = transactional_producer(&bootstrap, "txn-crash-producer");
    producer.begin_transaction().expect("begin");
    send_spread(&producer, "first", 500);
    producer.flush(TIMEOUT).expect("flushed");
    assert_eq!(deliveries.ok.load(std::sync::atomic::Ordering::SeqCst), 500);
    broker.kill9();
    broker.restart();
    assert_eq!(
        stable_and_high(&bootstrap, "txn-crash", 2),
        (0, 500),
        "still open after the restart: the last stable offsets hold at its start"
    );
    let (seen, all) = read_both(&bootstrap, "txn-crash", 2, 0, 500);
    assert_eq!(
        (seen.len(), all),
        (0, 500),
        "invisible to read_committed only"
    );
    producer
        .commit_transaction(TIMEOUT)
        .expect("commit after the restart");
    // 500 records and a marker per partition.
    assert_eq!(stable_and_high(&bootstrap, "txn-crash", 2), (502, 502));
    let (seen, _) = read_both(&bootstrap, "txn-crash", 2, 500, 0);
    assert_eq!(seen.len(), 500, "all of it once committed");
    assert!(seen.iter().all(|v| v.starts_with("first-")));

    // 2. Killed with a transaction open; a new incarnation of the producer aborts it.
    producer.begin_transaction().expect("begin");
    send_spread(&producer, "second", 300);
    producer.flush(TIMEOUT).expect("flushed");
    broker.kill9();
    drop(producer);
    broker.restart();
    let (again, _) = transactional_producer(&bootstrap, "txn-crash-producer");
    assert_eq!(
        stable_and_high(&bootstrap, "txn-crash", 2),
        (804, 804),
        "the new incarnation aborted it: 300 records and a marker per partition, all stable"
    );
    let (seen, all) = read_both(&bootstrap, "txn-crash", 2, 500, 800);
    assert_eq!(seen.len(), 500, "the aborted transaction is invisible");
    assert!(seen.iter().all(|v| v.starts_with("first-")));
    assert_eq!(all, 800, "its records are in the log, marked aborted");
    // The partitions are stable again: a new transaction commits and is read.
    again.begin_transaction().expect("begin");
    send(
        &again,
        BaseRecord::to("txn-crash")
            .partition(0)
            .key(b"k".as_slice())
            .payload(b"third".as_slice()),
    );
    again.commit_transaction(TIMEOUT).expect("commit");
    let (seen, _) = read_both(&bootstrap, "txn-crash", 2, 501, 0);
    assert_eq!(seen.len(), 501);
    assert!(seen.contains(&"third".to_string()));
}

const WORKER_ENV: &str = "BROKER_TEST_EOS_WORKER";
const CRASH_ENV: &str = "BROKER_TEST_EOS_CRASH_AFTER";
const INPUTS: usize = 3_000;
const MID_TRANSACTION: &str = "EOS-WORKER-MID-TRANSACTION";

/// Consume-transform-produce, run as a child process by the test below (it returns at
/// once unless the environment names a broker). With the crash variable set to n, it
/// commits n transactions, then stops in the middle of the next one with its output
/// written, says so on stdout, and waits to be killed.
#[test]
#[ignore = "a child process of exactly_once_consume_transform_produce"]
fn eos_worker() {
    let Ok(bootstrap) = std::env::var(WORKER_ENV) else {
        return;
    };
    let crash_after: Option<usize> = std::env::var(CRASH_ENV).ok().and_then(|v| v.parse().ok());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "eos-group")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        // Stored: start from the group's committed offset.
        tpl.add_partition_offset("eos-in", p, Offset::Stored)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "eos-worker")
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init_transactions");
    let mut transactions = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "worker did not finish within 120 s"
        );
        let mut batch = Vec::new();
        while batch.len() < 250 {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => batch.push((
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default().to_vec(),
                )),
                Some(Err(e)) => panic!("consume: {e}"),
                None => break,
            }
        }
        if batch.is_empty() {
            // Done once the committed positions cover every input.
            let position = consumer.position().expect("position");
            let consumed: i64 = position
                .elements()
                .iter()
                .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
                .sum();
            if consumed as usize >= INPUTS {
                println!("EOS-WORKER-DONE {transactions}");
                return;
            }
            continue;
        }
        producer.begin_transaction().expect("begin");
        for (partition, _, payload) in &batch {
            let out = [b"out-".as_slice(), payload].concat();
            let record = BaseRecord::<[u8], [u8]>::to("eos-out")
                .partition(*partition)
                .payload(&out);
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        let mut offsets = TopicPartitionList::new();
        for p in 0..3 {
            if let Some((_, offset, _)) = batch.iter().rev().find(|(bp, _, _)| *bp == p) {
                offsets
                    .add_partition_offset("eos-in", p, Offset::Offset(offset + 1))
                    .unwrap();
            }
        }
        let metadata = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
            .expect("send offsets");
        if crash_after == Some(transactions) {
            producer.flush(TIMEOUT).expect("output written");
            println!("{MID_TRANSACTION}");
            // Killed here by the test; never commits.
            std::thread::sleep(Duration::from_secs(120));
            panic!("the test should have killed this worker");
        }
        producer.commit_transaction(TIMEOUT).expect("commit");
        transactions += 1;
    }
}

#[test]
fn exactly_once_consume_transform_produce_across_a_worker_crash() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "eos-in", 3);
    create_topic(&bootstrap, "eos-out", 3);
    let (input, _) = producer(&bootstrap, &[("enable.idempotence", "true")]);
    for i in 0..INPUTS {
        let v = format!("{i:05}");
        send(
            &input,
            BaseRecord::to("eos-in")
                .partition((i % 3) as i32)
                .payload(v.as_bytes()),
        );
    }
    flush(&input);

    let worker = |crash_after: Option<usize>| {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--ignored",
                "--exact",
                "client_transactions::eos_worker",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, &bootstrap)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(n) = crash_after {
            command.env(CRASH_ENV, n.to_string());
        }
        command.spawn().expect("worker starts")
    };
    let lines = |child: &mut std::process::Child| {
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };

    // The first worker commits three transactions, then is killed with the fourth open.
    let mut first = worker(Some(3));
    let first_lines = lines(&mut first);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match first_lines.recv_timeout(left) {
            Ok(line) if line.contains(MID_TRANSACTION) => break,
            Ok(_) => {}
            Err(_) => {
                let _ = first.kill();
                panic!("the first worker never reached its crash point");
            }
        }
    }
    first.kill().expect("SIGKILL the worker");
    first.wait().expect("reaped");

    // A restarted worker (same transactional id) fences it, aborts its open transaction
    // and goes on from the committed offsets.
    let mut second = worker(None);
    let second_lines = lines(&mut second);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut done = false;
    while !done {
        let left = deadline.saturating_duration_since(Instant::now());
        match second_lines.recv_timeout(left) {
            Ok(line) => done = line.contains("EOS-WORKER-DONE"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = second.kill();
                panic!("the second worker did not finish within 120 s");
            }
        }
    }
    let status = second.wait().expect("reaped");
    assert!(done && status.success(), "second worker finished: {status}");

    let (seen, all) = read_both(&bootstrap, "eos-out", 3, INPUTS, INPUTS + 1);
    assert_eq!(
        seen.len(),
        INPUTS,
        "every input exactly once in the committed output"
    );
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), INPUTS, "no duplicates");
    let expected: BTreeSet<String> = (0..INPUTS).map(|i| format!("out-{i:05}")).collect();
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        all > INPUTS,
        "the killed worker's aborted output is in the log ({all} records) but not read"
    );
}
