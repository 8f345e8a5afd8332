//! zstd needs Produce v7 and Fetch v10 (Kafka 2.1+, KIP-110): an older Produce carrying a
//! zstd batch and an older Fetch that would return one get UNSUPPORTED_COMPRESSION_TYPE
//! for that partition, so a client that cannot decode zstd gets an error, not bytes.
//! Raw frames: librdkafka picks the versions itself.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use kafka_protocol::records::Compression;

use broker::storage::batch::split_batches;
use broker::storage::batch_builder::build_compressed_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{topic, Wire};

const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;

fn batch(compression: Compression) -> Vec<u8> {
    build_compressed_batch(
        &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))],
        1_000,
        compression,
    )
}

/// Produces `batch` to partition 0 of `name` at `version`; the partition's error code.
fn produce_at(wire: &mut Wire, name: &str, version: i16, batch: Vec<u8>) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let resp = wire.call(version, &req).expect("Produce answered");
    resp.responses[0].partition_responses[0].error_code
}

/// Fetches partition 0 of `name` from offset 0 at `version`: (error, batches returned).
fn fetch_at(wire: &mut Wire, name: &str, version: i16) -> (i16, usize) {
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
    let resp = wire.call(version, &req).expect("Fetch answered");
    let p = &resp.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    let batches = if records.is_empty() {
        0
    } else {
        split_batches(&records, usize::MAX)
            .expect("whole batches")
            .len()
    };
    (p.error_code, batches)
}

#[test]
fn a_produce_below_v7_with_a_zstd_batch_is_unsupported_compression_type() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("zp", 1);
    for version in [3, 5, 6] {
        assert_eq!(
            produce_at(&mut wire, "zp", version, batch(Compression::Zstd)),
            UNSUPPORTED_COMPRESSION_TYPE,
            "Produce v{version}"
        );
        // Other codecs stay fine at the same version.
        assert_eq!(
            produce_at(&mut wire, "zp", version, batch(Compression::Gzip)),
            0
        );
    }
    for version in [7, 9] {
        assert_eq!(
            produce_at(&mut wire, "zp", version, batch(Compression::Zstd)),
            0
        );
    }
    // Nothing refused was written: three gzip batches, then two zstd ones.
    assert_eq!(wire.latest_offset("zp", 0), 5 * 2);
}

#[test]
fn a_fetch_below_v10_that_would_return_zstd_is_unsupported_compression_type() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("zf", 1);
    wire.create_topic("gf", 1);
    assert_eq!(produce_at(&mut wire, "zf", 9, batch(Compression::Gzip)), 0);
    assert_eq!(produce_at(&mut wire, "zf", 9, batch(Compression::Zstd)), 0);
    assert_eq!(produce_at(&mut wire, "gf", 9, batch(Compression::Gzip)), 0);
    for version in [4, 9] {
        assert_eq!(
            fetch_at(&mut wire, "zf", version),
            (UNSUPPORTED_COMPRESSION_TYPE, 0),
            "Fetch v{version}: an error and no records"
        );
        assert_eq!(
            fetch_at(&mut wire, "gf", version),
            (0, 1),
            "Fetch v{version}"
        );
    }
    for version in [10, 12] {
        assert_eq!(
            fetch_at(&mut wire, "zf", version),
            (0, 2),
            "Fetch v{version}"
        );
    }
}
