//! The incidents, with a real client (librdkafka through the rdkafka crate) against a real
//! broker process: visibility right after produce, kill -9 and SIGTERM recovery, small
//! fetch limits with large records, acks=all latency, and a torn segment tail.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseRecord;

use crate::harness::*;

pub(crate) fn value(i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("msg-{i:08}-").into_bytes();
    v.resize(size.max(v.len()), b'x');
    v
}

fn seq_of(payload: &[u8]) -> usize {
    std::str::from_utf8(&payload[4..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("payload carries its sequence number")
}

/// Produces `count` records over `partitions` (record i to partition i % partitions) and
/// asserts every one was acknowledged.
fn produce(bootstrap: &str, topic: &str, partitions: i32, count: usize, size: usize, acks: &str) {
    let (producer, deliveries) = producer(bootstrap, &[("acks", acks), ("linger.ms", "5")]);
    for i in 0..count {
        let v = value(i, size);
        let key = format!("k{}", i % 13);
        send(
            &producer,
            BaseRecord::to(topic)
                .partition((i % partitions as usize) as i32)
                .key(key.as_bytes())
                .payload(v.as_slice()),
        );
    }
    flush(&producer);
    assert_eq!(
        deliveries.failed.load(Ordering::SeqCst),
        0,
        "first delivery error: {:?}",
        deliveries.first_error.lock().unwrap()
    );
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), count);
}

/// Exactly `count` records, contiguous offsets from 0 per partition, each sequence number
/// once, in produce order within each partition.
pub(crate) fn assert_exactly(records: &[Consumed], partitions: i32, count: usize) {
    assert_eq!(records.len(), count, "exact count read back");
    assert_contiguous(records, partitions);
    let mut seen = HashSet::new();
    for p in 0..partitions {
        let seqs: Vec<usize> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| seq_of(r.payload.as_deref().expect("payload")))
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "partition {p} in produce order"
        );
        for s in seqs {
            assert_eq!(
                s % partitions as usize,
                p as usize,
                "record {s} in its partition"
            );
            assert!(seen.insert(s), "record {s} read twice");
        }
    }
    assert_eq!(seen.len(), count);
}

#[test]
fn produced_records_are_visible_at_once_200k() {
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "visible", 3);
    produce(&broker.bootstrap(), "visible", 3, 200_000, 100, "1");
    let consumer = consumer(&broker.bootstrap(), &[]);
    // No sleep: the end offsets come from the partition actors that just acknowledged.
    let ends = end_offsets(&consumer, "visible", 3);
    assert_eq!(ends.iter().sum::<i64>(), 200_000, "{ends:?}");
    let records = consume(&consumer, "visible", 3, 200_000, Duration::from_secs(60));
    assert_exactly(&records, 3, 200_000);
}

#[test]
fn a_parked_fetch_is_woken_by_the_append() {
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "single", 1);
    // A cold librdkafka producer spends ~200 ms on its first connection and metadata:
    // warm it on this topic first, so the figure is the broker's part.
    let (producer, deliveries) =
        producer(&broker.bootstrap(), &[("acks", "1"), ("linger.ms", "0")]);
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to("single")
            .partition(0)
            .payload(b"warm".as_slice())
            .key(b"k".as_slice()),
    );
    // A parked fetch that nothing wakes returns after fetch.wait.max.ms (20 s): a record
    // that arrives well before that was delivered by the append waking the fetch.
    let consumer = consumer(&broker.bootstrap(), &[("fetch.wait.max.ms", "20000")]);
    // The consumer reads the warm-up record, then its next fetch parks in the partition.
    assert_eq!(
        consume(&consumer, "single", 1, 1, Duration::from_secs(10)).len(),
        1
    );
    let started = Instant::now();
    send(
        &producer,
        BaseRecord::to("single")
            .partition(0)
            .payload(b"ping".as_slice())
            .key(b"k".as_slice()),
    );
    // librdkafka sends it from its own thread; the consumer is polled at once.
    let mut got = None;
    while started.elapsed() < Duration::from_secs(25) && got.is_none() {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(1)) {
            got = Some(started.elapsed());
            assert_eq!(rdkafka::Message::payload(&m), Some(b"ping".as_slice()));
        }
    }
    let latency = got.expect("the record arrived");
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 2);
    println!("produce-to-consume latency of one record: {latency:?}");
    assert!(
        latency < Duration::from_secs(10),
        "the record came only when the parked fetch's 20 s wait ran out: {latency:?}"
    );
}

fn kill9_keeps_every_acknowledged_record(count: usize) {
    let mut broker = TestBroker::start("");
    let topic = format!("crash-{count}");
    create_topic(&broker.bootstrap(), &topic, 3);
    produce(&broker.bootstrap(), &topic, 3, count, 100, "all");
    broker.kill9();
    broker.restart();
    let consumer = consumer(&broker.bootstrap(), &[]);
    let records = consume(&consumer, &topic, 3, count, Duration::from_secs(60));
    assert_exactly(&records, 3, count);
    assert!(broker.logs().contains("Partition recovered its log"));
}

#[test]
fn kill9_after_acks_all_keeps_10k() {
    kill9_keeps_every_acknowledged_record(10_000);
}

#[test]
fn kill9_after_acks_all_keeps_50k() {
    kill9_keeps_every_acknowledged_record(50_000);
}

#[test]
fn sigterm_flushes_and_restart_has_exactly_100() {
    let mut broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "graceful", 1);
    produce(&broker.bootstrap(), "graceful", 1, 100, 50, "1");
    let status = broker.sigterm();
    assert_eq!(status.code(), Some(0), "{}", broker.logs());
    assert!(broker
        .logs()
        .contains("Flushed and fsynced every partition"));
    broker.restart();
    let consumer = consumer(&broker.bootstrap(), &[]);
    let records = consume(&consumer, "graceful", 1, 100, Duration::from_secs(30));
    assert_exactly(&records, 1, 100);
}

#[test]
fn large_records_through_64k_fetch_limits() {
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "large", 3);
    produce(&broker.bootstrap(), "large", 3, 5_000, 10_000, "1");
    let consumer = consumer(
        &broker.bootstrap(),
        &[
            ("fetch.max.bytes", "65536"),
            ("max.partition.fetch.bytes", "65536"),
            // librdkafka insists fetch.max.bytes >= message.max.bytes (a client setting).
            ("message.max.bytes", "65536"),
        ],
    );
    let started = Instant::now();
    let records = consume(&consumer, "large", 3, 5_000, Duration::from_secs(60));
    println!(
        "5,000 records of 10 KB with 64 KB fetch limits in {:?}",
        started.elapsed()
    );
    assert_exactly(&records, 3, 5_000);
    assert!(records
        .iter()
        .all(|r| r.payload.as_ref().map(|p| p.len()) == Some(10_000)));
}

#[test]
fn one_thousand_acks_all_one_at_a_time() {
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "acks-all", 1);
    let (producer, deliveries) =
        producer(&broker.bootstrap(), &[("acks", "all"), ("linger.ms", "0")]);
    let mut latencies = Vec::with_capacity(1000);
    for i in 0..1000 {
        let v = value(i, 100);
        let started = Instant::now();
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to("acks-all")
                .partition(0)
                .key(b"k".as_slice())
                .payload(v.as_slice()),
        );
        latencies.push(started.elapsed());
        assert_eq!(
            deliveries.ok.load(Ordering::SeqCst),
            i + 1,
            "send {i} acknowledged"
        );
    }
    assert_eq!(deliveries.failed.load(Ordering::SeqCst), 0);
    latencies.sort();
    let p50 = latencies[499];
    let p99 = latencies[989];
    println!(
        "acks=all one at a time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        latencies[999].as_secs_f64() * 1000.0
    );
    let consumer = consumer(&broker.bootstrap(), &[]);
    assert_exactly(
        &consume(&consumer, "acks-all", 1, 1000, Duration::from_secs(30)),
        1,
        1000,
    );
}

#[test]
fn a_segment_cut_mid_batch_keeps_every_whole_batch() {
    let mut broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "torn", 1);
    // One record per batch, so cutting the last batch loses exactly one record.
    let (producer, deliveries) = producer(
        &broker.bootstrap(),
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
        ],
    );
    for i in 0..100 {
        let v = value(i, 100);
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to("torn")
                .partition(0)
                .key(b"k".as_slice())
                .payload(v.as_slice()),
        );
    }
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 100);
    assert_eq!(broker.sigterm().code(), Some(0));
    let dir = broker.data_dir().join("torn-0");
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let newest = logs.last().expect("a segment");
    let len = std::fs::metadata(newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    // The offline checker sees the torn batch, with its file.
    let check = broker_check(&broker.data_dir());
    assert_eq!(check.status.code(), Some(1));
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains(&newest.display().to_string()), "{report}");
    broker.restart();
    let consumer = consumer(&broker.bootstrap(), &[]);
    let records = consume(&consumer, "torn", 1, 99, Duration::from_secs(30));
    assert_exactly(&records, 1, 99);
    assert_eq!(end_offsets(&consumer, "torn", 1), vec![99]);
    assert!(
        broker.logs().contains("Truncated a torn or corrupt tail"),
        "{}",
        broker.logs()
    );
    // After the broker's own recovery and a clean stop, the directory checks clean.
    assert_eq!(broker.sigterm().code(), Some(0));
    let check = broker_check(&broker.data_dir());
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

fn broker_check(data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["check", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("broker check runs")
}
