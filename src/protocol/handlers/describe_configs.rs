//! DescribeConfigs v1-v4 for topics (resource type 2) and this broker (type 4). Every
//! known config is listed with its effective value and source: DYNAMIC_TOPIC_CONFIG (1)
//! for a topic override, STATIC_BROKER_CONFIG (4) for the broker's file, DEFAULT_CONFIG (5).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::text;
use crate::config::Config;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::topic_config::{self, ConfigEntry};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub fn prepare(ctx: &BrokerContext, _version: i16, req: DescribeConfigsRequest) -> ResponseFuture {
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
            let entries: Result<Vec<(ConfigEntry, i8)>, (i16, String)> =
                match resource.resource_type {
                    TOPIC => match routes.topic(&name) {
                        Some(route) => Ok(topic_config::describe(&route.configs, &config)
                            .into_iter()
                            .map(|e| {
                                let source = if e.is_override {
                                    SOURCE_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                (e, source)
                            })
                            .collect()),
                        None => Err((
                            ResponseError::UnknownTopicOrPartition.code(),
                            format!("topic {name} does not exist"),
                        )),
                    },
                    BROKER if name.is_empty() || name == config.node_id.to_string() => {
                        Ok(broker_entries(&config))
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
                        .filter(|(e, _)| {
                            keys.is_none_or(|k| k.iter().any(|key| key.as_str() == e.name))
                        })
                        .map(|(e, source)| {
                            let synonyms = if req.include_synonyms {
                                vec![DescribeConfigsSynonym::default()
                                    .with_name(text(e.name.clone()))
                                    .with_value(Some(text(e.value.clone())))
                                    .with_source(source)]
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(text(e.name))
                                .with_value(Some(text(e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(source)
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

fn broker_entries(config: &Config) -> Vec<(ConfigEntry, i8)> {
    let (host, port) = config.advertised();
    let rows = [
        ("broker.id", config.node_id.to_string()),
        ("node.id", config.node_id.to_string()),
        ("listeners", format!("PLAINTEXT://{}", config.listen)),
        ("advertised.listeners", format!("PLAINTEXT://{host}:{port}")),
        ("log.dirs", config.data_dir.display().to_string()),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
        ),
        ("num.partitions", config.default_partitions.to_string()),
        ("log.segment.bytes", config.log.segment_bytes.to_string()),
        (
            "log.index.interval.bytes",
            config.log.index_interval_bytes.to_string(),
        ),
        ("message.max.bytes", config.max_message_bytes.to_string()),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
        ),
        (
            "log.flush.interval.ms",
            config.log.flush_interval_ms.to_string(),
        ),
        ("default.replication.factor", "1".to_string()),
        ("min.insync.replicas", "1".to_string()),
    ];
    rows.into_iter()
        .map(|(name, value)| {
            (
                ConfigEntry {
                    name: name.to_string(),
                    value,
                    is_override: false,
                    read_only: true,
                    sensitive: false,
                },
                SOURCE_STATIC_BROKER,
            )
        })
        .collect()
}
