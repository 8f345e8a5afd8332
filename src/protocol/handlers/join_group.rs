//! JoinGroup v0-v9. The answer waits inside the group actor until the rebalance completes
//! (or the member must first learn its id: MEMBER_ID_REQUIRED, v4+).

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::group;
use super::text;
use crate::actors::group::{GroupMsg, JoinRequest, JoinResult};
use crate::protocol::context::{ask, ClientInfo};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: JoinGroupRequest,
    client: &ClientInfo,
) -> ResponseFuture {
    let group_id = req.group_id.0.to_string();
    let request = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: Duration::from_millis(
            if version == 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            }
            .max(0) as u64,
        ),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let rx = if group_id.is_empty() {
        None
    } else {
        match group(ctx, &group_id, true).await {
            Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::Join { request, reply }),
            Ok(None) => None,
            Err(error) => Some(crate::actors::Reply::ready(JoinResult {
                error,
                generation: -1,
                ..JoinResult::default()
            })),
        }
    };
    let invalid = group_id.is_empty();
    Box::pin(async move {
        let result = match rx {
            Some(rx) => rx.await.unwrap_or(JoinResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..JoinResult::default()
            }),
            None => JoinResult {
                error: if invalid {
                    ResponseError::InvalidGroupId.code()
                } else {
                    ResponseError::CoordinatorNotAvailable.code()
                },
                generation: -1,
                ..JoinResult::default()
            },
        };
        let members = result
            .members
            .into_iter()
            .map(|(id, instance, metadata)| {
                let m = JoinGroupResponseMember::default()
                    .with_member_id(text(id))
                    .with_metadata(metadata);
                if version >= 5 {
                    m.with_group_instance_id(instance.map(text))
                } else {
                    m
                }
            })
            .collect();
        let mut response = JoinGroupResponse::default()
            .with_error_code(result.error)
            .with_generation_id(result.generation)
            .with_leader(text(result.leader))
            .with_member_id(text(result.member_id))
            .with_members(members);
        response = if version >= 7 {
            response
                .with_protocol_type(result.protocol_type.map(text))
                .with_protocol_name(result.protocol_name.map(text))
        } else {
            response.with_protocol_name(Some(text(result.protocol_name.unwrap_or_default())))
        };
        if version >= 9 {
            response = response.with_skip_assignment(result.skip_assignment);
        }
        ResponseKind::JoinGroup(response)
    })
}
