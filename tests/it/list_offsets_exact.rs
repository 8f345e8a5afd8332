//! ListOffsets by timestamp answers the exact record, as Kafka 3.8+ does (KAFKA-16310):
//! MAX_TIMESTAMP (-3) is the first record holding the largest timestamp, not the last
//! offset of its batch; a timestamp lookup finds the first record at or after it inside
//! a batch, compressed or not; EARLIEST_LOCAL (-4) and LATEST_TIERED (-5) are answered as
//! on a Kafka broker without tiered storage, and each special timestamp needs the version
//! that introduced it (UNSUPPORTED_VERSION before). Raw frames: the version is chosen here.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::{BrokerId, DeleteRecordsRequest, ListOffsetsRequest};
use kafka_protocol::records::Compression;

use broker::storage::batch_builder::build_timed_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{topic, Wire};

const UNSUPPORTED_VERSION: i16 = 35;

/// Ten records whose largest timestamp (200) is at index 6, the rest ascending.
const OUT_OF_ORDER: [i64; 10] = [100, 101, 102, 103, 104, 105, 200, 106, 107, 108];

fn batch(timestamps: &[i64], compression: Compression) -> Vec<u8> {
    let records: Vec<_> = timestamps
        .iter()
        .map(|ts| ((Some(&b"k"[..]), Some(&b"value"[..])), *ts))
        .collect();
    build_timed_batch(&records, compression)
}

/// The answer for one partition and timestamp at `version`.
pub fn list_offset(
    wire: &mut Wire,
    name: &str,
    version: i16,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let resp = wire
        .call(version, &req)
        .unwrap_or_else(|| panic!("ListOffsets v{version} answered"));
    resp.topics[0].partitions[0].clone()
}

/// (error, offset, timestamp) of one answer.
fn answer(p: &ListOffsetsPartitionResponse) -> (i16, i64, i64) {
    (p.error_code, p.offset, p.timestamp)
}

#[test]
fn max_timestamp_answers_the_record_holding_it_in_every_codec() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    for (i, compression) in [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let name = format!("maxts-{i}");
        wire.create_topic(&name, 1);
        // A batch before it with smaller timestamps, so the record is not the log's first.
        assert_eq!(wire.produce(&name, 0, -1, batch(&[1, 2], compression)), 0);
        assert_eq!(
            wire.produce(&name, 0, -1, batch(&OUT_OF_ORDER, compression)),
            0
        );
        assert_eq!(
            answer(&list_offset(&mut wire, &name, 7, -3)),
            (0, 2 + 6, 200),
            "{compression:?}: the record with the largest timestamp, not the batch's last"
        );
    }
}

#[test]
fn max_timestamp_shared_by_several_records_answers_the_first() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("maxts-tie", 1);
    let timestamps = [5, 9, 300, 7, 300, 8];
    assert_eq!(
        wire.produce("maxts-tie", 0, -1, batch(&timestamps, Compression::Lz4)),
        0
    );
    assert_eq!(
        answer(&list_offset(&mut wire, "maxts-tie", 8, -3)),
        (0, 2, 300)
    );
}

#[test]
fn a_timestamp_lookup_finds_the_exact_record_inside_a_compressed_batch() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    for (i, compression) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("byts-{i}");
        wire.create_topic(&name, 1);
        assert_eq!(
            wire.produce(&name, 0, -1, batch(&OUT_OF_ORDER, compression)),
            0
        );
        // (asked, expected offset, expected timestamp): the first record at or after it.
        for (asked, offset, ts) in [
            (0, 0, 100),
            (100, 0, 100),
            (104, 4, 104),
            (105, 5, 105),
            (106, 6, 200),
            (150, 6, 200),
            (200, 6, 200),
            (201, -1, -1),
        ] {
            assert_eq!(
                answer(&list_offset(&mut wire, &name, 8, asked)),
                (0, offset, ts),
                "{compression:?}: timestamp {asked}"
            );
        }
    }
}

#[test]
fn earliest_local_and_latest_tiered_are_answered_as_without_tiered_storage() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("tiers", 1);
    for _ in 0..3 {
        assert_eq!(
            wire.produce("tiers", 0, -1, batch(&[1, 2, 3], Compression::None)),
            0
        );
    }
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic("tiers"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(3)])]);
    let resp = wire.call(2, &req).expect("DeleteRecords answered");
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);

    // EARLIEST_LOCAL is the log start offset, as EARLIEST is here.
    assert_eq!(answer(&list_offset(&mut wire, "tiers", 8, -4)), (0, 3, -1));
    assert_eq!(answer(&list_offset(&mut wire, "tiers", 9, -4)), (0, 3, -1));
    // LATEST_TIERED: nothing is tiered, so no offset and no timestamp, without an error.
    assert_eq!(answer(&list_offset(&mut wire, "tiers", 9, -5)), (0, -1, -1));
    // Latest is unchanged at v9.
    assert_eq!(answer(&list_offset(&mut wire, "tiers", 9, -1)), (0, 9, -1));
}

#[test]
fn a_special_timestamp_older_than_its_version_is_unsupported_version() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("old-versions", 1);
    assert_eq!(
        wire.produce("old-versions", 0, -1, batch(&[1, 2, 3], Compression::None)),
        0
    );
    // Kafka's minimum versions: MAX_TIMESTAMP 7, EARLIEST_LOCAL 8, LATEST_TIERED 9; any
    // other negative timestamp is unknown at every version.
    for (version, timestamp) in [
        (6, -3),
        (1, -3),
        (7, -4),
        (8, -5),
        (5, -5),
        (9, -6),
        (8, -100),
    ] {
        assert_eq!(
            answer(&list_offset(&mut wire, "old-versions", version, timestamp)),
            (UNSUPPORTED_VERSION, -1, -1),
            "timestamp {timestamp} at v{version}"
        );
    }
    // The versions that have them answer.
    assert_eq!(
        answer(&list_offset(&mut wire, "old-versions", 7, -3)),
        (0, 2, 3)
    );
    assert_eq!(
        answer(&list_offset(&mut wire, "old-versions", 8, -4)),
        (0, 0, -1)
    );
    assert_eq!(
        answer(&list_offset(&mut wire, "old-versions", 1, -1)),
        (0, 3, -1)
    );
    assert_eq!(
        answer(&list_offset(&mut wire, "old-versions", 1, -2)),
        (0, 0, -1)
    );
}
