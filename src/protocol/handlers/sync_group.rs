//! SyncGroup v0-v5: the leader hands in every member's assignment; every member's answer
//! waits in the group actor until then and carries its own assignment.

use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::ResponseError;

use super::groups::group;
use super::text;
use crate::actors::group::{GroupMsg, SyncResult};
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, version: i16, req: SyncGroupRequest) -> ResponseFuture {
    let rx = match group(ctx, req.group_id.0.as_str(), false).await {
        Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::Sync {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.map(|s| s.to_string()),
            generation: req.generation_id,
            protocol_type: req.protocol_type.map(|s| s.to_string()),
            protocol_name: req.protocol_name.map(|s| s.to_string()),
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
            reply,
        }),
        Ok(None) => None,
        Err(error) => Some(crate::actors::Reply::ready(SyncResult {
            error,
            ..SyncResult::default()
        })),
    };
    Box::pin(async move {
        let result = match rx {
            Some(rx) => rx.await.unwrap_or(SyncResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..SyncResult::default()
            }),
            None => SyncResult {
                error: ResponseError::UnknownMemberId.code(),
                ..SyncResult::default()
            },
        };
        let mut response = SyncGroupResponse::default()
            .with_error_code(result.error)
            .with_assignment(result.assignment);
        if version >= 5 {
            response = response
                .with_protocol_type(result.protocol_type.map(text))
                .with_protocol_name(result.protocol_name.map(text));
        }
        ResponseKind::SyncGroup(response)
    })
}
