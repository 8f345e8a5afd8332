//! Cluster-administration checks: ElectLeaders and AlterPartitionReassignments need ALTER
//! on the cluster, DescribeQuorum and ListPartitionReassignments DESCRIBE on it; refused,
//! they answer CLUSTER_AUTHORIZATION_FAILED as Kafka's KafkaApis does.

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
