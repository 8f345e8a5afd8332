//! Shared by the group handlers: finding a group's coordinator actor.

use ractor::ActorRef;

use crate::actors::group::GroupMsg;
use crate::actors::group_registry::GroupRegistryMsg;
use crate::protocol::context::ask;
use crate::protocol::BrokerContext;

/// The group's actor (created on demand when `create`); None when there is none.
pub async fn group(
    ctx: &BrokerContext,
    group_id: &str,
    create: bool,
) -> Option<ActorRef<GroupMsg>> {
    let rx = ask(&ctx.groups, |reply| GroupRegistryMsg::Get {
        group_id: group_id.to_string(),
        create,
        reply,
    })?;
    rx.await.ok().flatten()
}
