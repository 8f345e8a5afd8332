//! `compression.type` on a topic or the broker is the codec batches are stored in: a
//! librdkafka producer's batches in another codec are recompressed (Kafka's
//! LogValidator), what a raw Fetch returns shows the stored codec, and consumers read
//! back the same records. Producer id, epoch, sequence and the transactional bit are
//! kept, so a retried idempotent batch is still deduplicated.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest,
};
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use broker::storage::batch::BatchHeader;
use broker::storage::batch_builder::{build_compressed_batch, set_producer};

use crate::harness::*;
use crate::hostile_wire::{text, topic, Wire};

const TIMEOUT: Duration = Duration::from_secs(30);
const RECORDS: usize = 200;

const GZIP: u8 = 1;
const SNAPPY: u8 = 2;
const LZ4: u8 = 3;
const ZSTD: u8 = 4;

fn create_topic_with(wire: &mut Wire, name: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(text(k))
                .with_value(Some(text(v)))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs)]);
    let resp = wire.call(5, &req).expect("CreateTopics answered");
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
}

/// The headers of every batch of partition 0 of `name`, as a raw Fetch (read_uncommitted)
/// returns them.
fn stored_batches(wire: &mut Wire, name: &str) -> Vec<BatchHeader> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(64 << 20)])]);
    let resp = wire.call(11, &req).expect("Fetch answered");
    let partition = &resp.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let records: Bytes = partition.records.clone().unwrap_or_default();
    let mut rest = &records[..];
    let mut out = Vec::new();
    while let Ok(header) = BatchHeader::parse(rest) {
        if header.total_size() > rest.len() {
            break;
        }
        rest = &rest[header.total_size()..];
        out.push(header);
    }
    assert!(!out.is_empty(), "{name}: nothing fetched");
    out
}

/// One expected record: key, value, headers, timestamp.
type Sent = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i64,
);

/// RECORDS JSON-like records with keys, null values, headers and explicit timestamps,
/// produced by librdkafka with `codec` and `extra` settings.
fn produce_records(bootstrap: &str, name: &str, codec: &str, extra: &[(&str, &str)]) -> Vec<Sent> {
    let mut settings = vec![
        ("compression.type", codec),
        ("acks", "all"),
        // Every record in one batch, sent by the flush below: a batch sent early under load
        // can hold one record, which librdkafka ships uncompressed when its codec would not
        // make it smaller, and the "producer" case would then store no codec.
        ("linger.ms", "5000"),
    ];
    settings.extend_from_slice(extra);
    let (producer, deliveries) = producer(bootstrap, &settings);
    let transactional = extra.iter().any(|(k, _)| *k == "transactional.id");
    if transactional {
        producer
            .init_transactions(TIMEOUT)
            .expect("init_transactions");
        producer.begin_transaction().expect("begin");
    }
    let mut sent = Vec::new();
    for i in 0..RECORDS {
        let key = (i % 5 != 0).then(|| format!("key-{i}").into_bytes());
        let value = (i % 7 != 0).then(|| {
            format!(
                "{{\"id\":{i},\"user\":\"user-{}\",\"pad\":\"{}\"}}",
                i % 13,
                "z".repeat(i)
            )
            .into_bytes()
        });
        let headers = vec![
            ("trace".to_string(), Some(format!("{i}").into_bytes())),
            ("null".to_string(), None),
        ];
        let timestamp = 1_600_000_000_000 + i as i64 * 1000;
        let mut owned = OwnedHeaders::new();
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(name)
            .partition(0)
            .timestamp(timestamp)
            .headers(owned);
        if let Some(k) = &key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &value {
            record = record.payload(v.as_slice());
        }
        send(&producer, record);
        sent.push((key, value, headers, timestamp));
    }
    if transactional {
        producer.commit_transaction(TIMEOUT).expect("commit");
    }
    flush(&producer);
    assert_eq!(
        deliveries.ok.load(Ordering::SeqCst),
        RECORDS,
        "{name}: {:?}",
        deliveries.first_error.lock().unwrap()
    );
    sent
}

/// A consumer reads back exactly what was sent, field by field.
fn assert_read_back(bootstrap: &str, name: &str, sent: &[Sent], extra: &[(&str, &str)]) {
    let consumer = consumer(bootstrap, extra);
    let got = consume(&consumer, name, 1, sent.len(), TIMEOUT);
    assert_eq!(got.len(), sent.len(), "{name}");
    for (i, (record, (key, value, headers, timestamp))) in got.iter().zip(sent).enumerate() {
        assert_eq!(&record.key, key, "{name} record {i} key");
        assert_eq!(&record.payload, value, "{name} record {i} value");
        assert_eq!(&record.headers, headers, "{name} record {i} headers");
        assert_eq!(
            record.timestamp,
            Some(*timestamp),
            "{name} record {i} timestamp"
        );
    }
}

#[test]
fn topic_compression_type_is_the_codec_batches_are_stored_in() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    let mut wire = Wire::connect(broker.port());
    // (producer's codec, topic's compression.type, the codec stored)
    let cases = [
        ("gzip", "zstd", ZSTD),
        ("lz4", "uncompressed", 0),
        ("none", "snappy", SNAPPY),
        ("zstd", "gzip", GZIP),
        ("snappy", "lz4", LZ4),
        ("gzip", "producer", GZIP),
    ];
    for (from, to, stored) in cases {
        let name = format!("{from}-to-{to}");
        create_topic_with(&mut wire, &name, &[("compression.type", to)]);
        let sent = produce_records(&bootstrap, &name, from, &[]);
        for batch in stored_batches(&mut wire, &name) {
            assert_eq!(batch.compression(), stored, "{name}: {batch:?}");
        }
        assert_read_back(&bootstrap, &name, &sent, &[]);
    }
}

#[test]
fn broker_compression_type_applies_to_topics_without_an_override() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    let mut wire = Wire::connect(broker.port());
    create_topic_with(&mut wire, "created-before", &[]);
    create_topic_with(
        &mut wire,
        "keeps-producer",
        &[("compression.type", "producer")],
    );
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4) // BROKER
            .with_resource_name(text("0"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(text("compression.type"))
                .with_config_operation(0) // SET
                .with_value(Some(text("gzip")))]),
    ]);
    let resp = wire
        .call(1, &req)
        .expect("IncrementalAlterConfigs answered");
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0]);
    create_topic_with(&mut wire, "created-after", &[]);
    for (name, stored) in [
        ("created-before", GZIP),
        ("created-after", GZIP),
        ("keeps-producer", LZ4),
    ] {
        let sent = produce_records(&bootstrap, name, "lz4", &[]);
        for batch in stored_batches(&mut wire, name) {
            assert_eq!(batch.compression(), stored, "{name}: {batch:?}");
        }
        assert_read_back(&bootstrap, name, &sent, &[]);
    }
}

#[test]
fn a_retried_idempotent_batch_is_deduplicated_after_recompression() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    create_topic_with(&mut wire, "idempotent", &[("compression.type", "zstd")]);
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let init = wire.call(1, &init).expect("InitProducerId answered");
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let batch = |sequence: i32| {
        let mut b = build_compressed_batch(
            &[
                (Some(b"k1"), Some(b"v1")),
                (Some(b"k2"), Some(b"v2")),
                (None, Some(b"v3")),
            ],
            1_000,
            Compression::Gzip,
        );
        set_producer(&mut b, pid, epoch, sequence);
        b
    };
    let first = wire.produce_answer("idempotent", 0, -1, batch(0));
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    // The retry (same producer, epoch and sequence) is answered with the first offsets and
    // not written again.
    let retry = wire.produce_answer("idempotent", 0, -1, batch(0));
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    let next = wire.produce_answer("idempotent", 0, -1, batch(3));
    assert_eq!((next.error_code, next.base_offset), (0, 3));
    let gap = wire.produce_answer("idempotent", 0, -1, batch(10));
    assert_eq!(
        gap.error_code,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(wire.latest_offset("idempotent", 0), 6);
    let stored = stored_batches(&mut wire, "idempotent");
    let seen: Vec<_> = stored
        .iter()
        .map(|h| {
            (
                h.compression(),
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.base_offset,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![(ZSTD, pid, epoch, 0, 0), (ZSTD, pid, epoch, 3, 3)]
    );
}

#[test]
fn a_transactional_batch_keeps_its_transactional_bit_when_recompressed() {
    let broker = TestBroker::start("");
    let bootstrap = broker.bootstrap();
    let mut wire = Wire::connect(broker.port());
    create_topic_with(&mut wire, "txn-zstd", &[("compression.type", "zstd")]);
    let sent = produce_records(
        &bootstrap,
        "txn-zstd",
        "gzip",
        &[
            ("transactional.id", "recompressed-txn"),
            ("transaction.timeout.ms", "60000"),
        ],
    );
    let stored = stored_batches(&mut wire, "txn-zstd");
    let (markers, data): (Vec<&BatchHeader>, Vec<&BatchHeader>) =
        stored.iter().partition(|h| h.is_control());
    assert!(!data.is_empty() && !markers.is_empty(), "{stored:?}");
    for h in data {
        assert!(h.is_transactional(), "{h:?}");
        assert_eq!(h.compression(), ZSTD, "{h:?}");
        assert!(h.producer_id >= 0 && h.base_sequence >= 0, "{h:?}");
    }
    // The commit marker is a control batch, never recompressed.
    for h in markers {
        assert_eq!(h.compression(), 0, "{h:?}");
        assert!(h.is_transactional(), "{h:?}");
    }
    assert_read_back(
        &bootstrap,
        "txn-zstd",
        &sent,
        &[("isolation.level", "read_committed")],
    );
}

#[test]
fn recompression_is_bounded_by_max_message_bytes_and_the_decompression_limit() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    create_topic_with(
        &mut wire,
        "small-uncompressed",
        &[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "100000"),
        ],
    );
    // 300 KB of zeros is a few hundred bytes in zstd, within max.message.bytes as sent,
    // but three times past it once stored uncompressed: Kafka's RecordTooLargeException.
    let zeros = vec![0u8; 300_000];
    let batch = build_compressed_batch(&[(Some(b"k"), Some(&zeros))], 1_000, Compression::Zstd);
    assert!(batch.len() < 100_000);
    let code = wire.produce("small-uncompressed", 0, -1, batch);
    assert_eq!(code, ResponseError::MessageTooLarge.code());
    let fits = build_compressed_batch(
        &[(Some(b"k"), Some(&zeros[..50_000]))],
        1_000,
        Compression::Zstd,
    );
    assert_eq!(wire.produce("small-uncompressed", 0, -1, fits), 0);
    let stored = stored_batches(&mut wire, "small-uncompressed");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].compression(), 0);

    // A decompression bomb to a recompressing topic: 256 MiB of zeros, past 64 times
    // max.message.bytes (64 MiB), is refused, and the broker never holds it.
    create_topic_with(&mut wire, "bombed-gzip", &[("compression.type", "gzip")]);
    let bomb = crate::client_hostile_records::zstd_bomb(256 << 20);
    assert!(bomb.len() < 1_000_000, "the bomb fits max.message.bytes");
    let code = wire.produce("bombed-gzip", 0, -1, bomb);
    assert_eq!(code, ResponseError::InvalidRecord.code());
    assert_eq!(wire.produce("bombed-gzip", 0, -1, batch_of_one()), 0);
    let peak_mib = broker.peak_rss_kib() / 1024;
    assert!(peak_mib < 128, "broker peak RSS {peak_mib} MiB");
}

fn batch_of_one() -> Vec<u8> {
    build_compressed_batch(&[(Some(b"key"), Some(b"value"))], 1_000, Compression::Lz4)
}
