//! ConsumerGroupDescribe v0-v1 (KIP-848): a consumer group's epochs, assignor and members
//! with their subscriptions, current and target assignments. A group that does not exist,
//! or is a classic group, is GROUP_ID_NOT_FOUND, as Kafka answers.

use futures::future::join_all;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;

use super::groups::group;
use super::text;
use crate::actors::group::{ConsumerGroupDescription, GroupMsg};
use crate::actors::routing::RoutingTable;
use crate::coordinator::assignors;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

/// KIP-848's member type: 1, a member of the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: ConsumerGroupDescribeRequest,
) -> ResponseFuture {
    let mut asks = Vec::new();
    for id in req.group_ids {
        let (rx, error) = match group(ctx, id.0.as_str(), false).await {
            Ok(Some(actor)) => (ask(&actor, |reply| GroupMsg::ConsumerDescribe { reply }), 0),
            Ok(None) => (None, 0),
            Err(error) => (None, error),
        };
        asks.push((id, rx, error));
    }
    let routes = ctx.routes();
    Box::pin(async move {
        let groups = join_all(asks.into_iter().map(|(id, rx, error)| {
            let routes = routes.clone();
            async move {
                let base = DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_authorized_operations(i32::MIN);
                if error != 0 {
                    return base.with_error_code(error);
                }
                let found = match rx {
                    Some(rx) => rx.await.ok(),
                    None => None,
                };
                let not_found = |message: String| {
                    base.clone()
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(text(message)))
                };
                match found {
                    None => not_found(format!("Group {} not found.", id.0)),
                    Some(None) => not_found(format!("Group {} is not a consumer group.", id.0)),
                    Some(Some(d)) => described(base, d, &routes, version),
                }
            }
        }))
        .await;
        ResponseKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeResponse::default().with_groups(groups),
        )
    })
}

fn described(
    base: DescribedGroup,
    d: ConsumerGroupDescription,
    routes: &RoutingTable,
    version: i16,
) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let member = Member::default()
                .with_member_id(text(m.member_id))
                .with_instance_id(m.instance_id.map(text))
                .with_rack_id(m.rack_id.map(text))
                .with_member_epoch(m.member_epoch)
                .with_client_id(text(m.client_id))
                .with_client_host(text(m.client_host))
                .with_subscribed_topic_names(
                    m.subscribed_topic_names
                        .into_iter()
                        .map(|n| TopicName(text(n)))
                        .collect(),
                )
                .with_subscribed_topic_regex(m.subscribed_topic_regex.map(text))
                .with_assignment(assignment(m.assignment, routes))
                .with_target_assignment(assignment(m.target_assignment, routes));
            if version >= 1 {
                member.with_member_type(CONSUMER_MEMBER)
            } else {
                member
            }
        })
        .collect();
    base.with_group_state(text(d.state))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(text(d.assignor))
        .with_members(members)
}

fn assignment(a: assignors::Assignment, routes: &RoutingTable) -> Assignment {
    let topics = a
        .into_iter()
        .map(|(id, ps)| {
            let name = routes
                .topic_by_id(&id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(TopicName(text(name)))
                .with_partitions(ps.into_iter().collect())
        })
        .collect();
    Assignment::default().with_topic_partitions(topics)
}
