//! IncrementalAlterConfigs v0-v1: SET, DELETE, APPEND and SUBTRACT (the last two on list
//! configs such as cleanup.policy) on topic configs and dynamic broker configs, validated
//! with Kafka's error codes, persisted, and applied to the partitions at once.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};

use super::alter_configs::{ask_alter, outcome};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::topic_config::ConfigChange;

pub fn prepare(ctx: &BrokerContext, req: IncrementalAlterConfigsRequest) -> ResponseFuture {
    let pending: Vec<_> = req
        .resources
        .into_iter()
        .map(|r| {
            let changes = r
                .configs
                .into_iter()
                .map(|c| {
                    let name = c.name.to_string();
                    let value = c.value.map(|v| v.to_string());
                    match (c.config_operation, value) {
                        (0, Some(v)) => Ok(ConfigChange::Set(name, v)),
                        (1, _) => Ok(ConfigChange::Delete(name)),
                        (2, Some(v)) => Ok(ConfigChange::Append(name, v)),
                        (3, Some(v)) => Ok(ConfigChange::Subtract(name, v)),
                        (op @ 0..=3, None) => {
                            Err(format!("operation {op} on {name} needs a value"))
                        }
                        (op, _) => Err(format!("unknown config operation {op}")),
                    }
                })
                .collect::<Result<Vec<_>, _>>();
            let asked = ask_alter(
                ctx,
                r.resource_type,
                &r.resource_name,
                changes,
                false,
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
        ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(responses),
        )
    })
}
