//! AlterConfigs v0-v2 (every override replaced by the given set) and the shared answer for
//! IncrementalAlterConfigs. Topics (resource type 2) and this broker (type 4: resource
//! name "" for the cluster-wide default layer, the node id for this broker's layer):
//! changed configs are persisted by the metadata actor and applied to the partitions at
//! once.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::broker_config::BrokerLayer;
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::topic_config::ConfigChange;

pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

/// The answer for one resource: ready now, or the metadata actor's.
pub enum Pending {
    Refused(i16, String),
    Asked(Option<crate::actors::Reply<Result<(), MetadataError>>>),
}

/// Sends one topic's changes to the metadata actor (in request order).
pub fn ask_alter(
    ctx: &BrokerContext,
    resource_type: i8,
    name: &StrBytes,
    changes: Result<Vec<ConfigChange>, String>,
    replace: bool,
    validate_only: bool,
) -> Pending {
    let changes = match changes {
        Err(reason) => return Pending::Refused(ResponseError::InvalidRequest.code(), reason),
        Ok(changes) => changes,
    };
    match resource_type {
        TOPIC => Pending::Asked(ask(&ctx.metadata, |reply| MetadataMsg::AlterTopicConfigs {
            topic: name.to_string(),
            changes,
            replace,
            validate_only,
            reply,
        })),
        BROKER => {
            let layer = if name.is_empty() {
                BrokerLayer::ClusterDefault
            } else if name.as_str() == ctx.config.node_id.to_string() {
                BrokerLayer::PerBroker
            } else {
                return Pending::Refused(
                    ResponseError::InvalidRequest.code(),
                    format!(
                        "this broker is node {}, not {}",
                        ctx.config.node_id,
                        name.as_str()
                    ),
                );
            };
            Pending::Asked(ask(&ctx.metadata, |reply| {
                MetadataMsg::AlterBrokerConfigs {
                    layer,
                    changes,
                    replace,
                    validate_only,
                    reply,
                }
            }))
        }
        other => Pending::Refused(
            ResponseError::InvalidRequest.code(),
            format!("configs of resource type {other} cannot be changed here"),
        ),
    }
}

/// (error code, message) once the metadata actor answered.
pub async fn outcome(pending: Pending) -> (i16, Option<StrBytes>) {
    let result = match pending {
        Pending::Refused(code, reason) => return (code, Some(text(reason))),
        Pending::Asked(Some(rx)) => rx.await.unwrap_or(Err(MetadataError::Unavailable)),
        Pending::Asked(None) => Err(MetadataError::Unavailable),
    };
    match result {
        Ok(()) => (0, None),
        Err(err) => (err.code(), Some(text(err.to_string()))),
    }
}

pub fn prepare(ctx: &BrokerContext, req: AlterConfigsRequest) -> ResponseFuture {
    let pending: Vec<_> = req
        .resources
        .into_iter()
        .map(|r| {
            let changes = r
                .configs
                .into_iter()
                .map(|c| match c.value {
                    Some(v) => Ok(ConfigChange::Set(c.name.to_string(), v.to_string())),
                    None => Err(format!("no value for {}", c.name.as_str())),
                })
                .collect::<Result<Vec<_>, _>>();
            let asked = ask_alter(
                ctx,
                r.resource_type,
                &r.resource_name,
                changes,
                true,
                req.validate_only,
            );
            (r.resource_type, r.resource_name, asked)
        })
        .collect();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(pending.len());
        for (resource_type, name, asked) in pending {
            let (code, message) = outcome(asked).await;
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(name)
                    .with_error_code(code)
                    .with_error_message(message),
            );
        }
        ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
    })
}
