//! Retention and DeleteRecords with real clients (librdkafka).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::harness::*;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn earliest(consumer: &BaseConsumer, topic: &str) -> i64 {
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap()
        .0
}

#[test]
fn retention_bytes_moves_the_earliest_offset_while_clients_keep_working() {
    let broker = TestBroker::start("[log]\nretention_check_interval_ms = 100");
    let bootstrap = broker.bootstrap();
    let topic = NewTopic::new("retained", 1, TopicReplication::Fixed(1))
        .set("segment.bytes", "20000")
        .set("retention.bytes", "60000");
    block_on(admin(&bootstrap).create_topics(&[topic], &AdminOptions::new())).unwrap()[0]
        .clone()
        .unwrap();
    let (producer, deliveries) = producer(
        &bootstrap,
        &[("acks", "1"), ("linger.ms", "1"), ("batch.size", "2000")],
    );
    let tail = consumer(&bootstrap, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("retained", 0, Offset::Beginning)
        .unwrap();
    tail.assign(&tpl).unwrap();
    let mut next_seen = 0i64;
    let mut read = 0usize;
    let started = Instant::now();
    let mut sent = 0usize;
    // Keep producing and consuming until retention has moved the earliest offset well on.
    while started.elapsed() < Duration::from_secs(60) {
        for _ in 0..200 {
            let v = format!("r-{sent:08}-{}", "p".repeat(200));
            send(
                &producer,
                BaseRecord::to("retained")
                    .partition(0)
                    .key(b"k".as_slice())
                    .payload(v.as_bytes()),
            );
            sent += 1;
        }
        flush(&producer);
        while let Some(Ok(m)) = tail.poll(Duration::from_millis(5)) {
            assert!(m.offset() >= next_seen, "the consumer went backwards");
            next_seen = m.offset() + 1;
            read += 1;
        }
        if earliest(&tail, "retained") > 2_000 {
            break;
        }
    }
    assert_eq!(
        deliveries.ok.load(Ordering::SeqCst),
        sent,
        "every produce succeeded throughout"
    );
    let low = earliest(&tail, "retained");
    assert!(low > 2_000, "retention moved the earliest offset: {low}");
    let log_dir_size: u64 = std::fs::read_dir(broker.data_dir().join("retained-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        log_dir_size < 60_000 + 2 * 20_000,
        "the partition stays near its limit: {log_dir_size} bytes"
    );
    assert!(read > 0 && next_seen > 0);

    // A consumer whose position was deleted resets by auto.offset.reset=earliest.
    let late = consumer(&bootstrap, &[("auto.offset.reset", "earliest")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("retained", 0, Offset::Offset(0))
        .unwrap();
    late.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first = None;
    while first.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = late.poll(Duration::from_millis(50)) {
            first = Some(m.offset());
        }
    }
    let first = first.expect("the late consumer was reset and read");
    assert!(
        first >= low,
        "reset to the earliest offset {low}, read from {first}"
    );
}

#[test]
fn delete_records_through_the_admin_client() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "trimmed", 1);
    let (producer, deliveries) = producer(&bootstrap, &[("acks", "all")]);
    for i in 0..1000usize {
        let v = format!("t-{i}");
        send(
            &producer,
            BaseRecord::to("trimmed")
                .partition(0)
                .key(b"k".as_slice())
                .payload(v.as_bytes()),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 1000);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(600))
        .unwrap();
    let result = block_on(admin(&bootstrap).delete_records(&tpl, &AdminOptions::new()))
        .expect("DeleteRecords answered");
    let element = &result.elements()[0];
    assert_eq!(
        element.offset(),
        Offset::Offset(600),
        "the new low watermark"
    );
    assert!(element.error().is_ok());
    let c = consumer(&bootstrap, &[]);
    assert_eq!(
        earliest(&c, "trimmed"),
        600,
        "ListOffsets earliest reflects it at once"
    );
    let records = consume(&c, "trimmed", 1, 400, Duration::from_secs(20));
    assert_eq!(records.len(), 400);
    assert_eq!(records[0].offset, 600);
}
