//! A compacted topic with librdkafka: 100,000 lz4-compressed records over 1,000 keys
//! read back after cleaning as the latest value of each key (plus the uncleaned tail),
//! with offsets, timestamps and headers as produced; a keyless record is refused. And
//! max.compaction.lag.ms set with AlterConfigs makes the broker clean a log whose dirty
//! share is below min.cleanable.dirty.ratio.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::*;

const RECORDS: usize = 100_000;
const KEYS: usize = 1_000;
const BASE_TS: i64 = 1_700_000_000_000;

fn key(i: usize) -> String {
    format!("key-{:04}", i % KEYS)
}

/// Every record of partition 0 from the beginning up to the high watermark.
fn read_to_end(bootstrap: &str, topic: &str) -> Vec<Consumed> {
    let reader = consumer(bootstrap, &[]);
    let hw = end_offsets(&reader, topic, 1)[0];
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out: Vec<Consumed> = Vec::new();
    while out.last().is_none_or(|r| r.offset + 1 < hw) {
        assert!(Instant::now() < deadline, "could not read to {hw} in 30 s");
        match reader.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(m)) => out.push(Consumed::of(&m)),
        }
    }
    out
}

/// A broker whose partitions check retention and cleaning every 100 ms, and an admin
/// client of it.
fn broker_checking_every_100_ms() -> (TestBroker, AdminClient<DefaultClientContext>) {
    let broker = TestBroker::start("[log]\nretention_check_interval_ms = 100");
    let admin = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    (broker, admin)
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_every_key() {
    let (broker, admin) = broker_checking_every_100_ms();
    let bootstrap = broker.bootstrap();
    let topic = NewTopic::new("compacted", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "16384")
        .set("min.cleanable.dirty.ratio", "0.01");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .unwrap()[0]
        .clone()
        .unwrap();

    let (producer, deliveries) = producer(
        &bootstrap,
        // Small batches: the active segment, which is never cleaned, stays small.
        &[
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            ("batch.size", "16384"),
        ],
    );
    for i in 0..RECORDS {
        let (k, v) = (key(i), format!("value-{i:06}"));
        let index = i.to_string();
        send(
            &producer,
            BaseRecord::to("compacted")
                .key(k.as_bytes())
                .payload(v.as_bytes())
                .timestamp(BASE_TS + i as i64)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "i",
                    value: Some(index.as_bytes()),
                })),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), RECORDS);
    let latest: HashMap<String, usize> = (0..RECORDS).map(|i| (key(i), i)).collect();

    // The cleaner runs on the broker's own timer: read until it has done its work.
    let deadline = Instant::now() + Duration::from_secs(90);
    let records = loop {
        let records = read_to_end(&bootstrap, "compacted");
        if records.len() < 5_000 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "still {} records after 90 s:\n{}",
            records.len(),
            broker.logs()
        );
    };

    assert!(
        records.windows(2).all(|w| w[0].offset < w[1].offset),
        "offsets in order"
    );
    let mut last_seen: HashMap<String, usize> = HashMap::new();
    for r in &records {
        let k = String::from_utf8(r.key.clone().expect("a key")).unwrap();
        let v = String::from_utf8(r.payload.clone().expect("a value")).unwrap();
        let i: usize = v["value-".len()..].parse().unwrap();
        assert_eq!(k, key(i));
        assert_eq!(r.timestamp, Some(BASE_TS + i as i64), "timestamp kept");
        assert_eq!(
            r.headers,
            vec![("i".to_string(), Some(i.to_string().into_bytes()))],
            "headers kept"
        );
        if let Some(previous) = last_seen.insert(k, i) {
            assert!(previous < i, "a key's values in produce order");
        }
    }
    assert_eq!(last_seen.len(), KEYS, "every key is there");
    assert_eq!(last_seen, latest, "each key ends with its latest value");
    assert!(broker.logs().contains("Cleaned the log."));
    // Cleaning is not deletion: the log still starts at offset 0.
    let reader = consumer(&bootstrap, &[]);
    let (low, _) = reader
        .fetch_watermarks("compacted", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(low, 0, "log start offset kept");

    // A record without a key is refused: INVALID_RECORD.
    let failed = deliveries.failed.load(Ordering::SeqCst);
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::<[u8], [u8]>::to("compacted").payload(b"no key".as_slice()),
    );
    assert_eq!(deliveries.failed.load(Ordering::SeqCst), failed + 1);
    let error = deliveries.first_error.lock().unwrap().clone().unwrap();
    assert!(error.contains("InvalidRecord"), "{error}");
}

/// AlterConfigs (which replaces every override) of topic `lagged`, checked.
fn alter(admin: &AdminClient<DefaultClientContext>, configs: &[(&str, &str)]) {
    let mut change = AlterConfig::new(ResourceSpecifier::Topic("lagged"));
    for (name, value) in configs {
        change = change.set(name, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.alter_configs(&[change], &AdminOptions::new()))
        .unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
}

/// The partition directory's files and their sizes, for a failure message.
fn partition_files(broker: &TestBroker) -> Vec<(String, u64)> {
    let dir = broker.data_dir().join("lagged-0");
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Records `from..to` of `lagged`: key `key-<i % keys>`, value `value-<i>`, timestamped
/// in 2023 (so long older than any max.compaction.lag.ms set below).
fn produce_lagged(bootstrap: &str, from: usize, to: usize, keys: usize) {
    // Batches well below segment.bytes (16384), so the log rolls into closed segments the
    // cleaner can take. With librdkafka's default batch.size (1 MB) a slow machine sends
    // all 10,000 records (293 KB) as one batch into one segment, which never closes.
    let (producer, deliveries) = producer(bootstrap, &[("linger.ms", "5"), ("batch.size", "4096")]);
    for i in from..to {
        let (k, v) = (format!("key-{:05}", i % keys), format!("value-{i:05}"));
        send(
            &producer,
            BaseRecord::to("lagged")
                .key(k.as_bytes())
                .payload(v.as_bytes())
                .timestamp(BASE_TS + i as i64),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), to - from);
}

#[test]
fn max_compaction_lag_cleans_a_log_below_its_dirty_ratio() {
    let (broker, admin) = broker_checking_every_100_ms();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "lagged", 1);
    let base = [("segment.bytes", "16384"), ("retention.ms", "-1")];
    alter(&admin, &base);
    // 10,000 distinct keys, not yet compacted.
    produce_lagged(&bootstrap, 0, 10_000, 10_000);
    // Compacted with a dirty ratio of 1.0: the first pass (everything dirty) runs, and
    // no later one can on the ratio alone.
    let compact = [
        base[0],
        base[1],
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "1.0"),
    ];
    alter(&admin, &compact);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !broker.logs().contains("Cleaned the log.") {
        assert!(
            Instant::now() < deadline,
            "no first pass in 30 s; partition files {:?}:\n{}",
            partition_files(&broker),
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // New values for key-00000..key-00999 (records 10,000..10,999), then 1,000 new keys
    // so that they sit in closed segments: about a sixth of the log is dirty.
    produce_lagged(&bootstrap, 10_000, 11_000, 1_000);
    produce_lagged(&bootstrap, 11_000, 12_000, 1_000_000);
    let superseded = |records: &[Consumed]| records.iter().filter(|r| r.offset < 1_000).count();
    assert_eq!(superseded(&read_to_end(&bootstrap, "lagged")), 1_000);

    let mut lagged = compact.to_vec();
    lagged.push(("max.compaction.lag.ms", "60000"));
    alter(&admin, &lagged);
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let records = read_to_end(&bootstrap, "lagged");
        if superseded(&records) == 0 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{} superseded records still there after 60 s:\n{}",
            superseded(&records),
            broker.logs()
        );
    };
    // Every key's latest value is there, at the offset it was produced at.
    let mut latest: HashMap<String, i64> = HashMap::new();
    for r in &records {
        let key = String::from_utf8(r.key.clone().expect("a key")).unwrap();
        let value = String::from_utf8(r.payload.clone().expect("a value")).unwrap();
        assert_eq!(value, format!("value-{:05}", r.offset), "offset kept");
        latest.insert(key, r.offset);
    }
    assert_eq!(latest.len(), 11_000, "10,000 first keys and 1,000 new ones");
    for k in 0..1_000 {
        assert_eq!(latest[&format!("key-{k:05}")], 10_000 + k as i64);
    }
}
