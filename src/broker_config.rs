//! Dynamic broker configs: the broker-level defaults of topic configs that operators change
//! with AlterConfigs / IncrementalAlterConfigs on the broker resource, without a restart.
//!
//! A topic config's value comes from the first layer that has it, as in Kafka:
//! the topic's override (DYNAMIC_TOPIC_CONFIG), this broker's dynamic config (resource name
//! = node id, DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default (resource name "",
//! DYNAMIC_DEFAULT_BROKER_CONFIG), config.toml when it differs from Kafka's default
//! (STATIC_BROKER_CONFIG), then Kafka's default (DEFAULT_CONFIG). The broker-level name
//! is Kafka's synonym (log.retention.ms for retention.ms). The metadata actor owns both
//! dynamic layers, persists them in its record file, and applies a change to every
//! partition at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::MetadataError;
use crate::topic_config::{self, ConfigChange};

pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// The two dynamic layers, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicBrokerConfigs {
    /// Set on this broker (resource name = its node id).
    pub per_broker: BTreeMap<String, String>,
    /// Set cluster-wide (resource name "").
    pub cluster_default: BTreeMap<String, String>,
}

/// Which layer an AlterConfigs on the broker resource changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerLayer {
    PerBroker,
    ClusterDefault,
}

/// A broker config that can be changed dynamically: its Kafka name, the topic config it is
/// the default of, and Kafka's default value.
struct DynamicDefinition {
    broker: &'static str,
    topic: &'static str,
    kafka_default: &'static str,
    /// The value config.toml gives, for those config.toml has.
    configured: Option<fn(&Config) -> String>,
}

const DYNAMIC: &[DynamicDefinition] = &[
    dynamic(
        "log.segment.bytes",
        "segment.bytes",
        "1073741824",
        Some(|c| c.log.segment_bytes.min(i32::MAX as u64).to_string()),
    ),
    dynamic(
        "log.roll.ms",
        "segment.ms",
        "604800000",
        Some(|c| c.log.segment_ms.to_string()),
    ),
    dynamic(
        "log.retention.ms",
        "retention.ms",
        "604800000",
        Some(|c| c.log.retention_ms.to_string()),
    ),
    dynamic(
        "log.retention.bytes",
        "retention.bytes",
        "-1",
        Some(|c| c.log.retention_bytes.to_string()),
    ),
    dynamic(
        "log.index.interval.bytes",
        "index.interval.bytes",
        "4096",
        Some(|c| c.log.index_interval_bytes.to_string()),
    ),
    dynamic(
        "message.max.bytes",
        "max.message.bytes",
        "1048588",
        Some(|c| c.max_message_bytes.to_string()),
    ),
    dynamic("log.cleanup.policy", "cleanup.policy", "delete", None),
    dynamic(
        "log.cleaner.delete.retention.ms",
        "delete.retention.ms",
        "86400000",
        None,
    ),
    dynamic(
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
        "0.5",
        None,
    ),
    dynamic(
        "log.cleaner.min.compaction.lag.ms",
        "min.compaction.lag.ms",
        "0",
        None,
    ),
    dynamic(
        "log.cleaner.max.compaction.lag.ms",
        "max.compaction.lag.ms",
        "9223372036854775807",
        None,
    ),
    dynamic("compression.type", "compression.type", "producer", None),
    dynamic(
        "log.message.timestamp.type",
        "message.timestamp.type",
        "CreateTime",
        None,
    ),
    dynamic("min.insync.replicas", "min.insync.replicas", "1", None),
    dynamic(
        "log.message.timestamp.before.max.ms",
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        None,
    ),
    dynamic(
        "log.message.timestamp.after.max.ms",
        "message.timestamp.after.max.ms",
        "9223372036854775807",
        None,
    ),
];

const fn dynamic(
    broker: &'static str,
    topic: &'static str,
    kafka_default: &'static str,
    configured: Option<fn(&Config) -> String>,
) -> DynamicDefinition {
    DynamicDefinition {
        broker,
        topic,
        kafka_default,
        configured,
    }
}

/// The topic config a dynamic broker config is the default of (log.retention.ms ->
/// retention.ms), if it is one.
pub fn topic_config_of(broker_name: &str) -> Option<&'static str> {
    DYNAMIC
        .iter()
        .find(|d| d.broker == broker_name)
        .map(|d| d.topic)
}

/// One layer's value of a config, as DescribeConfigs lists synonyms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: i8,
}

/// The static config and the dynamic layers: what topic configs default to.
#[derive(Debug, Clone, Copy)]
pub struct BrokerDefaults<'a> {
    pub config: &'a Config,
    pub dynamic: &'a DynamicBrokerConfigs,
}

impl BrokerDefaults<'_> {
    /// The broker layers of a topic config, highest precedence first; empty when the
    /// topic config has no broker-level synonym.
    pub fn layers_of_topic_config(&self, topic: &str) -> Vec<Synonym> {
        DYNAMIC
            .iter()
            .find(|d| d.topic == topic)
            .map(|d| self.layers(d))
            .unwrap_or_default()
    }

    fn layers(&self, d: &DynamicDefinition) -> Vec<Synonym> {
        let mut out = Vec::new();
        let mut push = |value: &str, source| {
            out.push(Synonym {
                name: d.broker.to_string(),
                value: value.to_string(),
                source,
            })
        };
        if let Some(v) = self.dynamic.per_broker.get(d.broker) {
            push(v, SOURCE_DYNAMIC_BROKER);
        }
        if let Some(v) = self.dynamic.cluster_default.get(d.broker) {
            push(v, SOURCE_DYNAMIC_DEFAULT_BROKER);
        }
        if let Some(v) = d.configured.map(|f| f(self.config)) {
            if v != d.kafka_default {
                push(&v, SOURCE_STATIC_BROKER);
            }
        }
        push(d.kafka_default, SOURCE_DEFAULT);
        out
    }

    /// The rows DescribeConfigs gives for the broker resource: every dynamic config for
    /// this broker, or only the cluster-wide ones set for resource name "".
    pub fn describe(&self, layer: BrokerLayer) -> Vec<(Synonym, Vec<Synonym>)> {
        DYNAMIC
            .iter()
            .filter_map(|d| {
                let layers = self.layers(d);
                match layer {
                    BrokerLayer::PerBroker => Some((layers[0].clone(), layers)),
                    BrokerLayer::ClusterDefault => {
                        let v = self.dynamic.cluster_default.get(d.broker)?;
                        let row = Synonym {
                            name: d.broker.to_string(),
                            value: v.clone(),
                            source: SOURCE_DYNAMIC_DEFAULT_BROKER,
                        };
                        Some((row.clone(), vec![row]))
                    }
                }
            })
            .collect()
    }
}

/// Applies changes to one dynamic layer and validates the result; `Err` leaves it as it
/// was. Names that are broker configs but not dynamic are INVALID_REQUEST, as in Kafka;
/// unknown names and bad values are INVALID_CONFIG.
pub fn apply_changes(
    defaults: BrokerDefaults<'_>,
    layer: BrokerLayer,
    changes: &[ConfigChange],
    replace: bool,
) -> Result<BTreeMap<String, String>, MetadataError> {
    let current = match layer {
        BrokerLayer::PerBroker => &defaults.dynamic.per_broker,
        BrokerLayer::ClusterDefault => &defaults.dynamic.cluster_default,
    };
    let mut next = if replace {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for change in changes {
        let (ConfigChange::Set(name, _)
        | ConfigChange::Delete(name)
        | ConfigChange::Append(name, _)
        | ConfigChange::Subtract(name, _)) = change;
        let Some(d) = DYNAMIC.iter().find(|d| d.broker == name) else {
            let fixed = static_rows(defaults.config);
            return Err(if fixed.iter().any(|(n, _)| n == name) {
                MetadataError::InvalidRequest(format!(
                    "{name} cannot be changed dynamically; set it in config.toml"
                ))
            } else {
                MetadataError::InvalidConfig(format!("unknown broker config {name}"))
            });
        };
        let value = match change {
            ConfigChange::Set(_, v) => Some(v.clone()),
            ConfigChange::Delete(_) => None,
            ConfigChange::Append(_, v) | ConfigChange::Subtract(_, v) => {
                let effective = next.get(d.broker).cloned().unwrap_or_else(|| {
                    let mut below = defaults.layers(d);
                    below.retain(|s| s.source > layer_source(layer));
                    below.remove(0).value
                });
                let append = matches!(change, ConfigChange::Append(..));
                Some(topic_config::edit_list(d.topic, &effective, v, append)?)
            }
        };
        match value {
            Some(v) => {
                topic_config::validate_value(d.topic, &v)
                    .map_err(|e| MetadataError::InvalidConfig(format!("{}: {e}", d.broker)))?;
                next.insert(d.broker.to_string(), v);
            }
            None => {
                next.remove(d.broker);
            }
        }
    }
    Ok(next)
}

fn layer_source(layer: BrokerLayer) -> i8 {
    match layer {
        BrokerLayer::PerBroker => SOURCE_DYNAMIC_BROKER,
        BrokerLayer::ClusterDefault => SOURCE_DYNAMIC_DEFAULT_BROKER,
    }
}

/// The read-only rows of DescribeConfigs for this broker: what only config.toml sets.
pub fn static_rows(config: &Config) -> Vec<(&'static str, String)> {
    let listeners = config.listener_configs().unwrap_or_default();
    let join = |address: fn(&crate::security::listeners::ListenerConfig) -> String| {
        let entries: Vec<String> = listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, address(l)))
            .collect();
        entries.join(",")
    };
    vec![
        ("broker.id", config.node_id.to_string()),
        ("node.id", config.node_id.to_string()),
        ("listeners", join(|l| l.listen.to_string())),
        ("advertised.listeners", join(|l| l.advertised.clone())),
        ("log.dirs", config.data_dir.display().to_string()),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
        ),
        ("num.partitions", config.default_partitions.to_string()),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
        ),
        (
            "log.flush.interval.ms",
            config.log.flush_interval_ms.to_string(),
        ),
        (
            "log.retention.check.interval.ms",
            config.log.retention_check_interval_ms.to_string(),
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            config.log.cleaner_dedupe_buffer_bytes.to_string(),
        ),
        ("default.replication.factor", "1".to_string()),
        (
            "max.incremental.fetch.session.cache.slots",
            config.max_incremental_fetch_session_cache_slots.to_string(),
        ),
        (
            "min.incremental.fetch.session.eviction.ms",
            config.min_incremental_fetch_session_eviction_ms.to_string(),
        ),
        (
            "transactional.id.expiration.ms",
            config.transactional_id_expiration_ms.to_string(),
        ),
        (
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            config
                .transaction_remove_expired_transaction_cleanup_interval_ms
                .to_string(),
        ),
        (
            "producer.id.expiration.ms",
            config.producer_id_expiration_ms.to_string(),
        ),
        (
            "producer.id.expiration.check.interval.ms",
            config.producer_id_expiration_check_interval_ms.to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_resolve_in_kafka_order() {
        let mut config = Config::default();
        let mut dynamic = DynamicBrokerConfigs::default();
        fn defaults<'a>(c: &'a Config, d: &'a DynamicBrokerConfigs) -> BrokerDefaults<'a> {
            BrokerDefaults {
                config: c,
                dynamic: d,
            }
        }
        let top = |c: &Config, d: &DynamicBrokerConfigs| {
            defaults(c, d).layers_of_topic_config("retention.ms")[0].clone()
        };
        assert_eq!(top(&config, &dynamic).source, SOURCE_DEFAULT);
        config.log.retention_ms = 1000;
        assert_eq!(
            (
                top(&config, &dynamic).value.as_str(),
                top(&config, &dynamic).source
            ),
            ("1000", SOURCE_STATIC_BROKER)
        );
        dynamic
            .cluster_default
            .insert("log.retention.ms".into(), "2000".into());
        assert_eq!(top(&config, &dynamic).source, SOURCE_DYNAMIC_DEFAULT_BROKER);
        dynamic
            .per_broker
            .insert("log.retention.ms".into(), "3000".into());
        let layers = defaults(&config, &dynamic).layers_of_topic_config("retention.ms");
        let seen: Vec<_> = layers
            .iter()
            .map(|s| (s.value.as_str(), s.source))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("3000", SOURCE_DYNAMIC_BROKER),
                ("2000", SOURCE_DYNAMIC_DEFAULT_BROKER),
                ("1000", SOURCE_STATIC_BROKER),
                ("604800000", SOURCE_DEFAULT),
            ]
        );
    }

    #[test]
    fn changes_are_validated() {
        let config = Config::default();
        let dynamic = DynamicBrokerConfigs::default();
        let defaults = BrokerDefaults {
            config: &config,
            dynamic: &dynamic,
        };
        let set = |name: &str, value: &str| {
            apply_changes(
                defaults,
                BrokerLayer::PerBroker,
                &[ConfigChange::Set(name.into(), value.into())],
                false,
            )
        };
        assert!(set("log.retention.ms", "60000").is_ok());
        assert!(matches!(
            set("log.retention.ms", "soon"),
            Err(MetadataError::InvalidConfig(_))
        ));
        assert!(matches!(
            set("log.cleaner.min.cleanable.ratio", "1.5"),
            Err(MetadataError::InvalidConfig(_))
        ));
        assert!(matches!(
            set("log.dirs", "/tmp"),
            Err(MetadataError::InvalidRequest(_))
        ));
        assert!(matches!(
            set("no.such.config", "1"),
            Err(MetadataError::InvalidConfig(_))
        ));
        let appended = apply_changes(
            defaults,
            BrokerLayer::ClusterDefault,
            &[ConfigChange::Append(
                "log.cleanup.policy".into(),
                "compact".into(),
            )],
            false,
        )
        .unwrap();
        assert_eq!(
            appended.get("log.cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
    }
}
