//! ConsumerGroupHeartbeat v0-v1 (KIP-848): a member of a consumer group joins, stays,
//! reconciles and leaves through it; the group's actor assigns. v1 (KIP-1082) requires the
//! member id on every request, the client generating it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ResponseKind,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::groups::group;
use super::text;
use crate::actors::group::GroupMsg;
use crate::actors::routing::RoutingTable;
use crate::coordinator::assignors;
use crate::coordinator::consumer_group::{
    ConsumerHeartbeat, ConsumerHeartbeatResult, TopicCatalog,
};
use crate::protocol::context::{ask, ClientInfo};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

impl TopicCatalog for RoutingTable {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        let route = RoutingTable::topic(self, name)?;
        let count = route.partitions.len().max(route.placements.len());
        Some((route.id, i32::try_from(count).unwrap_or(i32::MAX)))
    }

    fn names(&self) -> Vec<String> {
        self.topics().into_iter().map(|t| t.name.clone()).collect()
    }
}

fn refused(error: ResponseError, message: &str) -> ResponseKind {
    ResponseKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message))),
    )
}

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: ConsumerGroupHeartbeatRequest,
    client: &ClientInfo,
) -> ResponseFuture {
    if req.group_id.0.is_empty() {
        let response = refused(ResponseError::InvalidRequest, "GroupId can't be empty.");
        return Box::pin(async move { response });
    }
    if version >= 1 && req.member_id.is_empty() {
        let response = refused(ResponseError::InvalidRequest, "MemberId can't be empty.");
        return Box::pin(async move { response });
    }
    let owned = req.topic_partitions.map(|topics| {
        let mut owned = assignors::Assignment::new();
        for t in topics {
            owned.entry(t.topic_id).or_default().extend(t.partitions);
        }
        owned
    });
    let request = ConsumerHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
    };
    let topics: Arc<dyn TopicCatalog> = ctx.routes();
    let rx = match group(ctx, req.group_id.0.as_str(), true).await {
        Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::ConsumerHeartbeat {
            request,
            topics,
            reply,
        }),
        Ok(None) => None,
        Err(error) => Some(crate::actors::Reply::ready(ConsumerHeartbeatResult {
            error,
            ..ConsumerHeartbeatResult::default()
        })),
    };
    Box::pin(async move {
        let result = match rx {
            Some(rx) => rx.await.unwrap_or(ConsumerHeartbeatResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..ConsumerHeartbeatResult::default()
            }),
            None => ConsumerHeartbeatResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..ConsumerHeartbeatResult::default()
            },
        };
        ResponseKind::ConsumerGroupHeartbeat(response(result))
    })
}

fn response(result: ConsumerHeartbeatResult) -> ConsumerGroupHeartbeatResponse {
    let assignment = result.assignment.map(|a: BTreeMap<Uuid, _>| {
        let topics = a
            .into_iter()
            .map(|(id, ps)| {
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_partitions(ps.into_iter().collect())
            })
            .collect();
        Assignment::default().with_topic_partitions(topics)
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(result.error)
        .with_error_message(result.error_message.map(text))
        .with_member_id(result.member_id.map(text))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms)
        .with_assignment(assignment)
}
