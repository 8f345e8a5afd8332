//! The seed corpus: `cargo run --example fuzz -- --write-corpus` writes these files under
//! `fuzz/corpus/<target>/`.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use broker::protocol::versions;
use broker::storage::batch_builder::build_batch;

use crate::{hostile, sasl};

pub fn request_frame<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// The batch most frame seeds carry.
pub fn seed_batch() -> Vec<u8> {
    build_batch(&[(Some(b"k"), Some(b"v")), (None, None)], 1_700_000_000_000)
}

pub fn write_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let name = |s: &str| TopicName(StrBytes::from_string(s.into()));
    let batch = Bytes::from(seed_batch());
    let mut frames: Vec<(String, Vec<u8>)> = hostile::frames();
    for (api, min, max) in versions::SUPPORTED {
        for v in [*min, *max] {
            let bytes = match api {
                ApiKey::Metadata => request_frame(
                    *api,
                    v,
                    &MetadataRequest::default()
                        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                        )
                        .with_name(Some(name("fuzz")))])),
                ),
                ApiKey::Produce => request_frame(
                    *api,
                    v,
                    &ProduceRequest::default()
                        .with_acks(1)
                        .with_timeout_ms(1000)
                        .with_topic_data(vec![produce_request::TopicProduceData::default()
                            .with_name(name("fuzz"))
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(0)
                                    .with_records(Some(batch.clone())),
                            ])]),
                ),
                ApiKey::Fetch => request_frame(
                    *api,
                    v,
                    &FetchRequest::default()
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![fetch_request::FetchTopic::default()
                            .with_topic(if v < 13 {
                                name("fuzz")
                            } else {
                                TopicName::default()
                            })
                            .with_partitions(vec![fetch_request::FetchPartition::default()
                                .with_partition_max_bytes(1 << 20)])]),
                ),
                ApiKey::ListOffsets => request_frame(
                    *api,
                    v,
                    &ListOffsetsRequest::default().with_topics(vec![
                        list_offsets_request::ListOffsetsTopic::default()
                            .with_name(name("fuzz"))
                            .with_partitions(vec![
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_timestamp(-1),
                            ]),
                    ]),
                ),
                ApiKey::ApiVersions => request_frame(*api, v, &ApiVersionsRequest::default()),
                ApiKey::DescribeConfigs => request_frame(
                    *api,
                    v,
                    &DescribeConfigsRequest::default().with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("fuzz")),
                    ]),
                ),
                ApiKey::CreateTopics => request_frame(
                    *api,
                    v,
                    &CreateTopicsRequest::default().with_topics(vec![
                        create_topics_request::CreatableTopic::default()
                            .with_name(name("fuzz"))
                            .with_num_partitions(1)
                            .with_replication_factor(1),
                    ]),
                ),
                ApiKey::DeleteTopics if v < 6 => request_frame(
                    *api,
                    v,
                    &DeleteTopicsRequest::default().with_topic_names(vec![name("fuzz")]),
                ),
                ApiKey::DeleteTopics => request_frame(
                    *api,
                    v,
                    &DeleteTopicsRequest::default()
                        .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(name("fuzz")))]),
                ),
                ApiKey::InitProducerId => request_frame(
                    *api,
                    v,
                    &InitProducerIdRequest::default()
                        .with_transactional_id(None)
                        .with_transaction_timeout_ms(60_000),
                ),
                ApiKey::CreatePartitions => request_frame(
                    *api,
                    v,
                    &CreatePartitionsRequest::default().with_topics(vec![
                        create_partitions_request::CreatePartitionsTopic::default()
                            .with_name(name("fuzz"))
                            .with_count(2),
                    ]),
                ),
                _ => continue,
            };
            frames.push((format!("{api:?}-v{v}.bin").to_lowercase(), bytes));
        }
    }
    let write = |dir: &str, files: Vec<(String, Vec<u8>)>| {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    // The SASL target sends the smaller of them before, during and after an exchange.
    let others: Vec<_> = frames
        .iter()
        .filter(|(name, f)| f.len() <= 4096 && !name.starts_with("apiversions"))
        .cloned()
        .collect();
    write("sasl", sasl::seeds(&others));
    write("frame", frames);
    let b1 = build_batch(&[(Some(b"key"), Some(b"value"))], 1000);
    let b3 = build_batch(
        &[
            (None, Some(b"a")),
            (Some(b"k"), None),
            (None, Some(&[7u8; 300])),
        ],
        2000,
    );
    let mut two = b1.clone();
    two.extend_from_slice(&b3);
    write(
        "batch",
        vec![
            ("one.bin".into(), b1.clone()),
            ("three-records.bin".into(), b3.clone()),
            ("two-batches.bin".into(), two),
            ("nested-compression.bin".into(), hostile::nested_batch()),
            ("absurd-count.bin".into(), hostile::absurd_count_batch()),
        ],
    );
    // Segments as the log writes them: base offsets assigned in order.
    let mut segment = Vec::new();
    let mut offset = 0i64;
    for b in [&b1, &b3, &b1] {
        let mut b = b.clone();
        b[..8].copy_from_slice(&offset.to_be_bytes());
        offset += broker::storage::batch::BatchHeader::parse(&b)
            .unwrap()
            .next_offset();
        segment.extend_from_slice(&b);
    }
    let torn = segment[..segment.len() - 5].to_vec();
    write(
        "recovery",
        vec![
            ("segment.bin".into(), segment),
            ("torn-segment.bin".into(), torn),
            ("empty.bin".into(), Vec::new()),
        ],
    );
    println!("corpus written under {}", root.display());
}
