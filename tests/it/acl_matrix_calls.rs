//! One request per API for the ACL matrix (`acl_matrix.rs`): each sends a request naming
//! topic `t`, group `g` or transactional id `tx` and returns the error code that tells an
//! authorized principal from a refused one. The listings that leave out what may not be
//! described answer 0 when the resource is listed and the denial code when it is hidden.

use kafka_protocol::messages::*;

use crate::hostile_wire::{text, topic, Wire};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;

/// 0 when listed, `denied` when hidden.
pub fn hidden(listed: bool, denied: i16) -> i16 {
    if listed {
        0
    } else {
        denied
    }
}

fn answered<R>(r: Option<R>, api: &str) -> R {
    r.unwrap_or_else(|| panic!("{api} answered"))
}

pub fn metadata_all(w: &mut Wire) -> i16 {
    let resp = answered(
        w.call(12, &MetadataRequest::default().with_topics(None)),
        "Metadata",
    );
    let listed = resp
        .topics
        .iter()
        .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "t"));
    hidden(listed, TOPIC_DENIED)
}

pub fn metadata_named(w: &mut Wire) -> i16 {
    use metadata_request::MetadataRequestTopic;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("t")))
        ]))
        .with_allow_auto_topic_creation(false);
    answered(w.call(12, &req), "Metadata").topics[0].error_code
}

pub fn fetch(w: &mut Wire) -> i16 {
    use fetch_request::{FetchPartition, FetchTopic};
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic("t"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = answered(w.call(12, &req), "Fetch");
    resp.responses[0].partitions[0].error_code
}

pub fn list_offsets(w: &mut Wire) -> i16 {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    answered(w.call(5, &req), "ListOffsets").topics[0].partitions[0].error_code
}

pub fn offset_for_leader_epoch(w: &mut Wire) -> i16 {
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic("t"))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_leader_epoch(0)])]);
    answered(w.call(4, &req), "OffsetForLeaderEpoch").topics[0].partitions[0].error_code
}

pub fn describe_topic_partitions(w: &mut Wire) -> i16 {
    use describe_topic_partitions_request::TopicRequest;
    let req = DescribeTopicPartitionsRequest::default()
        .with_response_partition_limit(100)
        .with_topics(vec![TopicRequest::default().with_name(topic("t"))]);
    answered(w.call(0, &req), "DescribeTopicPartitions").topics[0].error_code
}

pub fn describe_producers(w: &mut Wire) -> i16 {
    use describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic("t"))
        .with_partition_indexes(vec![0])]);
    answered(w.call(0, &req), "DescribeProducers").topics[0].partitions[0].error_code
}

pub fn describe_configs(w: &mut Wire, kind: i8, name: &str) -> i16 {
    use describe_configs_request::DescribeConfigsResource;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(text(name))]);
    answered(w.call(4, &req), "DescribeConfigs").results[0].error_code
}

pub fn alter_configs(w: &mut Wire) -> i16 {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("t"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(text("retention.ms"))
            .with_value(Some(text("600000")))])]);
    answered(w.call(1, &req), "AlterConfigs").responses[0].error_code
}

pub fn create_partitions(w: &mut Wire) -> i16 {
    use create_partitions_request::CreatePartitionsTopic;
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(true)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic("t"))
            .with_count(2)]);
    answered(w.call(2, &req), "CreatePartitions").results[0].error_code
}

pub fn create_topics(w: &mut Wire) -> i16 {
    use create_topics_request::CreatableTopic;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(true)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("t-new"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    answered(w.call(5, &req), "CreateTopics").topics[0].error_code
}

pub fn delete_topics(w: &mut Wire) -> i16 {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![topic("t-del")]);
    answered(w.call(4, &req), "DeleteTopics").responses[0].error_code
}

pub fn delete_records(w: &mut Wire) -> i16 {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(0)])]);
    answered(w.call(2, &req), "DeleteRecords").topics[0].partitions[0].error_code
}

pub fn find_coordinator(w: &mut Wire, version: i16, key_type: i8, key: &str) -> i16 {
    let req = FindCoordinatorRequest::default().with_key_type(key_type);
    let req = if version < 4 {
        req.with_key(text(key))
    } else {
        req.with_coordinator_keys(vec![text(key)])
    };
    let resp = answered(w.call(version, &req), "FindCoordinator");
    if version < 4 {
        resp.error_code
    } else {
        resp.coordinators[0].error_code
    }
}

pub fn join_group(w: &mut Wire) -> i16 {
    use join_group_request::JoinGroupRequestProtocol;
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(text("range"))
        ]);
    // v4+: the first join is answered MEMBER_ID_REQUIRED with the id to join with.
    let first = answered(w.call(5, &req), "JoinGroup");
    if first.error_code != 79 {
        return first.error_code;
    }
    let req = req.with_member_id(first.member_id);
    answered(w.call(5, &req), "JoinGroup").error_code
}

pub fn sync_group(w: &mut Wire) -> i16 {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id(1)
        .with_member_id(text("m"));
    answered(w.call(3, &req), "SyncGroup").error_code
}

pub fn heartbeat(w: &mut Wire) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id(1)
        .with_member_id(text("m"));
    answered(w.call(3, &req), "Heartbeat").error_code
}

pub fn leave_group(w: &mut Wire) -> i16 {
    use leave_group_request::MemberIdentity;
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_members(vec![MemberIdentity::default().with_member_id(text("m"))]);
    answered(w.call(3, &req), "LeaveGroup").error_code
}

pub fn offset_commit(w: &mut Wire) -> i16 {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    answered(w.call(8, &req), "OffsetCommit").topics[0].partitions[0].error_code
}

pub fn offset_fetch(w: &mut Wire, version: i16) -> i16 {
    use offset_fetch_request::OffsetFetchRequestTopics;
    use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
    if version < 8 {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic("t"))
                .with_partition_indexes(vec![0])]));
        return answered(w.call(version, &req), "OffsetFetch").error_code;
    }
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(text("g")))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(topic("t"))
            .with_partition_indexes(vec![0])]))]);
    answered(w.call(version, &req), "OffsetFetch").groups[0].error_code
}

pub fn describe_groups(w: &mut Wire) -> i16 {
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(text("g"))])
        .with_include_authorized_operations(true);
    answered(w.call(5, &req), "DescribeGroups").groups[0].error_code
}

pub fn list_groups(w: &mut Wire) -> i16 {
    let resp = answered(w.call(4, &ListGroupsRequest::default()), "ListGroups");
    hidden(
        resp.groups.iter().any(|g| g.group_id.0.as_str() == "g"),
        GROUP_DENIED,
    )
}

pub fn delete_groups(w: &mut Wire) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("g"))]);
    answered(w.call(2, &req), "DeleteGroups").results[0].error_code
}

pub fn offset_delete(w: &mut Wire) -> i16 {
    use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    answered(w.call(0, &req), "OffsetDelete").error_code
}

pub fn init_producer_id(w: &mut Wire, txn: Option<&str>) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(text(t))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    answered(w.call(4, &req), "InitProducerId").error_code
}

pub fn add_partitions_to_txn(w: &mut Wire) -> i16 {
    use add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(text("tx")))
        .with_v3_and_below_producer_id(ProducerId(1))
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![0])]);
    let resp = answered(w.call(3, &req), "AddPartitionsToTxn");
    resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

pub fn add_offsets_to_txn(w: &mut Wire) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(text("tx")))
        .with_producer_id(ProducerId(1))
        .with_group_id(GroupId(text("g")));
    answered(w.call(3, &req), "AddOffsetsToTxn").error_code
}

pub fn txn_offset_commit(w: &mut Wire) -> i16 {
    use txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(text("tx")))
        .with_group_id(GroupId(text("g")))
        .with_producer_id(ProducerId(1))
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    answered(w.call(3, &req), "TxnOffsetCommit").topics[0].partitions[0].error_code
}

pub fn end_txn(w: &mut Wire) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(text("tx")))
        .with_producer_id(ProducerId(1))
        .with_committed(false);
    answered(w.call(3, &req), "EndTxn").error_code
}

pub fn list_transactions(w: &mut Wire) -> i16 {
    let resp = answered(
        w.call(1, &ListTransactionsRequest::default()),
        "ListTransactions",
    );
    let listed = resp
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.0.as_str() == "tx");
    hidden(listed, TXN_DENIED)
}

pub fn describe_transactions(w: &mut Wire) -> i16 {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(text("tx"))]);
    answered(w.call(0, &req), "DescribeTransactions").transaction_states[0].error_code
}

pub fn describe_log_dirs(w: &mut Wire) -> i16 {
    let req = DescribeLogDirsRequest::default().with_topics(None);
    answered(w.call(4, &req), "DescribeLogDirs").error_code
}

/// KIP-430: the cluster's authorized operations; none for a principal with no ACL.
pub fn describe_cluster(w: &mut Wire) -> i16 {
    let req = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let resp = answered(w.call(1, &req), "DescribeCluster");
    hidden(resp.cluster_authorized_operations > 0, CLUSTER_DENIED)
}

pub fn describe_scram(w: &mut Wire) -> i16 {
    let req = DescribeUserScramCredentialsRequest::default().with_users(None);
    answered(w.call(0, &req), "DescribeUserScramCredentials").error_code
}

pub fn alter_scram(w: &mut Wire) -> i16 {
    use alter_user_scram_credentials_request::ScramCredentialDeletion;
    let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(text("nobody"))
            .with_mechanism(1),
    ]);
    answered(w.call(0, &req), "AlterUserScramCredentials").results[0].error_code
}

pub fn describe_acls(w: &mut Wire) -> i16 {
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    answered(w.call(3, &req), "DescribeAcls").error_code
}

pub fn elect_leaders(w: &mut Wire) -> i16 {
    use elect_leaders_request::TopicPartitions;
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic("t"))
            .with_partitions(vec![0])]));
    answered(w.call(2, &req), "ElectLeaders").error_code
}

pub fn describe_quorum(w: &mut Wire) -> i16 {
    use describe_quorum_request::{PartitionData, TopicData};
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    answered(w.call(1, &req), "DescribeQuorum").error_code
}

/// The lowest version of `api` the broker advertises.
fn lowest(api: ApiKey) -> i16 {
    broker::protocol::versions::range(api)
        .expect("advertised")
        .0
}

pub fn alter_partition_reassignments(w: &mut Wire) -> i16 {
    use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(None)])]);
    let version = lowest(ApiKey::AlterPartitionReassignments);
    answered(w.call(version, &req), "AlterPartitionReassignments").error_code
}

pub fn list_partition_reassignments(w: &mut Wire) -> i16 {
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(None);
    let version = lowest(ApiKey::ListPartitionReassignments);
    answered(w.call(version, &req), "ListPartitionReassignments").error_code
}

/// An abort marker for partition 0 of `t` from a producer that never wrote there (what
/// another broker's transaction coordinator sends); its partition's error code.
pub fn write_txn_markers(w: &mut Wire) -> i16 {
    use write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(999_999))
        .with_producer_epoch(0)
        .with_transaction_result(false)
        .with_coordinator_epoch(0)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic("t"))
            .with_partition_indexes(vec![0])])]);
    let resp: WriteTxnMarkersResponse = answered(w.call(1, &req), "WriteTxnMarkers");
    resp.markers
        .first()
        .and_then(|m| m.topics.first())
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code)
}

pub fn describe_client_quotas(w: &mut Wire) -> i16 {
    let req = DescribeClientQuotasRequest::default();
    answered(w.call(1, &req), "DescribeClientQuotas").error_code
}

/// A validate-only change, so an allowed call changes nothing; the entry's error code.
pub fn alter_client_quotas(w: &mut Wire) -> i16 {
    use alter_client_quotas_request::{EntityData, EntryData, OpData};
    let req = AlterClientQuotasRequest::default()
        .with_validate_only(true)
        .with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(text("user"))
                .with_entity_name(Some(text("carol")))])
            .with_ops(vec![OpData::default()
                .with_key(text("producer_byte_rate"))
                .with_value(1024.0)])]);
    answered(w.call(1, &req), "AlterClientQuotas").entries[0].error_code
}

pub fn consumer_group_heartbeat(w: &mut Wire) -> i16 {
    consumer_group_join(w, &["t"])
}

/// A ConsumerGroupHeartbeat join of group `g` subscribing to `topics`.
pub fn consumer_group_join(w: &mut Wire, topics: &[&str]) -> i16 {
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_member_id(text("cg-member"))
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| topic(t)).collect()))
        .with_topic_partitions(Some(Vec::new()));
    answered(w.call(1, &req), "ConsumerGroupHeartbeat").error_code
}

pub fn consumer_group_describe(w: &mut Wire) -> i16 {
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(text("g"))])
        .with_include_authorized_operations(true);
    answered(w.call(1, &req), "ConsumerGroupDescribe").groups[0].error_code
}
