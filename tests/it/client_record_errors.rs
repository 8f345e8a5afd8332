//! Per-record produce errors (KIP-467) and the CreateTime window (KIP-937) against a real
//! broker process: librdkafka fails only the refused records of a batch, and the rest
//! with its "invalid different record" error, as its test 0011
//! (`test_message_single_partition_record_fail`) expects; the Produce response names each
//! refused record (raw frames); records outside `message.timestamp.before.max.ms` /
//! `after.max.ms` (topic or broker level) get INVALID_TIMESTAMP.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use broker::storage::batch_builder::{build_batch, KeyValue};

use crate::client_hostile_records::request;
use crate::harness::TestBroker;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn create_topic_with(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin(bootstrap).create_topics(&[topic], &AdminOptions::new()))
        .expect("create_topics answered");
    for r in results {
        r.expect("topic created");
    }
}

/// A broker with one compacted topic `name`.
fn with_compacted_topic(name: &str) -> TestBroker {
    let broker = TestBroker::start("");
    create_topic_with(&broker.bootstrap(), name, &[("cleanup.policy", "compact")]);
    broker
}

fn connect(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Each delivery report: whether the record had a key, and its outcome.
#[derive(Default)]
struct Reports(Mutex<Vec<(bool, Result<(), RDKafkaErrorCode>)>>);

struct Recording(Arc<Reports>);

impl ClientContext for Recording {}

impl ProducerContext for Recording {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let report = match result {
            Ok(m) => (m.key().is_some(), Ok(())),
            Err((e, m)) => {
                let code = match e {
                    KafkaError::MessageProduction(code) => *code,
                    other => panic!("unexpected delivery error {other}"),
                };
                (m.key().is_some(), Err(code))
            }
        };
        self.0 .0.lock().unwrap().push(report);
    }
}

/// A producer that puts everything sent within a second into one batch per partition.
fn batching_producer(bootstrap: &str) -> (BaseProducer<Recording>, Arc<Reports>) {
    let reports = Arc::new(Reports::default());
    let producer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1000")
        .set("batch.num.messages", "10000")
        .set("message.timeout.ms", "30000")
        .create_with_context(Recording(reports.clone()))
        .expect("producer");
    (producer, reports)
}

/// Sends `records` (key, timestamp) to partition 0 of `topic` and waits for every report.
fn produce_all(
    bootstrap: &str,
    topic: &str,
    records: &[(Option<String>, Option<i64>)],
) -> Vec<(bool, Result<(), RDKafkaErrorCode>)> {
    let (producer, reports) = batching_producer(bootstrap);
    for (i, (key, timestamp)) in records.iter().enumerate() {
        let value = format!("value-{i}");
        let mut record = BaseRecord::<str, str>::to(topic)
            .partition(0)
            .payload(&value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(ts) = timestamp {
            record = record.timestamp(*ts);
        }
        producer.send(record).map_err(|(e, _)| e).expect("queued");
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every record reported within 60 s");
    let reports = reports.0.lock().unwrap().clone();
    assert_eq!(reports.len(), records.len());
    reports
}

fn count(
    reports: &[(bool, Result<(), RDKafkaErrorCode>)],
    outcome: Result<(), RDKafkaErrorCode>,
) -> usize {
    reports.iter().filter(|(_, r)| *r == outcome).count()
}

#[test]
fn librdkafka_fails_only_the_keyless_records_of_a_batch_to_a_compacted_topic() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic_with(&bootstrap, "compacted", &[("cleanup.policy", "compact")]);
    // 100 records in one batch, every tenth without a key (as librdkafka's test 0011).
    let records: Vec<_> = (0..100)
        .map(|i| ((i % 10 != 0).then(|| format!("key-{i}")), None))
        .collect();
    let reports = produce_all(&bootstrap, "compacted", &records);
    let invalid = count(&reports, Err(RDKafkaErrorCode::InvalidRecord));
    let different = count(&reports, Err(RDKafkaErrorCode::InvalidDifferentRecord));
    assert_eq!(
        (invalid, different),
        (10, 90),
        "10 refused records and 90 failed with them: {reports:?}"
    );
    // Exactly the keyless ones are the refused ones.
    for (keyed, outcome) in &reports {
        assert_eq!(
            *outcome == Err(RDKafkaErrorCode::InvalidRecord),
            !keyed,
            "{reports:?}"
        );
    }
    // A batch of keyed records still goes in.
    let keyed: Vec<_> = (0..10).map(|i| (Some(format!("k{i}")), None)).collect();
    let reports = produce_all(&bootstrap, "compacted", &keyed);
    assert_eq!(count(&reports, Ok(())), 10, "{reports:?}");
}

/// One Produce (acks=1) of `batch` to partition 0 of `topic` at `version`.
fn produce_raw(port: u16, version: i16, topic: &str, batch: Vec<u8>) -> PartitionProduceResponse {
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let mut socket = connect(port);
    let response: ProduceResponse = request(&mut socket, ApiKey::Produce, version, 1, &produce);
    response.responses[0].partition_responses[0].clone()
}

#[test]
fn the_produce_response_names_each_refused_record() {
    let broker = with_compacted_topic("keys");
    let batch = || {
        build_batch(
            &[
                (None, Some(b"a")),
                (Some(b"k"), Some(b"b")),
                (None, Some(b"c")),
                (Some(b"k"), Some(b"d")),
            ],
            now_ms(),
        )
    };
    for version in [8, 9, 12] {
        let p = produce_raw(broker.port(), version, "keys", batch());
        assert_eq!(
            p.error_code,
            ResponseError::InvalidRecord.code(),
            "v{version}"
        );
        let listed: Vec<(i32, String)> = p
            .record_errors
            .iter()
            .map(|e| {
                let message = e.batch_index_error_message.as_deref().unwrap_or_default();
                (e.batch_index, message.to_string())
            })
            .collect();
        let message =
            "Compacted topic cannot accept message without key in topic partition keys-0.";
        assert_eq!(
            listed,
            vec![(0, message.to_string()), (2, message.to_string())],
            "v{version}"
        );
        let summary = p.error_message.as_deref().unwrap_or_default().to_string();
        assert!(
            summary.starts_with("One or more records have been rejected due to 2 record errors"),
            "v{version}: {summary}"
        );
    }
    // Before v8 the fields do not exist: the error code alone.
    let p = produce_raw(broker.port(), 7, "keys", batch());
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    assert!(p.record_errors.is_empty() && p.error_message.is_none());
    // Nothing of the refused batches was written.
    let ok = build_batch(&[(Some(b"k"), Some(b"v"))], now_ms());
    let p = produce_raw(broker.port(), 9, "keys", ok);
    assert_eq!((p.error_code, p.base_offset), (0, 0));
}

const HOUR_MS: i64 = 3_600_000;

#[test]
fn records_outside_the_timestamp_window_get_invalid_timestamp() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic_with(
        &bootstrap,
        "recent",
        &[("message.timestamp.before.max.ms", "3600000")],
    );
    create_topic_with(
        &bootstrap,
        "not-ahead",
        &[("message.timestamp.after.max.ms", "3600000")],
    );
    let now = now_ms();
    let timed = |ts: i64| vec![(Some("k".to_string()), Some(ts))];
    let outcome = |topic: &str, ts: i64| produce_all(&bootstrap, topic, &timed(ts))[0].1;
    let invalid = Err(RDKafkaErrorCode::InvalidTimestamp);
    assert_eq!(outcome("recent", now - 2 * HOUR_MS), invalid);
    assert_eq!(outcome("recent", now), Ok(()));
    assert_eq!(
        outcome("recent", now + 100 * HOUR_MS),
        Ok(()),
        "no after limit"
    );
    assert_eq!(outcome("not-ahead", now + 2 * HOUR_MS), invalid);
    assert_eq!(outcome("not-ahead", now), Ok(()));
    assert_eq!(
        outcome("not-ahead", now - 100 * HOUR_MS),
        Ok(()),
        "no before limit"
    );

    // In a batch, only the old records are named and the others fail with them.
    // librdkafka reports a named record as INVALID_RECORD when more than one is named
    // (with one, it gives every record of the batch the partition's error).
    let records: Vec<_> = [now, now - 2 * HOUR_MS, now, now - 3 * HOUR_MS]
        .into_iter()
        .map(|ts| (Some("k".to_string()), Some(ts)))
        .collect();
    let reports = produce_all(&bootstrap, "recent", &records);
    let outcomes: Vec<_> = reports.iter().map(|(_, r)| *r).collect();
    let different = Err(RDKafkaErrorCode::InvalidDifferentRecord);
    let named = Err(RDKafkaErrorCode::InvalidRecord);
    assert_eq!(outcomes, vec![different, named, different, named]);

    // Raw frames: INVALID_TIMESTAMP with the record named as Kafka's LogValidator names it.
    let old = build_batch(&[(Some(b"k"), Some(b"v"))], now - 2 * HOUR_MS);
    let p = produce_raw(broker.port(), 9, "recent", old);
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 0);
    let message = p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "Timestamp {} of message with offset 0 is out of range.",
            now - 2 * HOUR_MS
        )),
        "{message}"
    );
    assert_eq!(
        p.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
}

#[test]
fn the_window_is_not_applied_to_log_append_time_topics() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic_with(
        &bootstrap,
        "appended",
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.before.max.ms", "3600000"),
        ],
    );
    let old = vec![(Some("k".to_string()), Some(now_ms() - 2 * HOUR_MS))];
    assert_eq!(produce_all(&bootstrap, "appended", &old)[0].1, Ok(()));
}

#[test]
fn the_broker_level_window_applies_to_topics_without_their_own() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    create_topic_with(&bootstrap, "plain", &[]);
    let outcome = |ts: i64| {
        let record = vec![(Some("k".to_string()), Some(ts))];
        produce_all(&bootstrap, "plain", &record)[0].1
    };
    assert_eq!(outcome(now_ms() - 2 * HOUR_MS), Ok(()));
    assert_eq!(outcome(now_ms() + 2 * HOUR_MS), Ok(()));

    // The cluster-wide dynamic default (broker resource ""), as kafka-configs.sh
    // --entity-type brokers --entity-default sets it.
    let set = |name: &'static str| {
        IncrementalConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_config_operation(0) // SET
            .with_value(Some(StrBytes::from_static_str("3600000")))
    };
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        IncrementalResource::default()
            .with_resource_type(4) // BROKER
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![
                set("log.message.timestamp.before.max.ms"),
                set("log.message.timestamp.after.max.ms"),
            ]),
    ]);
    let mut socket = connect(broker.port());
    let answer: IncrementalAlterConfigsResponse =
        request(&mut socket, ApiKey::IncrementalAlterConfigs, 1, 1, &alter);
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
    // The metadata actor sends the partition its new config before it answers.
    let invalid = Err(RDKafkaErrorCode::InvalidTimestamp);
    assert_eq!(outcome(now_ms() - 2 * HOUR_MS), invalid, "before.max.ms");
    assert_eq!(outcome(now_ms() + 2 * HOUR_MS), invalid, "after.max.ms");
    assert_eq!(outcome(now_ms()), Ok(()));
}

#[test]
fn record_errors_are_capped_per_batch_and_per_response() {
    let broker = with_compacted_topic("capped");
    // 1,005 keyless records per batch, the partition listed 11 times in one request.
    let keyless: Vec<KeyValue<'_>> = (0..1005).map(|_| (None, None)).collect();
    let entries: Vec<PartitionProduceData> = (0..11)
        .map(|_| {
            PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(build_batch(&keyless, now_ms()))))
        })
        .collect();
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("capped")))
            .with_partition_data(entries)]);
    let mut socket = connect(broker.port());
    let response: ProduceResponse = request(&mut socket, ApiKey::Produce, 9, 1, &produce);
    let listed: Vec<usize> = response.responses[0]
        .partition_responses
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
            let summary = p.error_message.as_deref().unwrap_or_default();
            assert!(summary.contains("due to 1005 record errors"), "{summary}");
            p.record_errors.len()
        })
        .collect();
    // 1,000 per batch, and 10,000 in the whole response.
    let mut expected = vec![1000; 10];
    expected.push(0);
    assert_eq!(listed, expected);
}
