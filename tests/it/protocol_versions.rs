//! Every version the broker advertises, for every API: the request is served through the
//! real dispatch, the response encodes at that version, decodes back with the client side
//! of the codec, and says what it should. A field set where a version cannot carry it (the
//! ListOffsets v2 leader epoch that hung kcat) fails here.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::protocol::{dispatch, frame, versions, BrokerContext};
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;

pub(crate) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub(crate) async fn serve(
    ctx: &BrokerContext,
    api: ApiKey,
    version: i16,
    request: RequestKind,
) -> ResponseKind {
    let prepared = dispatch::prepare(ctx, version, request, &Default::default())
        .await
        .unwrap_or_else(|| panic!("{api:?} v{version} is served"));
    let response = prepared.response.await;
    let encoded = frame::encode_response(api, version, 77, &response)
        .unwrap_or_else(|e| panic!("{api:?} v{version} encodes: {e}"));
    let mut body: Bytes = encoded.slice(4..);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 77);
    let decoded = ResponseKind::decode(api, &mut body, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version} decodes: {e}"));
    assert!(body.is_empty(), "{api:?} v{version}: trailing bytes");
    decoded
}

pub(crate) fn range(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = versions::range(api).expect("advertised");
    min..=max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers_and_encodes() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        group_initial_rebalance_delay_ms: 0,
        ..Config::default()
    };
    let broker = Broker::start(config.clone(), Arc::new(SimStorage::new()))
        .await
        .expect("broker starts");
    let ctx = broker.context();

    // ApiVersions.
    for v in range(ApiKey::ApiVersions) {
        let ResponseKind::ApiVersions(r) = serve(
            &ctx,
            ApiKey::ApiVersions,
            v,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, 0);
        assert_eq!(r.api_keys.len(), versions::SUPPORTED.len());
    }

    // CreateTopics: one topic per version.
    for v in range(ApiKey::CreateTopics) {
        let topic = CreatableTopic::default()
            .with_name(name(&format!("ct-{v}")))
            .with_num_partitions(2)
            .with_replication_factor(1);
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(5000);
        let ResponseKind::CreateTopics(r) = serve(
            &ctx,
            ApiKey::CreateTopics,
            v,
            RequestKind::CreateTopics(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }

    // Produce at every version into ct-2 partition 0; offsets follow on. v13 names the
    // topic by id (KIP-516): the response carries the id, and an unknown id is
    // UNKNOWN_TOPIC_ID (100).
    let ct2 = broker.routing.borrow().topic("ct-2").unwrap().id;
    let mut produced = 0i64;
    for v in range(ApiKey::Produce) {
        let batch = Bytes::from(build_batch(
            &[(Some(b"k"), Some(b"v")), (None, Some(b"w"))],
            1_000,
        ));
        let data = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch));
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("ct-2"))
                .with_topic_id(ct2)
                .with_partition_data(vec![data.clone()])]);
        let ResponseKind::Produce(r) =
            serve(&ctx, ApiKey::Produce, v, RequestKind::Produce(req)).await
        else {
            unreachable!()
        };
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, produced), "Produce v{v}");
        produced += 2;
        if v >= 13 {
            assert_eq!(r.responses[0].topic_id, ct2);
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_topic_id(uuid::Uuid::from_u128(7))
                    .with_partition_data(vec![data])]);
            let ResponseKind::Produce(r) =
                serve(&ctx, ApiKey::Produce, v, RequestKind::Produce(req)).await
            else {
                unreachable!()
            };
            assert_eq!(r.responses[0].partition_responses[0].error_code, 100);
        }
    }

    // Metadata, by name (and all topics).
    let id = broker.routing.borrow().topic("ct-2").unwrap().id;
    for v in range(ApiKey::Metadata) {
        let topics = Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("ct-2")))
        ]);
        let req = MetadataRequest::default().with_topics(topics);
        let ResponseKind::Metadata(r) =
            serve(&ctx, ApiKey::Metadata, v, RequestKind::Metadata(req)).await
        else {
            unreachable!()
        };
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.topics.len(), 1, "Metadata v{v}");
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].partitions.len(), 2);
        if v >= 10 {
            assert_eq!(r.topics[0].topic_id, id, "topic ids from v10");
        }
    }

    // Fetch: by name below v13, by topic id from v13.
    for v in range(ApiKey::Fetch) {
        let mut topic = FetchTopic::default().with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20)]);
        topic = if v >= 13 {
            topic.with_topic_id(id)
        } else {
            topic.with_topic(name("ct-2"))
        };
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic]);
        let ResponseKind::Fetch(r) = serve(&ctx, ApiKey::Fetch, v, RequestKind::Fetch(req)).await
        else {
            unreachable!()
        };
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, produced);
        let records = p.records.as_ref().expect("records");
        let count = broker::storage::batch::split_batches(records, usize::MAX)
            .unwrap()
            .len() as i64;
        assert_eq!(count * 2, produced, "Fetch v{v} returns every batch");
    }

    // ListOffsets: latest, earliest and a timestamp.
    for v in range(ApiKey::ListOffsets) {
        let partitions = [-1i64, -2, 1_000]
            .iter()
            .map(|ts| {
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(*ts)
            })
            .collect();
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("ct-2"))
                .with_partitions(partitions)]);
        let ResponseKind::ListOffsets(r) =
            serve(&ctx, ApiKey::ListOffsets, v, RequestKind::ListOffsets(req)).await
        else {
            unreachable!()
        };
        let offsets: Vec<i64> = r.topics[0].partitions.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![produced, 0, 0], "ListOffsets v{v}");
    }

    // DescribeConfigs for a topic and for the broker.
    for v in range(ApiKey::DescribeConfigs) {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("ct-2")),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("0")),
        ]);
        let ResponseKind::DescribeConfigs(r) = serve(
            &ctx,
            ApiKey::DescribeConfigs,
            v,
            RequestKind::DescribeConfigs(req),
        )
        .await
        else {
            unreachable!()
        };
        assert!(
            r.results
                .iter()
                .all(|x| x.error_code == 0 && !x.configs.is_empty()),
            "DescribeConfigs v{v}"
        );
    }

    // InitProducerId: distinct producer ids, epoch 0.
    let mut ids = Vec::new();
    for v in range(ApiKey::InitProducerId) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let ResponseKind::InitProducerId(r) = serve(
            &ctx,
            ApiKey::InitProducerId,
            v,
            RequestKind::InitProducerId(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.error_code, r.producer_epoch),
            (0, 0),
            "InitProducerId v{v}"
        );
        ids.push(r.producer_id.0);
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "producer ids are unique");

    groups(&ctx).await;

    // CreatePartitions grows ct-3 one partition per version.
    let mut count = 2;
    for v in range(ApiKey::CreatePartitions) {
        count += 1;
        let req =
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("ct-3"))
                .with_count(count)]);
        let ResponseKind::CreatePartitions(r) = serve(
            &ctx,
            ApiKey::CreatePartitions,
            v,
            RequestKind::CreatePartitions(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }

    // DescribeCluster, DescribeLogDirs and OffsetForLeaderEpoch.
    for v in range(ApiKey::DescribeCluster) {
        let ResponseKind::DescribeCluster(r) = serve(
            &ctx,
            ApiKey::DescribeCluster,
            v,
            RequestKind::DescribeCluster(DescribeClusterRequest::default().with_endpoint_type(1)),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.error_code, r.brokers.len(), r.controller_id.0),
            (0, 1, 0),
            "DescribeCluster v{v}"
        );
    }
    // ElectLeaders and DescribeQuorum: single-node, so nothing to elect and no quorum.
    for v in range(ApiKey::ElectLeaders) {
        let topics = Some(vec![elect_leaders_request::TopicPartitions::default()
            .with_topic(name("ct-2"))
            .with_partitions(vec![0, 9])]);
        let ResponseKind::ElectLeaders(r) = serve(
            &ctx,
            ApiKey::ElectLeaders,
            v,
            RequestKind::ElectLeaders(ElectLeadersRequest::default().with_topic_partitions(topics)),
        )
        .await
        else {
            unreachable!()
        };
        let codes: Vec<i16> = r.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| p.error_code)
            .collect();
        // ELECTION_NOT_NEEDED; UNKNOWN_TOPIC_OR_PARTITION.
        assert_eq!((r.error_code, codes), (0, vec![84, 3]), "ElectLeaders v{v}");
    }
    // Reassignments, single-node: to this broker itself changes nothing; none under way.
    for v in range(ApiKey::AlterPartitionReassignments) {
        let partition = alter_partition_reassignments_request::ReassignablePartition::default()
            .with_replicas(Some(vec![BrokerId(0)]));
        let topics = vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(name("ct-2"))
                .with_partitions(vec![partition]),
        ];
        let ResponseKind::AlterPartitionReassignments(r) = serve(
            &ctx,
            ApiKey::AlterPartitionReassignments,
            v,
            RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default().with_topics(topics),
            ),
        )
        .await
        else {
            unreachable!()
        };
        let code = r.responses[0].partitions[0].error_code;
        assert_eq!(
            (r.error_code, code),
            (0, 0),
            "AlterPartitionReassignments v{v}"
        );
    }
    for v in range(ApiKey::ListPartitionReassignments) {
        let ResponseKind::ListPartitionReassignments(r) = serve(
            &ctx,
            ApiKey::ListPartitionReassignments,
            v,
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.error_code, r.topics.len()),
            (0, 0),
            "ListPartitionReassignments v{v}"
        );
    }
    for v in range(ApiKey::DescribeQuorum) {
        let topics = vec![describe_quorum_request::TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()])];
        let ResponseKind::DescribeQuorum(r) = serve(
            &ctx,
            ApiKey::DescribeQuorum,
            v,
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(topics)),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.error_code, r.topics[0].partitions[0].error_code),
            (0, 3),
            "DescribeQuorum v{v}"
        );
    }
    for v in range(ApiKey::DescribeLogDirs) {
        let topics = Some(vec![
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name("ct-2"))
                .with_partitions(vec![0, 1]),
        ]);
        let ResponseKind::DescribeLogDirs(r) = serve(
            &ctx,
            ApiKey::DescribeLogDirs,
            v,
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(topics)),
        )
        .await
        else {
            unreachable!()
        };
        let sizes: Vec<i64> = r.results[0].topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_size)
            .collect();
        assert!(
            sizes[0] > 0 && sizes[1] == 0,
            "DescribeLogDirs v{v}: {sizes:?}"
        );
    }
    for v in range(ApiKey::OffsetForLeaderEpoch) {
        let parts = vec![
            offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(0)
                .with_leader_epoch(0),
            offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(5)
                .with_leader_epoch(0),
        ];
        let topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(name("ct-2"))
            .with_partitions(parts);
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![topic]);
        let ResponseKind::OffsetForLeaderEpoch(r) = serve(
            &ctx,
            ApiKey::OffsetForLeaderEpoch,
            v,
            RequestKind::OffsetForLeaderEpoch(req),
        )
        .await
        else {
            unreachable!()
        };
        let (ok, newer) = (&r.topics[0].partitions[0], &r.topics[0].partitions[1]);
        assert_eq!(
            (ok.error_code, ok.leader_epoch, ok.end_offset),
            (0, 0, produced),
            "OffsetForLeaderEpoch v{v}"
        );
        assert_eq!(newer.error_code, 75, "UNKNOWN_LEADER_EPOCH");
    }

    // AlterConfigs replaces the overrides; IncrementalAlterConfigs changes one; both show.
    for v in range(ApiKey::AlterConfigs) {
        let value = format!("{}", 100_000 + v as i64);
        let config = alter_configs_request::AlterableConfig::default()
            .with_name(text("retention.ms"))
            .with_value(Some(text(&value)));
        let resource = alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("ct-3"))
            .with_configs(vec![config]);
        let req = AlterConfigsRequest::default().with_resources(vec![resource]);
        let ResponseKind::AlterConfigs(r) = serve(
            &ctx,
            ApiKey::AlterConfigs,
            v,
            RequestKind::AlterConfigs(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
        assert_eq!(
            broker
                .routing
                .borrow()
                .topic("ct-3")
                .unwrap()
                .configs
                .get("retention.ms"),
            Some(&value)
        );
    }
    for v in range(ApiKey::IncrementalAlterConfigs) {
        let ops = vec![
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text("retention.bytes"))
                .with_config_operation(0)
                .with_value(Some(text("4096"))),
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text("cleanup.policy"))
                .with_config_operation(2)
                .with_value(Some(text("compact"))),
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text("retention.ms"))
                .with_config_operation(1),
        ];
        let resource = incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("ct-3"))
            .with_configs(ops);
        let bad = incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("ct-3"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_config_operation(2)
                    .with_value(Some(text("1"))),
            ]);
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![resource, bad]);
        let ResponseKind::IncrementalAlterConfigs(r) = serve(
            &ctx,
            ApiKey::IncrementalAlterConfigs,
            v,
            RequestKind::IncrementalAlterConfigs(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.responses[0].error_code, r.responses[1].error_code),
            (0, 40),
            "IncrementalAlterConfigs v{v}"
        );
        let configs = broker
            .routing
            .borrow()
            .topic("ct-3")
            .unwrap()
            .configs
            .clone();
        assert_eq!(
            configs.get("retention.bytes").map(String::as_str),
            Some("4096")
        );
        assert_eq!(
            configs.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        assert!(!configs.contains_key("retention.ms"));
    }

    // DeleteRecords on ct-3 (empty): -1 means the high watermark, 0.
    for v in range(ApiKey::DeleteRecords) {
        let partition = delete_records_request::DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(-1);
        let topic = delete_records_request::DeleteRecordsTopic::default()
            .with_name(name("ct-3"))
            .with_partitions(vec![partition]);
        let req = DeleteRecordsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(5000);
        let ResponseKind::DeleteRecords(r) = serve(
            &ctx,
            ApiKey::DeleteRecords,
            v,
            RequestKind::DeleteRecords(req),
        )
        .await
        else {
            unreachable!()
        };
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (0, 0),
            "DeleteRecords v{v}"
        );
    }

    // DeleteTopics: names before v6, topic states from v6.
    for v in range(ApiKey::DeleteTopics) {
        let victim = format!("ct-{}", v + 1);
        let req = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(name(&victim)))
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&victim)])
        };
        let ResponseKind::DeleteTopics(r) = serve(
            &ctx,
            ApiKey::DeleteTopics,
            v,
            RequestKind::DeleteTopics(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            r.responses[0].error_code, 0,
            "DeleteTopics v{v} of {victim}"
        );
    }
    broker.shutdown().await;
}

pub(crate) fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The group APIs at every version: a one-member group per JoinGroup version, commits
/// and fetches of offsets on ct-2, listing, describing and deleting.
async fn groups(ctx: &BrokerContext) {
    for v in range(ApiKey::FindCoordinator) {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![text("g")])
        } else {
            FindCoordinatorRequest::default().with_key(text("g"))
        };
        let ResponseKind::FindCoordinator(r) = serve(
            ctx,
            ApiKey::FindCoordinator,
            v,
            RequestKind::FindCoordinator(req),
        )
        .await
        else {
            unreachable!()
        };
        let port = if v >= 4 {
            r.coordinators[0].port
        } else {
            r.port
        };
        assert_eq!(
            port,
            ctx.advertised_for("PLAINTEXT").1,
            "FindCoordinator v{v}"
        );
    }
    for v in range(ApiKey::JoinGroup) {
        let group = GroupId(text(&format!("vg-{v}")));
        let protocol = join_group_request::JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"m"));
        let mut req = JoinGroupRequest::default()
            .with_group_id(group.clone())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![protocol.clone()]);
        let ResponseKind::JoinGroup(mut r) = serve(
            ctx,
            ApiKey::JoinGroup,
            v,
            RequestKind::JoinGroup(req.clone()),
        )
        .await
        else {
            unreachable!()
        };
        if v >= 4 {
            assert_eq!(r.error_code, 79, "JoinGroup v{v}: MEMBER_ID_REQUIRED first");
            req = req.with_member_id(r.member_id.clone());
            let ResponseKind::JoinGroup(again) =
                serve(ctx, ApiKey::JoinGroup, v, RequestKind::JoinGroup(req)).await
            else {
                unreachable!()
            };
            r = again;
        }
        assert_eq!((r.error_code, r.generation_id), (0, 1), "JoinGroup v{v}");
        assert_eq!(r.members.len(), 1);
        let member = r.member_id.clone();
        let sv = v.min(*range(ApiKey::SyncGroup).end());
        let assignment = sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(Bytes::from_static(b"a"));
        let req = SyncGroupRequest::default()
            .with_group_id(group.clone())
            .with_generation_id(1)
            .with_member_id(member.clone())
            .with_assignments(vec![assignment]);
        let ResponseKind::SyncGroup(r) =
            serve(ctx, ApiKey::SyncGroup, sv, RequestKind::SyncGroup(req)).await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.error_code, r.assignment.as_ref()),
            (0, b"a".as_slice()),
            "SyncGroup v{sv}"
        );
        let hv = v.min(*range(ApiKey::Heartbeat).end());
        let req = HeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_generation_id(1)
            .with_member_id(member.clone());
        let ResponseKind::Heartbeat(r) =
            serve(ctx, ApiKey::Heartbeat, hv, RequestKind::Heartbeat(req)).await
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, 0, "Heartbeat v{hv}");
        let cv = v.clamp(
            *range(ApiKey::OffsetCommit).start(),
            *range(ApiKey::OffsetCommit).end(),
        );
        let partition = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(v as i64)
            .with_committed_metadata(Some(text("md")));
        let topic = offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(name("ct-2"))
            .with_partitions(vec![partition]);
        let req = OffsetCommitRequest::default()
            .with_group_id(group.clone())
            .with_generation_id_or_member_epoch(1)
            .with_member_id(member.clone())
            .with_topics(vec![topic]);
        let ResponseKind::OffsetCommit(r) = serve(
            ctx,
            ApiKey::OffsetCommit,
            cv,
            RequestKind::OffsetCommit(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{cv}"
        );
        let lv = v.min(*range(ApiKey::LeaveGroup).end());
        let req = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group.clone())
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(member.clone())
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group.clone())
                .with_member_id(member.clone())
        };
        let ResponseKind::LeaveGroup(r) =
            serve(ctx, ApiKey::LeaveGroup, lv, RequestKind::LeaveGroup(req)).await
        else {
            unreachable!()
        };
        let code = if lv >= 3 {
            r.members[0].error_code
        } else {
            r.error_code
        };
        assert_eq!(code, 0, "LeaveGroup v{lv}");
    }
    for v in range(ApiKey::OffsetFetch) {
        let (offset, metadata) = if v >= 8 {
            let topics = vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(name("ct-2"))
                .with_partition_indexes(vec![0, 1])];
            let req = OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(text("vg-3")))
                    .with_topics(Some(topics)),
            ]);
            let ResponseKind::OffsetFetch(r) =
                serve(ctx, ApiKey::OffsetFetch, v, RequestKind::OffsetFetch(req)).await
            else {
                unreachable!()
            };
            let parts = &r.groups[0].topics[0].partitions;
            assert_eq!(parts[1].committed_offset, -1, "no offset for partition 1");
            (parts[0].committed_offset, parts[0].metadata.clone())
        } else {
            let topics = vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name("ct-2"))
                .with_partition_indexes(vec![0, 1])];
            let req = OffsetFetchRequest::default()
                .with_group_id(GroupId(text("vg-3")))
                .with_topics(Some(topics));
            let ResponseKind::OffsetFetch(r) =
                serve(ctx, ApiKey::OffsetFetch, v, RequestKind::OffsetFetch(req)).await
            else {
                unreachable!()
            };
            let parts = &r.topics[0].partitions;
            assert_eq!(parts[1].committed_offset, -1, "no offset for partition 1");
            (parts[0].committed_offset, parts[0].metadata.clone())
        };
        assert_eq!(
            (offset, metadata.as_ref().map(|m| m.as_str())),
            (3, Some("md")),
            "OffsetFetch v{v}"
        );
    }
    for v in range(ApiKey::ListGroups) {
        let ResponseKind::ListGroups(r) = serve(
            ctx,
            ApiKey::ListGroups,
            v,
            RequestKind::ListGroups(ListGroupsRequest::default()),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            r.groups.len(),
            range(ApiKey::JoinGroup).count(),
            "ListGroups v{v}"
        );
    }
    for v in range(ApiKey::DescribeGroups) {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(text("vg-3")), GroupId(text("nope"))]);
        let ResponseKind::DescribeGroups(r) = serve(
            ctx,
            ApiKey::DescribeGroups,
            v,
            RequestKind::DescribeGroups(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            r.groups[0].group_state.as_str(),
            "Empty",
            "DescribeGroups v{v}"
        );
        assert_eq!(r.groups[1].group_state.as_str(), "Dead");
        // KIP-1043: from v6 a missing group is GROUP_ID_NOT_FOUND (69), with a message.
        let missing = if v >= 6 { 69 } else { 0 };
        assert_eq!(r.groups[1].error_code, missing, "DescribeGroups v{v}");
        assert_eq!(r.groups[1].error_message.is_some(), v >= 6);
        assert_eq!(r.groups[0].error_code, 0);
    }
    let topic = offset_delete_request::OffsetDeleteRequestTopic::default()
        .with_name(name("ct-2"))
        .with_partitions(vec![
            offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
        ]);
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(text("vg-4")))
        .with_topics(vec![topic]);
    let ResponseKind::OffsetDelete(r) =
        serve(ctx, ApiKey::OffsetDelete, 0, RequestKind::OffsetDelete(req)).await
    else {
        unreachable!()
    };
    assert_eq!(
        (r.error_code, r.topics[0].partitions[0].error_code),
        (0, 0),
        "OffsetDelete v0"
    );
    for v in range(ApiKey::DeleteGroups) {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![
            GroupId(text(&format!("vg-{v}"))),
            GroupId(text("nope")),
        ]);
        let ResponseKind::DeleteGroups(r) =
            serve(ctx, ApiKey::DeleteGroups, v, RequestKind::DeleteGroups(req)).await
        else {
            unreachable!()
        };
        assert_eq!(
            (r.results[0].error_code, r.results[1].error_code),
            (0, 69),
            "DeleteGroups v{v}"
        );
    }
}
