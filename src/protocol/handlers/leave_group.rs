//! LeaveGroup v0-v5: one member (v0-v2) or a batch of members by id or instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::group;
use super::text;
use crate::actors::group::GroupMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, version: i16, req: LeaveGroupRequest) -> ResponseFuture {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let rx = match group(ctx, req.group_id.0.as_str(), false).await {
        Ok(Some(actor)) => {
            let members = members.clone();
            ask(&actor, |reply| GroupMsg::Leave { members, reply })
        }
        Ok(None) => None,
        Err(error) => Some(crate::actors::Reply::ready(vec![error; members.len()])),
    };
    Box::pin(async move {
        let unknown = ResponseError::UnknownMemberId.code();
        let codes = match rx {
            Some(rx) => rx.await.unwrap_or_else(|_| {
                vec![ResponseError::CoordinatorNotAvailable.code(); members.len()]
            }),
            None => vec![unknown; members.len()],
        };
        let response = if version >= 3 {
            let entries = members
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(text(id))
                        .with_group_instance_id(instance.map(text))
                        .with_error_code(code)
                })
                .collect();
            LeaveGroupResponse::default().with_members(entries)
        } else {
            LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(unknown))
        };
        ResponseKind::LeaveGroup(response)
    })
}
