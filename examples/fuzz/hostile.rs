//! Corpus seeds for the hostile shapes of issue 13: a Fetch that lists one partition 200
//! times with huge or zero limits, Produce with invalid acks and with compression nested
//! in compression, giant config values and giant offset metadata. Mutations of these keep
//! probing the bounds the broker applies before it spends memory.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::corpus::{request_frame, seed_batch};
use crate::fix_crcs;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn name(s: &str) -> TopicName {
    TopicName(text(s))
}

/// One batch compressed with `compression`, holding one record whose value is `value`.
fn compressed(value: Bytes, compression: Compression) -> Vec<u8> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(value),
        headers: Default::default(),
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("batch encodes");
    buf.to_vec()
}

/// A gzip batch whose record is a zstd batch whose record is 1 MiB of zeros: compression
/// nested in compression, expanding a thousandfold.
pub fn nested_batch() -> Vec<u8> {
    let inner = compressed(Bytes::from(vec![0u8; 1 << 20]), Compression::Zstd);
    compressed(Bytes::from(inner), Compression::Gzip)
}

/// The nested batch claiming i32::MAX records (CRC fixed, so the claim is what is checked).
pub fn absurd_count_batch() -> Vec<u8> {
    let mut batch = nested_batch();
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    fix_crcs(&mut batch);
    batch
}

fn produce(acks: i16, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name("fuzz"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])])
}

fn fetch_repeated(max_bytes: i32) -> FetchRequest {
    let partition = fetch_request::FetchPartition::default()
        .with_partition(0)
        .with_partition_max_bytes(2_000_000_000);
    FetchRequest::default()
        .with_max_bytes(max_bytes)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name("fuzz"))
            .with_partitions(vec![partition; 200])])
}

/// Request frames of the hostile shapes, named for the corpus.
pub fn frames() -> Vec<(String, Vec<u8>)> {
    let giant = "0:0,".repeat(5 * 1024); // 20 KiB, past the 16 KiB value bound
    let throttled = "leader.replication.throttled.replicas";
    let frames = vec![
        (
            "produce-acks-2.bin",
            request_frame(ApiKey::Produce, 9, &produce(2, seed_batch())),
        ),
        (
            "produce-acks-minus-5.bin",
            request_frame(ApiKey::Produce, 9, &produce(-5, seed_batch())),
        ),
        (
            "produce-nested-compression.bin",
            request_frame(ApiKey::Produce, 9, &produce(1, nested_batch())),
        ),
        (
            "produce-absurd-count.bin",
            request_frame(ApiKey::Produce, 9, &produce(1, absurd_count_batch())),
        ),
        (
            "alterconfigs-giant-value.bin",
            request_frame(
                ApiKey::AlterConfigs,
                2,
                &AlterConfigsRequest::default().with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(text("fuzz"))
                        .with_configs(vec![alter_configs_request::AlterableConfig::default()
                            .with_name(text(throttled))
                            .with_value(Some(text(&giant)))]),
                ]),
            ),
        ),
        (
            "incrementalalterconfigs-giant-value.bin",
            request_frame(
                ApiKey::IncrementalAlterConfigs,
                1,
                &IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(text("fuzz"))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(text(throttled))
                                .with_config_operation(2)
                                .with_value(Some(text(&giant))),
                        ]),
                ]),
            ),
        ),
        (
            "offsetcommit-giant-metadata.bin",
            request_frame(
                ApiKey::OffsetCommit,
                8,
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(text("fuzz")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(name("fuzz"))
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_committed_offset(1)
                                    .with_committed_metadata(Some(text(&"m".repeat(5000)))),
                            ]),
                    ]),
            ),
        ),
    ];
    let mut frames: Vec<(String, Vec<u8>)> = frames
        .into_iter()
        .map(|(n, b)| (n.to_string(), b))
        .collect();
    for max_bytes in [-1, 0, i32::MAX] {
        frames.push((
            format!("fetch-repeated-max-{max_bytes}.bin"),
            request_frame(ApiKey::Fetch, 11, &fetch_repeated(max_bytes)),
        ));
    }
    frames
}
