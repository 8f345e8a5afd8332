//! `message.timestamp.type=LogAppendTime`: the broker stamps each batch with its append
//! time (timestamp-type bit and max timestamp, CRC recomputed), the Produce response
//! reports the stamp, consumers read it as LogAppendTime for every record, and ListOffsets
//! by timestamp finds records by their stamps. A CreateTime topic keeps the producer's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, ProduceRequest};
use kafka_protocol::records::Compression;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use broker::storage::batch::{split_batches, validate_batch};
use broker::storage::batch_builder::build_timed_batch;

use crate::harness::{consumer, flush, producer, send, TestBroker};
use crate::hostile_wire::{text, topic, Wire};
use crate::list_offsets_exact::list_offset;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Creates a one-partition topic with `message.timestamp.type` set to `kind`.
fn create_with_type(wire: &mut Wire, name: &str, kind: &str) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(text("message.timestamp.type"))
                .with_value(Some(text(kind)))])]);
    let resp = wire.call(5, &req).expect("CreateTopics answered");
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
}

fn produce(wire: &mut Wire, name: &str, version: i16, batch: Vec<u8>) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let resp = wire.call(version, &req).expect("Produce answered");
    resp.responses[0].partition_responses[0].clone()
}

fn fetch_all(wire: &mut Wire, name: &str) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = wire.call(11, &req).expect("Fetch answered");
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().expect("records")
}

/// Ten records produced long ago (create time 1_000_000 + i), in one batch.
fn old_batch(compression: Compression) -> Vec<u8> {
    let records: Vec<_> = (0..10)
        .map(|i| ((Some(&b"k"[..]), Some(&b"v"[..])), 1_000_000 + i))
        .collect();
    build_timed_batch(&records, compression)
}

#[test]
fn log_append_time_stamps_batches_and_the_produce_response() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    create_with_type(&mut wire, "stamped", "LogAppendTime");
    create_with_type(&mut wire, "created", "CreateTime");

    let before = now_ms();
    let first = produce(&mut wire, "stamped", 9, old_batch(Compression::None));
    let second = produce(&mut wire, "stamped", 9, old_batch(Compression::Zstd));
    let after = now_ms();
    for r in [&first, &second] {
        assert_eq!(r.error_code, 0);
        assert!(
            (before..=after).contains(&r.log_append_time_ms),
            "the append time {} is the broker's clock, within [{before}, {after}]",
            r.log_append_time_ms
        );
    }
    // The stored batches carry the stamp, the LogAppendTime bit and a valid CRC.
    let records = fetch_all(&mut wire, "stamped");
    let batches = split_batches(&records, usize::MAX).expect("whole batches with valid CRCs");
    assert_eq!(batches.len(), 2);
    for ((header, range), r) in batches.iter().zip([&first, &second]) {
        validate_batch(&records[range.clone()]).expect("the CRC covers the new fields");
        assert_eq!(
            header.attributes & 0x08,
            0x08,
            "timestamp type LogAppendTime"
        );
        assert_eq!(header.max_timestamp, r.log_append_time_ms);
        assert_eq!(
            header.base_timestamp, 1_000_000,
            "record deltas are left alone"
        );
    }
    // ListOffsets by timestamp uses the stamps: every record of a batch has its stamp.
    let p = list_offset(&mut wire, "stamped", 8, first.log_append_time_ms);
    assert_eq!((p.error_code, p.offset), (0, 0));
    assert_eq!(p.timestamp, first.log_append_time_ms);
    let p = list_offset(&mut wire, "stamped", 8, second.log_append_time_ms);
    assert_eq!(
        p.offset,
        if second.log_append_time_ms > first.log_append_time_ms {
            10
        } else {
            0
        }
    );
    let p = list_offset(&mut wire, "stamped", 8, 1_000_005);
    assert_eq!((p.offset, p.timestamp), (0, first.log_append_time_ms));
    let p = list_offset(&mut wire, "stamped", 8, -3);
    let newest = first.log_append_time_ms.max(second.log_append_time_ms);
    let holder = if second.log_append_time_ms > first.log_append_time_ms {
        10
    } else {
        0
    };
    assert_eq!((p.offset, p.timestamp), (holder, newest));

    // A CreateTime topic keeps the producer's timestamps and answers -1.
    let plain = produce(&mut wire, "created", 9, old_batch(Compression::None));
    assert_eq!((plain.error_code, plain.log_append_time_ms), (0, -1));
    let records = fetch_all(&mut wire, "created");
    let header = validate_batch(&records).expect("one batch");
    assert_eq!(header.attributes & 0x08, 0);
    assert_eq!(header.max_timestamp, 1_000_009);
    let p = list_offset(&mut wire, "created", 8, 1_000_005);
    assert_eq!((p.offset, p.timestamp), (5, 1_000_005));
}

fn consume_timestamps(consumer: &BaseConsumer, name: &str, expected: usize) -> Vec<Timestamp> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(name, 0, Offset::Beginning)
        .expect("partition added");
    consumer.assign(&tpl).expect("assigned");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(m)) => out.push(m.timestamp()),
        }
    }
    out
}

#[test]
fn librdkafka_reads_the_brokers_append_time_and_finds_records_by_it() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    create_with_type(&mut wire, "lat-client", "LogAppendTime");
    for codec in ["none", "lz4"] {
        let (producer, _) = producer(
            &broker.bootstrap(),
            &[
                ("compression.type", codec),
                ("acks", "all"),
                ("linger.ms", "5"),
            ],
        );
        for i in 0..20i64 {
            send(
                &producer,
                BaseRecord::to("lat-client")
                    .partition(0)
                    .timestamp(1_000_000 + i)
                    .payload(&b"value"[..]),
            );
        }
        flush(&producer);
    }
    let after = now_ms();
    let consumer = consumer(&broker.bootstrap(), &[]);
    let stamps = consume_timestamps(&consumer, "lat-client", 40);
    assert_eq!(stamps.len(), 40);
    // Generous lower bound: the broker started less than ten minutes ago.
    let floor = after - 600_000;
    for (offset, t) in stamps.iter().enumerate() {
        match t {
            Timestamp::LogAppendTime(ms) => assert!(
                (floor..=after).contains(ms),
                "offset {offset}: {ms} is not the broker's append time"
            ),
            other => panic!("offset {offset}: {other:?} is not LogAppendTime"),
        }
    }
    // offsets_for_times by the producer's create time finds the first record (every stamp
    // is later); by a time after the last stamp, nothing.
    let first = match stamps[0] {
        Timestamp::LogAppendTime(ms) => ms,
        _ => unreachable!(),
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("lat-client", 0, Offset::Offset(1_000_010))
        .expect("partition added");
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times answered");
    assert_eq!(
        found.find_partition("lat-client", 0).expect("p0").offset(),
        Offset::Offset(0)
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("lat-client", 0, Offset::Offset(first))
        .expect("partition added");
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times answered");
    assert_eq!(
        found.find_partition("lat-client", 0).expect("p0").offset(),
        Offset::Offset(0)
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("lat-client", 0, Offset::Offset(after + 1))
        .expect("partition added");
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times answered");
    assert_eq!(
        found.find_partition("lat-client", 0).expect("p0").offset(),
        Offset::End
    );
}

#[test]
fn the_broker_default_log_message_timestamp_type_applies_live_to_topics_without_an_override() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("follows-broker", 1);
    create_with_type(&mut wire, "pinned", "CreateTime");
    let plain = produce(&mut wire, "follows-broker", 9, old_batch(Compression::None));
    assert_eq!((plain.error_code, plain.log_append_time_ms), (0, -1));

    // This broker's dynamic default, changed live (resource name = node id 0).
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(text("0"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(text("log.message.timestamp.type"))
                .with_config_operation(0)
                .with_value(Some(text("LogAppendTime")))]),
    ]);
    let resp = wire
        .call(1, &req)
        .expect("IncrementalAlterConfigs answered");
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0]);

    let before = now_ms();
    let stamped = produce(&mut wire, "follows-broker", 9, old_batch(Compression::Gzip));
    assert_eq!(stamped.error_code, 0);
    assert!(stamped.log_append_time_ms >= before);
    let records = fetch_all(&mut wire, "follows-broker");
    let batches = split_batches(&records, usize::MAX).expect("whole batches");
    assert_eq!(batches.len(), 2);
    assert!(
        !batches[0].0.is_log_append_time(),
        "earlier batches stay as written"
    );
    assert!(batches[1].0.is_log_append_time());
    assert_eq!(batches[1].0.max_timestamp, stamped.log_append_time_ms);
    // A topic override wins over the broker default.
    let pinned = produce(&mut wire, "pinned", 9, old_batch(Compression::None));
    assert_eq!((pinned.error_code, pinned.log_append_time_ms), (0, -1));
}
