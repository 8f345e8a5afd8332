//! Shared by the group handlers: finding a group's coordinator actor, and the bound on
//! committed offset metadata.

use kafka_protocol::protocol::StrBytes;
use ractor::ActorRef;

use crate::actors::group::GroupMsg;
use crate::actors::group_registry::GroupRegistryMsg;
use crate::protocol::context::ask;
use crate::protocol::BrokerContext;

/// The group's actor (created on demand when `create`); None when there is none. Err:
/// the error code when this broker does not coordinate the group now (cluster mode:
/// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE).
pub async fn group(
    ctx: &BrokerContext,
    group_id: &str,
    create: bool,
) -> Result<Option<ActorRef<GroupMsg>>, i16> {
    let Some(rx) = ask(&ctx.groups, |reply| GroupRegistryMsg::Get {
        group_id: group_id.to_string(),
        create,
        reply,
    }) else {
        return Ok(None);
    };
    rx.await.unwrap_or(Ok(None))
}

/// True when a committed offset's metadata is longer than offset_metadata_max_bytes:
/// OFFSET_METADATA_TOO_LARGE for that partition, as Kafka's group coordinator answers.
pub fn metadata_too_large(ctx: &BrokerContext, metadata: Option<&StrBytes>) -> bool {
    metadata.is_some_and(|m| m.len() > ctx.config.offset_metadata_max_bytes)
}
