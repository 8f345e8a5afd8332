//! DescribeConfigs v1-v4 for topics (resource type 2) and this broker (type 4). Every
//! known config is listed with its effective value and Kafka's source: DYNAMIC_TOPIC_CONFIG
//! (1), DYNAMIC_BROKER_CONFIG (2), DYNAMIC_DEFAULT_BROKER_CONFIG (3), STATIC_BROKER_CONFIG
//! (4) or DEFAULT_CONFIG (5); with include_synonyms, every layer that has a value, highest
//! precedence first (see `broker_config`).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::text;
use crate::broker_config::{self, BrokerDefaults, BrokerLayer, Synonym, SOURCE_STATIC_BROKER};
use crate::config_docs;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::topic_config::{self, ConfigEntry};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub fn prepare(ctx: &BrokerContext, version: i16, req: DescribeConfigsRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let config = ctx.config.clone();
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let defaults = BrokerDefaults {
                config: &config,
                dynamic: &routes.broker_configs,
            };
            let entries: Result<Vec<ConfigEntry>, (i16, String)> = match resource.resource_type {
                TOPIC => match routes.topic(&name) {
                    Some(route) => Ok(topic_config::describe(&route.configs, defaults)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition.code(),
                        format!("topic {name} does not exist"),
                    )),
                },
                BROKER if name.is_empty() => {
                    Ok(broker_entries(defaults, BrokerLayer::ClusterDefault))
                }
                BROKER if name == config.node_id.to_string() => {
                    Ok(broker_entries(defaults, BrokerLayer::PerBroker))
                }
                BROKER => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("this broker is node {}, not {name}", config.node_id),
                )),
                other => Err((
                    ResponseError::InvalidRequest.code(),
                    format!("resource type {other} is not supported"),
                )),
            };
            match entries {
                Ok(entries) => {
                    // Null or empty: every config (Kafka treats both so).
                    let keys = resource
                        .configuration_keys
                        .as_ref()
                        .filter(|k| !k.is_empty());
                    let configs = entries
                        .into_iter()
                        .filter(|e| keys.is_none_or(|k| k.iter().any(|key| key.as_str() == e.name)))
                        .map(|e| {
                            let synonyms = if req.include_synonyms {
                                e.synonyms
                                    .into_iter()
                                    .map(|s| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(text(s.name))
                                            .with_value(Some(text(s.value)))
                                            .with_source(s.source)
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            // KIP-569 (v3+): the type always, the text when asked.
                            let topic_default = match resource.resource_type {
                                BROKER => broker_config::topic_config_of(&e.name),
                                _ => None,
                            };
                            let (config_type, documentation) =
                                config_docs::describe(&e.name, topic_default);
                            let documentation = documentation
                                .filter(|_| version >= 3 && req.include_documentation)
                                .map(text);
                            DescribeConfigsResourceResult::default()
                                .with_config_type(if version >= 3 { config_type } else { 0 })
                                .with_documentation(documentation)
                                .with_name(text(e.name))
                                .with_value(Some(text(e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source)
                                .with_is_sensitive(e.sensitive)
                                .with_synonyms(synonyms)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                Err((code, message)) => base
                    .with_error_code(code)
                    .with_error_message(Some(text(message))),
            }
        })
        .collect();
    Box::pin(async move {
        ResponseKind::DescribeConfigs(DescribeConfigsResponse::default().with_results(results))
    })
}

/// The broker resource: config.toml's read-only settings, then the dynamic ones (only
/// the cluster-wide values set, for resource name "").
fn broker_entries(defaults: BrokerDefaults<'_>, layer: BrokerLayer) -> Vec<ConfigEntry> {
    let fixed = match layer {
        BrokerLayer::PerBroker => broker_config::static_rows(defaults.config),
        BrokerLayer::ClusterDefault => Vec::new(),
    };
    let fixed = fixed.into_iter().map(|(name, value)| {
        let row = Synonym {
            name: name.to_string(),
            value,
            source: SOURCE_STATIC_BROKER,
        };
        entry(row, Vec::new(), true)
    });
    let dynamic = defaults
        .describe(layer)
        .into_iter()
        .map(|(row, synonyms)| entry(row, synonyms, false));
    fixed.chain(dynamic).collect()
}

fn entry(row: Synonym, mut synonyms: Vec<Synonym>, read_only: bool) -> ConfigEntry {
    if synonyms.is_empty() {
        synonyms.push(row.clone());
    }
    ConfigEntry {
        name: row.name,
        value: row.value,
        source: row.source,
        read_only,
        sensitive: false,
        synonyms,
    }
}
