//! DescribeGroups v0-v6: state, protocol and members with their metadata and assignment.
//! A group that does not exist is described as Dead, as Kafka does; from v6 (KIP-1043) with
//! GROUP_ID_NOT_FOUND and a message too. A consumer group (KIP-848) is answered the same
//! way ("is not a classic group"), as Kafka 4 does; ConsumerGroupDescribe describes it.

use futures::future::join_all;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::group;
use super::text;
use crate::actors::group::{GroupMsg, GroupType};
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: DescribeGroupsRequest,
) -> ResponseFuture {
    let mut asks = Vec::new();
    for id in req.groups {
        let (rx, error) = match group(ctx, id.0.as_str(), false).await {
            Ok(Some(actor)) => (ask(&actor, |reply| GroupMsg::Describe { reply }), 0),
            Ok(None) => (None, 0),
            Err(error) => (None, error),
        };
        asks.push((id, rx, error));
    }
    Box::pin(async move {
        let groups = join_all(asks.into_iter().map(|(id, rx, error)| async move {
            let base = DescribedGroup::default()
                .with_group_id(id)
                .with_authorized_operations(i32::MIN);
            if error != 0 {
                // Not the coordinator now (cluster mode).
                return base.with_error_code(error);
            }
            let found = match rx {
                Some(rx) => rx.await.ok(),
                None => None,
            };
            // A consumer group (KIP-848) is not described here, as Kafka 4 answers.
            let missing = match &found {
                None => Some("not found"),
                Some(d) if d.group_type == GroupType::Consumer => Some("is not a classic group"),
                Some(_) => None,
            };
            let (Some(d), None) = (found, missing) else {
                let dead = base.with_group_state(text("Dead"));
                return if version >= 6 {
                    let why = missing.unwrap_or_default();
                    let message = format!("Group {} {why}.", dead.group_id.0);
                    dead.with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(text(message)))
                } else {
                    dead
                };
            };
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    let member = DescribedGroupMember::default()
                        .with_member_id(text(m.member_id))
                        .with_client_id(text(m.client_id))
                        .with_client_host(text(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if version >= 4 {
                        member.with_group_instance_id(m.instance_id.map(text))
                    } else {
                        member
                    }
                })
                .collect();
            base.with_group_state(text(d.state.name()))
                .with_protocol_type(text(d.protocol_type))
                .with_protocol_data(text(d.protocol))
                .with_members(members)
        }))
        .await;
        ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups))
    })
}
