//! FindCoordinator v0-v4: this broker coordinates every consumer group (key type 0) and
//! every transactional id (key type 1). v4 answers a batch of keys. Any other key type is
//! an INVALID_REQUEST, as in Kafka.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::text;
use crate::protocol::context::ClientInfo;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: FindCoordinatorRequest,
    client: &ClientInfo,
) -> ResponseFuture {
    let (host, port) = ctx.advertised_for(&client.listener);
    let node = BrokerId(ctx.config.node_id);
    let error = if req.key_type == 0 || req.key_type == 1 {
        0
    } else {
        ResponseError::InvalidRequest.code()
    };
    let response = if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key: StrBytes| {
                let c = Coordinator::default().with_key(key).with_error_code(error);
                if error == 0 {
                    c.with_node_id(node)
                        .with_host(text(host.clone()))
                        .with_port(port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else if error == 0 {
        FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(text(host))
            .with_port(port)
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    };
    Box::pin(async move { ResponseKind::FindCoordinator(response) })
}
