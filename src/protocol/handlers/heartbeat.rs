//! Heartbeat v0-v4: keeps a member's session alive and tells it of a pending rebalance.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::group;
use crate::actors::group::GroupMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, req: HeartbeatRequest) -> ResponseFuture {
    let rx = match group(ctx, req.group_id.0.as_str(), false).await {
        Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::Heartbeat {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.map(|s| s.to_string()),
            generation: req.generation_id,
            reply,
        }),
        Ok(None) => None,
        Err(error) => Some(crate::actors::Reply::ready(error)),
    };
    Box::pin(async move {
        let error = match rx {
            Some(rx) => rx
                .await
                .unwrap_or(ResponseError::CoordinatorNotAvailable.code()),
            None => ResponseError::UnknownMemberId.code(),
        };
        ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(error))
    })
}
