//! Dynamic broker configs through the real dispatch, without a socket: the cluster-wide
//! default layer (resource name "") under this broker's layer (its node id), DescribeConfigs
//! sources and synonyms in Kafka's order, validate_only, Kafka's error codes, AlterConfigs
//! replacing a layer, and both layers kept across a restart.

use std::sync::Arc;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::*;

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::protocol::BrokerContext;
use broker::storage::sim::SimStorage;
use broker::storage::Storage;

use crate::protocol_versions::{name, serve, text};

const BROKER: i8 = 4;
const TOPIC: i8 = 2;

fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        ..Config::default()
    }
}

/// One SET on the broker resource `resource`; the answer's error code.
async fn set(ctx: &BrokerContext, resource: &str, key: &str, value: &str, validate: bool) -> i16 {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate)
        .with_resources(vec![IncrementalResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(text(resource))
            .with_configs(vec![IncrementalConfig::default()
                .with_name(text(key))
                .with_config_operation(0)
                .with_value(Some(text(value)))])]);
    let ResponseKind::IncrementalAlterConfigs(r) = serve(
        ctx,
        ApiKey::IncrementalAlterConfigs,
        1,
        RequestKind::IncrementalAlterConfigs(req),
    )
    .await
    else {
        unreachable!()
    };
    r.responses[0].error_code
}

/// retention.ms of topic `t` as DescribeConfigs answers it: (value, source, synonyms as
/// (name, value, source)).
async fn retention_ms(ctx: &BrokerContext) -> (String, i8, Vec<(String, String, i8)>) {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(text("t"))
            .with_configuration_keys(Some(vec![text("retention.ms")]))]);
    let ResponseKind::DescribeConfigs(r) = serve(
        ctx,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(req),
    )
    .await
    else {
        unreachable!()
    };
    let entry = &r.results[0].configs[0];
    let synonyms = entry
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                s.source,
            )
        })
        .collect();
    (
        entry.value.as_ref().unwrap().to_string(),
        entry.config_source,
        synonyms,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_config_layers_resolve_persist_and_answer_with_kafka_codes() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let broker = Broker::start(config(), storage.clone()).await.unwrap();
    let ctx = broker.context();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("t"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    serve(
        &ctx,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(req),
    )
    .await;
    let week = "604800000".to_string();
    assert_eq!(retention_ms(&ctx).await.1, 5, "DEFAULT_CONFIG");

    // validate_only changes nothing; bad values, static configs and other brokers fail.
    assert_eq!(set(&ctx, "", "log.retention.ms", "1000", true).await, 0);
    assert_eq!(retention_ms(&ctx).await.0, week);
    assert_eq!(set(&ctx, "", "log.retention.ms", "-5", false).await, 40); // INVALID_CONFIG
    assert_eq!(set(&ctx, "0", "log.dirs", "/x", false).await, 42); // INVALID_REQUEST
    assert_eq!(set(&ctx, "7", "log.retention.ms", "1", false).await, 42);

    // The cluster-wide default, then this broker's value above it.
    assert_eq!(set(&ctx, "", "log.retention.ms", "1000", false).await, 0);
    assert_eq!(retention_ms(&ctx).await.0, "1000");
    assert_eq!(
        retention_ms(&ctx).await.1,
        3,
        "DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    assert_eq!(set(&ctx, "0", "log.retention.ms", "2000", false).await, 0);
    let l = "log.retention.ms".to_string();
    let expected = (
        "2000".to_string(),
        2, // DYNAMIC_BROKER_CONFIG
        vec![
            (l.clone(), "2000".to_string(), 2),
            (l.clone(), "1000".to_string(), 3),
            (l.clone(), week.clone(), 5),
        ],
    );
    assert_eq!(retention_ms(&ctx).await, expected);

    // Both layers survive a restart.
    broker.shutdown().await;
    let broker = Broker::start(config(), storage.clone()).await.unwrap();
    let ctx = broker.context();
    assert_eq!(retention_ms(&ctx).await, expected);

    // AlterConfigs replaces this broker's layer whole: an empty set clears it.
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(BROKER)
        .with_resource_name(text("0"))
        .with_configs(Vec::<AlterableConfig>::new())]);
    let ResponseKind::AlterConfigs(r) = serve(
        &ctx,
        ApiKey::AlterConfigs,
        2,
        RequestKind::AlterConfigs(req),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(retention_ms(&ctx).await.0, "1000");
    assert_eq!(retention_ms(&ctx).await.1, 3);
    broker.shutdown().await;
}
