//! DescribeCluster v0-v2: this one broker (in a cluster, every registered one that is not
//! fenced), the cluster id and the controller (this broker, which forwards what a
//! controller does to the quorum's leader).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ResponseKind,
};

use super::text;
use crate::protocol::context::ClientInfo;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: DescribeClusterRequest,
    client: &ClientInfo,
) -> ResponseFuture {
    let (host, port) = ctx.advertised_for(&client.listener);
    let node = BrokerId(ctx.config.node_id);
    let brokers = match &ctx.routes().cluster {
        Some(cluster) => cluster
            .brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, b)| {
                let (host, port) = b.endpoint_for(&client.listener);
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(*id))
                    .with_host(text(host.to_string()))
                    .with_port(port)
                    .with_rack(b.rack.clone().map(text))
            })
            .collect(),
        None => vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(text(host))
            .with_port(port)],
    };
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(text(ctx.config.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN);
    if version >= 1 {
        // Only broker endpoints (1) are served; KIP-919 controller endpoints are not.
        response = response.with_endpoint_type(req.endpoint_type.max(1));
    }
    Box::pin(async move { ResponseKind::DescribeCluster(response) })
}
