//! Cluster-administration checks: ElectLeaders and AlterPartitionReassignments need ALTER
//! on the cluster, DescribeQuorum and ListPartitionReassignments DESCRIBE on it; refused,
//! they answer CLUSTER_AUTHORIZATION_FAILED as Kafka's KafkaApis does. WriteTxnMarkers,
//! sent by another broker's transaction coordinator, needs CLUSTER_ACTION on the cluster.
//! DescribeClientQuotas needs DESCRIBE_CONFIGS on the cluster and AlterClientQuotas
//! ALTER_CONFIGS on it (refused: CLUSTER_AUTHORIZATION_FAILED, for the request or each
//! entry).

use kafka_protocol::messages::*;

use super::{Checked, CLUSTER_DENIED};
use crate::security::acl::AclOperation as Op;
use crate::security::authorizer_view::AuthorizerView;

pub fn elect_leaders(req: ElectLeadersRequest, view: &AuthorizerView) -> Checked {
    use elect_leaders_response::{PartitionResult, ReplicaElectionResult};
    if view.allows_cluster(Op::Alter) {
        return Checked::Serve(RequestKind::ElectLeaders(req), None);
    }
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| {
                PartitionResult::default()
                    .with_partition_id(*p)
                    .with_error_code(CLUSTER_DENIED)
            });
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partitions.collect())
        })
        .collect();
    Checked::Refuse(ResponseKind::ElectLeaders(
        ElectLeadersResponse::default()
            .with_error_code(CLUSTER_DENIED)
            .with_replica_election_results(results),
    ))
}

pub fn describe_quorum(req: DescribeQuorumRequest, view: &AuthorizerView) -> Checked {
    if view.allows_cluster(Op::Describe) {
        return Checked::Serve(RequestKind::DescribeQuorum(req), None);
    }
    Checked::Refuse(ResponseKind::DescribeQuorum(
        DescribeQuorumResponse::default().with_error_code(CLUSTER_DENIED),
    ))
}

pub fn alter_partition_reassignments(
    req: AlterPartitionReassignmentsRequest,
    view: &AuthorizerView,
) -> Checked {
    if view.allows_cluster(Op::Alter) {
        return Checked::Serve(RequestKind::AlterPartitionReassignments(req), None);
    }
    Checked::Refuse(ResponseKind::AlterPartitionReassignments(
        AlterPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED),
    ))
}

pub fn list_partition_reassignments(
    req: ListPartitionReassignmentsRequest,
    view: &AuthorizerView,
) -> Checked {
    if view.allows_cluster(Op::Describe) {
        return Checked::Serve(RequestKind::ListPartitionReassignments(req), None);
    }
    Checked::Refuse(ResponseKind::ListPartitionReassignments(
        ListPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED),
    ))
}

pub fn write_txn_markers(req: WriteTxnMarkersRequest, view: &AuthorizerView) -> Checked {
    if view.allows_cluster(Op::ClusterAction) {
        return Checked::Serve(RequestKind::WriteTxnMarkers(req), None);
    }
    // As Kafka: every partition of every marker is refused.
    use write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    let markers = req
        .markers
        .into_iter()
        .map(|m| {
            let topics = m.topics.into_iter().map(|t| {
                let partitions = t.partition_indexes.iter().map(|p| {
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(CLUSTER_DENIED)
                });
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions.collect())
            });
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics.collect())
        })
        .collect();
    Checked::Refuse(ResponseKind::WriteTxnMarkers(
        WriteTxnMarkersResponse::default().with_markers(markers),
    ))
}

pub fn describe_client_quotas(req: DescribeClientQuotasRequest, view: &AuthorizerView) -> Checked {
    if view.allows_cluster(Op::DescribeConfigs) {
        return Checked::Serve(RequestKind::DescribeClientQuotas(req), None);
    }
    Checked::Refuse(ResponseKind::DescribeClientQuotas(
        DescribeClientQuotasResponse::default().with_error_code(CLUSTER_DENIED),
    ))
}

pub fn alter_client_quotas(req: AlterClientQuotasRequest, view: &AuthorizerView) -> Checked {
    use alter_client_quotas_response::{EntityData, EntryData};
    if view.allows_cluster(Op::AlterConfigs) {
        return Checked::Serve(RequestKind::AlterClientQuotas(req), None);
    }
    let entries = req
        .entries
        .into_iter()
        .map(|entry| {
            let entity = entry.entity.into_iter().map(|e| {
                EntityData::default()
                    .with_entity_type(e.entity_type)
                    .with_entity_name(e.entity_name)
            });
            EntryData::default()
                .with_error_code(CLUSTER_DENIED)
                .with_entity(entity.collect())
        })
        .collect();
    Checked::Refuse(ResponseKind::AlterClientQuotas(
        AlterClientQuotasResponse::default().with_entries(entries),
    ))
}
