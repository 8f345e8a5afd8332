//! FindCoordinator v0-v4. v4 answers a batch of keys. Any key type but 0 (group) and 1
//! (transactional id) is an INVALID_REQUEST, as in Kafka.
//!
//! Single node: this broker coordinates everything. Cluster mode: a group's coordinator is
//! the leader of its `__consumer_offsets` partition (COORDINATOR_NOT_AVAILABLE while it has
//! none; the topic is created through the quorum when first needed, as Kafka does);
//! until `__transaction_state` exists, a transactional id is coordinated by the leader of
//! the `__consumer_offsets` partition its id hashes to, so every broker names the same one
//! (the broker asked would hand one producer's transactions to several coordinators, and
//! an EndTxn after a coordinator re-lookup would meet another broker's state). Its state
//! is still in that broker's own files: it does not survive the broker's loss.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info};

use super::text;
use crate::actors::metadata::{MetadataMsg, NewTopic};
use crate::coordinator::offsets_topic::{partition_for, OFFSETS_TOPIC};
use crate::protocol::context::{ask, ClientInfo};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

/// Where a key's coordinator is: (node, host, port), or an error code.
type Found = Result<(i32, String, i32), i16>;

pub fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: FindCoordinatorRequest,
    client: &ClientInfo,
) -> ResponseFuture {
    let ctx = ctx.clone();
    let (host, port) = ctx.advertised_for(&client.listener);
    let here: Found = Ok((ctx.config.node_id, host, port));
    Box::pin(async move {
        let keys: Vec<StrBytes> = if version >= 4 {
            req.coordinator_keys.clone()
        } else {
            vec![req.key.clone()]
        };
        let mut found = Vec::with_capacity(keys.len());
        for key in &keys {
            found.push(match req.key_type {
                0 | 1 if ctx.config.cluster_mode() => group_coordinator(&ctx, key.as_str()).await,
                0 | 1 => here.clone(),
                _ => Err(ResponseError::InvalidRequest.code()),
            });
        }
        let response = if version >= 4 {
            let coordinators = keys
                .into_iter()
                .zip(found)
                .map(|(key, found)| {
                    let c = Coordinator::default().with_key(key);
                    match found {
                        Ok((node, host, port)) => c
                            .with_node_id(BrokerId(node))
                            .with_host(text(host))
                            .with_port(port),
                        Err(error) => c
                            .with_error_code(error)
                            .with_node_id(BrokerId(-1))
                            .with_port(-1),
                    }
                })
                .collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            match found.into_iter().next().unwrap_or(Err(0)) {
                Ok((node, host, port)) => FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(node))
                    .with_host(text(host))
                    .with_port(port),
                Err(error) => FindCoordinatorResponse::default()
                    .with_error_code(error)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        };
        ResponseKind::FindCoordinator(response)
    })
}

/// Cluster mode: the leader of the group's `__consumer_offsets` partition.
async fn group_coordinator(ctx: &BrokerContext, group_id: &str) -> Found {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let routes = ctx.routes();
    let Some(route) = routes.topic(OFFSETS_TOPIC) else {
        create_offsets_topic(ctx).await;
        return Err(unavailable);
    };
    let index = partition_for(group_id, route.partitions.len() as i32);
    let leader = route.placement(index).map_or(-1, |p| p.leader);
    let endpoint = routes
        .cluster
        .as_ref()
        .and_then(|c| c.endpoint(leader).cloned());
    match endpoint {
        Some(broker) => Ok((leader, broker.host, broker.port)),
        None => {
            debug!(group = %group_id, partition = index, leader, "FindCoordinator: the group's __consumer_offsets partition has no live leader.");
            Err(unavailable)
        }
    }
}

/// Creates `__consumer_offsets` through the quorum: offsets_topic_num_partitions
/// partitions, offsets_topic_replication_factor replicas capped at the live brokers, and
/// compacted, as Kafka creates it. Another broker creating it first is fine.
async fn create_offsets_topic(ctx: &BrokerContext) {
    let live = ctx
        .routes()
        .cluster
        .as_ref()
        .map_or(1, |c| c.brokers.values().filter(|b| !b.fenced).count());
    let replication_factor = ctx
        .config
        .offsets_topic_replication_factor
        .min(live.clamp(1, i16::MAX as usize) as i16);
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: ctx.config.offsets_topic_num_partitions,
        replication_factor,
        configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
        assignments: None,
    };
    let Some(rx) = ask(&ctx.metadata, |reply| MetadataMsg::CreateTopics {
        topics: vec![topic],
        validate_only: false,
        reply,
    }) else {
        return;
    };
    match rx.await.ok().and_then(|r| r.into_iter().next()) {
        Some(Ok(_)) => info!(
            partitions = ctx.config.offsets_topic_num_partitions,
            replication_factor, "Created the internal topic __consumer_offsets."
        ),
        Some(Err(err)) => debug!(%err, "__consumer_offsets not created here."),
        None => {}
    }
}
