//! Produce, CreateTopics, AlterConfigs, IncrementalAlterConfigs, OffsetCommit and
//! TxnOffsetCommit requests a client library would not send: invalid acks, giant config
//! values, oversized offset metadata. Each is refused with Kafka's error code, and nothing
//! of it is stored.

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;

use broker::storage::batch_builder::build_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{text, topic, Wire};

const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_CONFIG: i16 = 40;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

#[test]
fn produce_with_invalid_acks_is_refused_and_appends_nothing() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("acks", 1);
    let batch = build_batch(&[(Some(b"k"), Some(b"v"))], 1_000);
    assert_eq!(wire.produce("acks", 0, 1, batch.clone()), 0);
    for acks in [2, -5, 3, i16::MAX, i16::MIN] {
        assert_eq!(
            wire.produce("acks", 0, acks, batch.clone()),
            INVALID_REQUIRED_ACKS,
            "acks={acks}"
        );
    }
    assert_eq!(wire.latest_offset("acks", 0), 1, "only the acks=1 batch");
}

fn create_with_config(wire: &mut Wire, name: &str, key: &str, value: &str) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(text(key))
                .with_value(Some(text(value)))])]);
    let resp = wire.call(5, &req).expect("CreateTopics answered");
    resp.topics[0].error_code
}

fn topic_exists(wire: &mut Wire, name: &str) -> bool {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(topic(name)))]))
        .with_allow_auto_topic_creation(false);
    let resp = wire.call(9, &req).expect("Metadata answered");
    resp.topics[0].error_code == 0
}

#[test]
fn giant_config_values_are_invalid_config_and_never_stored() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    // Distinct "partition:broker" items, so APPEND (which drops duplicates) keeps them all.
    let giant = (0..20_000)
        .map(|p| format!("{p}:0"))
        .collect::<Vec<_>>()
        .join(",");
    let throttled = "leader.replication.throttled.replicas";
    assert_eq!(
        create_with_config(&mut wire, "giant", throttled, &giant),
        INVALID_CONFIG
    );
    assert!(!topic_exists(&mut wire, "giant"));
    // An ordinary value is still accepted.
    assert_eq!(
        create_with_config(&mut wire, "fine", "cleanup.policy", "compact,delete"),
        0
    );

    // AlterConfigs (SET after dropping the rest) on a topic.
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("fine"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(text(throttled))
            .with_value(Some(text(&giant)))])]);
    let resp = wire.call(2, &req).expect("AlterConfigs answered");
    assert_eq!(resp.responses[0].error_code, INVALID_CONFIG);

    // IncrementalAlterConfigs: SET on a topic, and APPEND growing a list past the bound.
    for (op, value) in [(0i8, giant.as_str()), (2, &giant[..giant.len() / 2])] {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            IncrementalResource::default()
                .with_resource_type(2)
                .with_resource_name(text("fine"))
                .with_configs(vec![IncrementalConfig::default()
                    .with_name(text(throttled))
                    .with_config_operation(op)
                    .with_value(Some(text(value)))]),
        ]);
        let resp = wire
            .call(1, &req)
            .expect("IncrementalAlterConfigs answered");
        assert_eq!(
            resp.responses[0].error_code, INVALID_CONFIG,
            "operation {op}"
        );
    }
    // A broker config (its value would be refused anyway; the length is refused first,
    // without echoing the value back).
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        IncrementalResource::default()
            .with_resource_type(4)
            .with_resource_name(text(""))
            .with_configs(vec![IncrementalConfig::default()
                .with_name(text("log.retention.ms"))
                .with_config_operation(0)
                .with_value(Some(text(&giant)))]),
    ]);
    let resp = wire
        .call(1, &req)
        .expect("IncrementalAlterConfigs answered");
    assert_eq!(resp.responses[0].error_code, INVALID_CONFIG);
    let message = resp.responses[0].error_message.as_deref().unwrap_or("");
    assert!(
        message.len() < 1024,
        "the error echoes {} bytes",
        message.len()
    );

    // Topic names: Kafka's 249 characters.
    let long = "t".repeat(250);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(&long))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let resp = wire.call(5, &req).expect("CreateTopics answered");
    assert_eq!(resp.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
}

fn committed(wire: &mut Wire, group: &str, name: &str, partitions: Vec<i32>) -> Vec<i64> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic(name))
            .with_partition_indexes(partitions)]));
    let resp = wire.call(5, &req).expect("OffsetFetch answered");
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

#[test]
fn offset_metadata_past_4096_bytes_is_refused_per_partition() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("meta", 2);
    let big = "m".repeat(4097);
    let fits = "m".repeat(4096);
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic("meta"))
            .with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)
                    .with_committed_metadata(Some(text(&big))),
                OffsetCommitRequestPartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(7)
                    .with_committed_metadata(Some(text(&fits))),
            ])]);
    let resp = wire.call(5, &req).expect("OffsetCommit answered");
    let codes: Vec<i16> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![OFFSET_METADATA_TOO_LARGE, 0]);
    assert_eq!(committed(&mut wire, "g", "meta", vec![0, 1]), vec![-1, 7]);

    // TxnOffsetCommit: the oversized partition is refused at once, whatever the
    // transaction's state.
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(text("tx")))
        .with_group_id(GroupId(text("g")))
        .with_producer_id(ProducerId(1))
        .with_producer_epoch(0)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic("meta"))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(9)
                .with_committed_metadata(Some(text(&big)))])]);
    let resp = wire.call(2, &req).expect("TxnOffsetCommit answered");
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        OFFSET_METADATA_TOO_LARGE
    );
    // A partition of no topic (here with a 30 KB name) is refused before the group stores
    // it, as Kafka answers it.
    let nowhere = "n".repeat(30_000);
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(text("tx")))
        .with_group_id(GroupId(text("g")))
        .with_producer_id(ProducerId(1))
        .with_producer_epoch(0)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic(&nowhere))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(9)])]);
    let resp = wire.call(2, &req).expect("TxnOffsetCommit answered");
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}
