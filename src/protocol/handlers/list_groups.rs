//! ListGroups v0-v5, with the state filter (v4+) and the type filter (v5+): classic groups
//! and consumer groups (KIP-848, protocol type `consumer`, their own states).

use futures::future::join_all;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind};

use super::text;
use crate::actors::group::GroupMsg;
use crate::actors::group_registry::GroupRegistryMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, version: i16, req: ListGroupsRequest) -> ResponseFuture {
    let all = ask(&ctx.groups, |reply| GroupRegistryMsg::All { reply });
    Box::pin(async move {
        let actors = match all {
            Some(rx) => rx.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let descriptions = join_all(
            actors
                .iter()
                .filter_map(|a| ask(a, |reply| GroupMsg::Describe { reply })),
        )
        .await;
        let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
        let types: Vec<String> = req
            .types_filter
            .iter()
            .map(|s| s.to_string().to_lowercase())
            .collect();
        let mut groups: Vec<ListedGroup> = descriptions
            .into_iter()
            .flatten()
            .filter(|d| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(d.state_name()))
            })
            .filter(|d| types.is_empty() || types.iter().any(|t| t == d.group_type.name()))
            .map(|d| {
                let g = ListedGroup::default()
                    .with_group_id(GroupId(text(d.group_id.clone())))
                    .with_protocol_type(text(d.protocol_type.clone()));
                let g = if version >= 4 {
                    g.with_group_state(text(d.state_name()))
                } else {
                    g
                };
                if version >= 5 {
                    g.with_group_type(text(d.group_type.name()))
                } else {
                    g
                }
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
        ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(groups))
    })
}
