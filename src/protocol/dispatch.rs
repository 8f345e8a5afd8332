//! The one dispatch `match`: request kind -> handler.
//!
//! `prepare` runs on the connection's reading task, in request order, and does the part of a
//! request whose order matters (auto-creation, sending appends to partition actors, sending
//! topic changes to the metadata actor). It returns a future that awaits the replies; the
//! connection runs those concurrently and writes their responses in request order.

use std::future::Future;
use std::pin::Pin;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use tracing::{debug, warn};

use super::authorize::{self, Checked};
use super::context::ClientInfo;
use super::handlers;
use super::BrokerContext;

pub type ResponseFuture = Pin<Box<dyn Future<Output = ResponseKind> + Send>>;

/// A request ready to be awaited, and whether the client expects a response to it.
pub struct Prepared {
    pub response: ResponseFuture,
    /// False for Produce with acks=0: Kafka sends no response.
    pub expects_response: bool,
}

impl Prepared {
    fn reply(response: ResponseFuture) -> Self {
        Prepared {
            response,
            expects_response: true,
        }
    }
}

/// Returns None for a request kind the version table does not list (the gate
/// in the connection refuses those before decoding, so this is a second line).
pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    request: RequestKind,
    client: &ClientInfo,
) -> Option<Prepared> {
    let view = ctx.authorizer_view(client);
    let (request, patch) = match authorize::check(ctx, version, request, &view) {
        Checked::Serve(request, patch) => (request, patch),
        Checked::Refuse(response) => {
            debug!(principal = %client.principal, "Refused a request: not authorized.");
            return Some(Prepared::reply(Box::pin(async move { response })));
        }
        Checked::Unmapped => {
            warn!("Refused a request of an API with no ACL mapping.");
            return None;
        }
    };
    let mut prepared = match request {
        RequestKind::ApiVersions(req) => {
            Prepared::reply(Box::pin(handlers::api_versions::handle(req)))
        }
        RequestKind::Metadata(req) => {
            Prepared::reply(handlers::metadata::prepare(ctx, version, req, client, &view).await)
        }
        RequestKind::Produce(req) => {
            handlers::produce::prepare(ctx, version, req, &client.listener).await
        }
        RequestKind::Fetch(req) => Prepared::reply(handlers::fetch::prepare(
            ctx,
            version,
            req,
            &client.listener,
        )),
        RequestKind::ListOffsets(req) => {
            Prepared::reply(handlers::list_offsets::prepare(ctx, version, req))
        }
        RequestKind::CreateTopics(req) => {
            Prepared::reply(handlers::create_topics::prepare(ctx, version, req))
        }
        RequestKind::DeleteTopics(req) => {
            Prepared::reply(handlers::delete_topics::prepare(ctx, version, req))
        }
        RequestKind::CreatePartitions(req) => {
            Prepared::reply(handlers::create_partitions::prepare(ctx, req))
        }
        RequestKind::FindCoordinator(req) => Prepared::reply(handlers::find_coordinator::prepare(
            ctx, version, req, client,
        )),
        RequestKind::JoinGroup(req) => {
            Prepared::reply(handlers::join_group::prepare(ctx, version, req, client).await)
        }
        RequestKind::SyncGroup(req) => {
            Prepared::reply(handlers::sync_group::prepare(ctx, version, req).await)
        }
        RequestKind::Heartbeat(req) => {
            Prepared::reply(handlers::heartbeat::prepare(ctx, req).await)
        }
        RequestKind::LeaveGroup(req) => {
            Prepared::reply(handlers::leave_group::prepare(ctx, version, req).await)
        }
        RequestKind::OffsetCommit(req) => {
            Prepared::reply(handlers::offset_commit::prepare(ctx, req).await)
        }
        RequestKind::OffsetFetch(req) => {
            Prepared::reply(handlers::offset_fetch::prepare(ctx, version, req).await)
        }
        RequestKind::ListGroups(req) => {
            Prepared::reply(handlers::list_groups::prepare(ctx, version, req))
        }
        RequestKind::DescribeGroups(req) => {
            Prepared::reply(handlers::describe_groups::prepare(ctx, version, req).await)
        }
        RequestKind::DeleteGroups(req) => {
            Prepared::reply(handlers::delete_groups::prepare(ctx, req).await)
        }
        RequestKind::OffsetDelete(req) => {
            Prepared::reply(handlers::offset_delete::prepare(ctx, req).await)
        }
        RequestKind::ConsumerGroupHeartbeat(req) => Prepared::reply(
            handlers::consumer_group_heartbeat::prepare(ctx, version, req, client).await,
        ),
        RequestKind::ConsumerGroupDescribe(req) => {
            Prepared::reply(handlers::consumer_group_describe::prepare(ctx, version, req).await)
        }
        RequestKind::AlterConfigs(req) => {
            Prepared::reply(handlers::alter_configs::prepare(ctx, req))
        }
        RequestKind::IncrementalAlterConfigs(req) => {
            Prepared::reply(handlers::incremental_alter_configs::prepare(ctx, req))
        }
        RequestKind::ElectLeaders(req) => {
            Prepared::reply(handlers::elect_leaders::prepare(ctx, version, req))
        }
        RequestKind::AlterPartitionReassignments(req) => {
            Prepared::reply(handlers::partition_reassignments::alter(ctx, req))
        }
        RequestKind::ListPartitionReassignments(req) => {
            Prepared::reply(handlers::partition_reassignments::list(ctx, req))
        }
        RequestKind::DescribeQuorum(req) => {
            Prepared::reply(handlers::describe_quorum::prepare(ctx, req))
        }
        RequestKind::DescribeCluster(req) => Prepared::reply(handlers::describe_cluster::prepare(
            ctx, version, req, client,
        )),
        RequestKind::DescribeLogDirs(req) => {
            Prepared::reply(handlers::describe_log_dirs::prepare(ctx, req))
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            Prepared::reply(handlers::offset_for_leader_epoch::prepare(ctx, req))
        }
        RequestKind::DeleteRecords(req) => {
            Prepared::reply(handlers::delete_records::prepare(ctx, req))
        }
        RequestKind::InitProducerId(req) => {
            Prepared::reply(handlers::init_producer_id::prepare(ctx, version, req).await)
        }
        RequestKind::AddPartitionsToTxn(req) => {
            Prepared::reply(handlers::add_partitions_to_txn::prepare(ctx, version, req).await)
        }
        RequestKind::AddOffsetsToTxn(req) => {
            Prepared::reply(handlers::add_offsets_to_txn::prepare(ctx, version, req).await)
        }
        RequestKind::TxnOffsetCommit(req) => {
            Prepared::reply(handlers::txn_offset_commit::prepare(ctx, req).await)
        }
        RequestKind::EndTxn(req) => {
            Prepared::reply(handlers::end_txn::prepare(ctx, version, req).await)
        }
        RequestKind::WriteTxnMarkers(req) => {
            Prepared::reply(handlers::write_txn_markers::prepare(ctx, req))
        }
        RequestKind::DescribeProducers(req) => {
            Prepared::reply(handlers::describe_producers::prepare(ctx, req))
        }
        RequestKind::ListTransactions(req) => {
            Prepared::reply(handlers::list_transactions::prepare(ctx, req))
        }
        RequestKind::DescribeTransactions(req) => {
            Prepared::reply(handlers::describe_transactions::prepare(ctx, req).await)
        }
        RequestKind::DescribeTopicPartitions(req) => {
            Prepared::reply(handlers::describe_topic_partitions::prepare(ctx, req))
        }
        RequestKind::DescribeConfigs(req) => {
            Prepared::reply(handlers::describe_configs::prepare(ctx, version, req))
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            Prepared::reply(handlers::describe_user_scram_credentials::prepare(ctx, req))
        }
        RequestKind::AlterUserScramCredentials(req) => {
            Prepared::reply(handlers::alter_user_scram_credentials::prepare(ctx, req))
        }
        RequestKind::CreateAcls(req) => {
            Prepared::reply(handlers::create_acls::prepare(ctx, req, &view))
        }
        RequestKind::DescribeAcls(req) => {
            Prepared::reply(handlers::describe_acls::prepare(ctx, req, &view))
        }
        RequestKind::DeleteAcls(req) => {
            Prepared::reply(handlers::delete_acls::prepare(ctx, req, &view))
        }
        RequestKind::DescribeClientQuotas(req) => {
            Prepared::reply(handlers::describe_client_quotas::prepare(ctx, req))
        }
        RequestKind::AlterClientQuotas(req) => {
            Prepared::reply(handlers::alter_client_quotas::prepare(ctx, req))
        }
        RequestKind::SaslHandshake(_) => {
            Prepared::reply(Box::pin(handlers::sasl_handshake::handshake()))
        }
        RequestKind::SaslAuthenticate(_) => {
            Prepared::reply(Box::pin(handlers::sasl_handshake::authenticate()))
        }
        _ => return None,
    };
    if let Some(patch) = patch {
        let response = prepared.response;
        prepared.response = Box::pin(async move {
            let mut response = response.await;
            patch(&mut response);
            response
        });
    }
    Some(prepared)
}
