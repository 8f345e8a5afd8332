//! The ACL checks every request passes before its handler sees it, as Kafka's KafkaApis
//! makes them (the operation and resource each API needs, and the error code it answers).
//!
//! `check` either refuses a request whole (one resource decides it: a group, a
//! transactional id, the cluster) with that API's error response, or narrows it: the
//! topics, groups or ids the principal may not touch are taken out before the handler
//! runs, and a `Patch` adds their error entries to the handler's response (and, for the
//! read-only listings, drops what the principal may not describe). Without an authorizer
//! nothing is checked. ACL decisions come from `AuthorizerView`, one per request.

mod cluster;
mod consumer_groups;
mod groups;
mod topics;
mod txns;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;

use crate::protocol::BrokerContext;
use crate::security::authorizer_view::AuthorizerView;

/// Adds the refused entries to (or drops undescribable ones from) a handler's response.
pub type Patch = Box<dyn FnOnce(&mut ResponseKind) + Send>;

pub enum Checked {
    /// Serve this request (narrowed where needed), then apply the patch, if any.
    Serve(RequestKind, Option<Patch>),
    /// Refused whole: answer this.
    Refuse(ResponseKind),
    /// An API with no ACL mapping: not served (the connection closes, as for an API the
    /// version table does not list).
    Unmapped,
}

pub(crate) const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
pub(crate) const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
pub(crate) const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();
pub(crate) const TXN_ID_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();

pub fn check(
    ctx: &BrokerContext,
    version: i16,
    request: RequestKind,
    view: &AuthorizerView,
) -> Checked {
    use RequestKind as R;
    if !view.enabled() {
        // Without an authorizer Kafka answers KIP-430's operations as all of them.
        return match request {
            R::DescribeGroups(r) if r.include_authorized_operations => {
                groups::describe_groups(r, view)
            }
            R::ConsumerGroupDescribe(r) if r.include_authorized_operations => {
                consumer_groups::consumer_group_describe(r, view)
            }
            other => Checked::Serve(other, None),
        };
    }
    match request {
        R::Produce(r) => topics::produce(ctx, r, view),
        R::Fetch(r) => topics::fetch(ctx, r, view),
        R::ListOffsets(r) => topics::list_offsets(r, view),
        R::OffsetForLeaderEpoch(r) => topics::offset_for_leader_epoch(r, view),
        R::CreateTopics(r) => topics::create_topics(r, view),
        R::DeleteTopics(r) => topics::delete_topics(ctx, r, view),
        R::CreatePartitions(r) => topics::create_partitions(r, view),
        R::DeleteRecords(r) => topics::delete_records(r, view),
        R::DescribeProducers(r) => topics::describe_producers(r, view),
        R::DescribeTopicPartitions(r) => topics::describe_topic_partitions(r, view),
        R::DescribeConfigs(r) => topics::describe_configs(r, view),
        R::AlterConfigs(r) => topics::alter_configs(r, view),
        R::IncrementalAlterConfigs(r) => topics::incremental_alter_configs(r, view),
        R::JoinGroup(r) => groups::join_group(r, view),
        R::SyncGroup(r) => groups::sync_group(r, view),
        R::Heartbeat(r) => groups::heartbeat(r, view),
        R::LeaveGroup(r) => groups::leave_group(r, view),
        R::OffsetCommit(r) => groups::offset_commit(r, view),
        R::OffsetFetch(r) => groups::offset_fetch(version, r, view),
        R::DescribeGroups(r) => groups::describe_groups(r, view),
        R::ListGroups(r) => groups::list_groups(r, view),
        R::DeleteGroups(r) => groups::delete_groups(r, view),
        R::OffsetDelete(r) => groups::offset_delete(r, view),
        R::FindCoordinator(r) => groups::find_coordinator(version, r, view),
        R::ConsumerGroupHeartbeat(r) => consumer_groups::consumer_group_heartbeat(r, view),
        R::ConsumerGroupDescribe(r) => consumer_groups::consumer_group_describe(r, view),
        R::InitProducerId(r) => txns::init_producer_id(r, view),
        R::AddPartitionsToTxn(r) => txns::add_partitions_to_txn(r, view),
        R::AddOffsetsToTxn(r) => txns::add_offsets_to_txn(r, view),
        R::TxnOffsetCommit(r) => txns::txn_offset_commit(r, view),
        R::EndTxn(r) => txns::end_txn(r, view),
        R::ListTransactions(r) => txns::list_transactions(r, view),
        R::DescribeTransactions(r) => txns::describe_transactions(r, view),
        R::DescribeLogDirs(r) => txns::describe_log_dirs(r, view),
        R::DescribeUserScramCredentials(r) => txns::describe_user_scram_credentials(r, view),
        R::AlterUserScramCredentials(r) => txns::alter_user_scram_credentials(r, view),
        R::DescribeCluster(r) => txns::describe_cluster(r, view),
        R::ElectLeaders(r) => cluster::elect_leaders(r, view),
        R::DescribeQuorum(r) => cluster::describe_quorum(r, view),
        R::AlterPartitionReassignments(r) => cluster::alter_partition_reassignments(r, view),
        R::ListPartitionReassignments(r) => cluster::list_partition_reassignments(r, view),
        R::WriteTxnMarkers(r) => cluster::write_txn_markers(r, view),
        R::DescribeClientQuotas(r) => cluster::describe_client_quotas(r, view),
        R::AlterClientQuotas(r) => cluster::alter_client_quotas(r, view),
        // Metadata checks in its handler (auto-creation needs CREATE); the ACL APIs check
        // in theirs; ApiVersions and SASL need nothing.
        other @ (R::Metadata(_)
        | R::CreateAcls(_)
        | R::DescribeAcls(_)
        | R::DeleteAcls(_)
        | R::ApiVersions(_)
        | R::SaslHandshake(_)
        | R::SaslAuthenticate(_)) => Checked::Serve(other, None),
        // An API nobody mapped to its ACL is never served unchecked (the test below keeps
        // every API in the version table mapped).
        _ => Checked::Unmapped,
    }
}

/// Every API `check` maps to its ACLs (the rest are refused: `Checked::Unmapped`).
pub const CHECKED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::DescribeProducers,
    ApiKey::DescribeTopicPartitions,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::FindCoordinator,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::ListTransactions,
    ApiKey::DescribeTransactions,
    ApiKey::DescribeLogDirs,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeCluster,
    ApiKey::ElectLeaders,
    ApiKey::DescribeQuorum,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::WriteTxnMarkers,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
    // Checked in their handlers, or needing no ACL.
    ApiKey::Metadata,
    ApiKey::CreateAcls,
    ApiKey::DescribeAcls,
    ApiKey::DeleteAcls,
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// Splits `items` into those `allowed` keeps and those it refuses.
pub(crate) fn split<T>(items: Vec<T>, allowed: impl Fn(&T) -> bool) -> (Vec<T>, Vec<T>) {
    items.into_iter().partition(|item| allowed(item))
}

/// Serves `request`; when anything was refused, `patch` adds it to the response.
pub(crate) fn serve<D: Send + 'static>(
    request: RequestKind,
    denied: Vec<D>,
    patch: impl FnOnce(&mut ResponseKind, Vec<D>) + Send + 'static,
) -> Checked {
    if denied.is_empty() {
        return Checked::Serve(request, None);
    }
    Checked::Serve(request, Some(Box::new(move |resp| patch(resp, denied))))
}

/// Serves `request` and always applies `patch` (the listings filtered after the fact).
pub(crate) fn serve_then(
    request: RequestKind,
    patch: impl FnOnce(&mut ResponseKind) + Send + 'static,
) -> Checked {
    Checked::Serve(request, Some(Box::new(patch)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_api_the_broker_serves_is_mapped_to_its_acls() {
        for (api, _, _) in crate::protocol::versions::SUPPORTED {
            assert!(super::CHECKED.contains(api), "{api:?} has no ACL check");
        }
    }
}
