//! Consumer group protocol checks (KIP-848), as Kafka's KafkaApis makes them:
//! ConsumerGroupHeartbeat needs READ on the group and DESCRIBE on every subscribed topic
//! named (TOPIC_AUTHORIZATION_FAILED naming the others); ConsumerGroupDescribe needs
//! DESCRIBE on each group, with KIP-430's authorized operations when asked.

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{serve_then, split, Checked, GROUP_DENIED, TOPIC_DENIED};
use crate::security::acl::{AclOperation as Op, ResourceType};
use crate::security::authorizer_view::AuthorizerView;

pub fn consumer_group_heartbeat(
    req: ConsumerGroupHeartbeatRequest,
    view: &AuthorizerView,
) -> Checked {
    let refuse = |code: i16, message: Option<String>| {
        Checked::Refuse(ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        ))
    };
    if !view.allows_group(Op::Read, &req.group_id) {
        return refuse(GROUP_DENIED, None);
    }
    if let Some(names) = &req.subscribed_topic_names {
        let denied: Vec<&str> = names
            .iter()
            .filter(|t| !view.allows_topic(Op::Describe, t))
            .map(|t| t.0.as_str())
            .collect();
        if !denied.is_empty() {
            let message = format!("Unauthorized topics: {}", denied.join(", "));
            return refuse(TOPIC_DENIED, Some(message));
        }
    }
    Checked::Serve(RequestKind::ConsumerGroupHeartbeat(req), None)
}

pub fn consumer_group_describe(
    mut req: ConsumerGroupDescribeRequest,
    view: &AuthorizerView,
) -> Checked {
    let (kept, denied) = split(std::mem::take(&mut req.group_ids), |g| {
        view.allows_group(Op::Describe, g)
    });
    req.group_ids = kept;
    let with_operations = req.include_authorized_operations;
    let view = view.clone();
    serve_then(RequestKind::ConsumerGroupDescribe(req), move |resp| {
        let ResponseKind::ConsumerGroupDescribe(r) = resp else {
            return;
        };
        if with_operations {
            for group in r.groups.iter_mut().filter(|g| g.error_code == 0) {
                group.authorized_operations =
                    view.authorized_operations(ResourceType::Group, &group.group_id);
            }
        }
        for group in denied {
            r.groups.push(
                DescribedGroup::default()
                    .with_group_id(group)
                    .with_error_code(GROUP_DENIED)
                    .with_authorized_operations(i32::MIN),
            );
        }
    })
}
