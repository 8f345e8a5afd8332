//! Topic configs: the names Kafka users set, their defaults, and validation.
//!
//! Values set on a topic are kept as strings by the metadata actor; DescribeConfigs shows
//! every known name with its effective value and whether it is a default or a topic override.
//! This broker applies `segment.bytes`, `segment.ms`, `max.message.bytes`,
//! `index.interval.bytes`, `retention.ms` and `retention.bytes` to the partition log; the others are kept and shown
//! so clients and tools that set them keep working.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::MetadataError;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Long,
    Int,
    Double,
    Bool,
    Text,
    Choice(&'static [&'static str]),
}

struct Definition {
    name: &'static str,
    kind: Kind,
    /// Fixed default, or None when it comes from the broker config.
    default: Option<&'static str>,
}

const DEFINITIONS: &[Definition] = &[
    def(
        "cleanup.policy",
        Kind::Choice(&["delete", "compact", "compact,delete", "delete,compact"]),
        Some("delete"),
    ),
    def(
        "compression.type",
        Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        Some("producer"),
    ),
    def("delete.retention.ms", Kind::Long, Some("86400000")),
    def("file.delete.delay.ms", Kind::Long, Some("60000")),
    def("flush.messages", Kind::Long, Some("9223372036854775807")),
    def("flush.ms", Kind::Long, Some("9223372036854775807")),
    def("index.interval.bytes", Kind::Int, None),
    def(
        "max.compaction.lag.ms",
        Kind::Long,
        Some("9223372036854775807"),
    ),
    def("max.message.bytes", Kind::Int, None),
    def(
        "message.timestamp.after.max.ms",
        Kind::Long,
        Some("9223372036854775807"),
    ),
    def(
        "message.timestamp.before.max.ms",
        Kind::Long,
        Some("9223372036854775807"),
    ),
    def(
        "message.timestamp.type",
        Kind::Choice(&["CreateTime", "LogAppendTime"]),
        Some("CreateTime"),
    ),
    def("min.cleanable.dirty.ratio", Kind::Double, Some("0.5")),
    def("min.compaction.lag.ms", Kind::Long, Some("0")),
    def("min.insync.replicas", Kind::Int, Some("1")),
    def("preallocate", Kind::Bool, Some("false")),
    def("retention.bytes", Kind::Long, None),
    def("retention.ms", Kind::Long, None),
    def("segment.bytes", Kind::Int, None),
    def("segment.index.bytes", Kind::Int, Some("10485760")),
    def("segment.jitter.ms", Kind::Long, Some("0")),
    def("segment.ms", Kind::Long, None),
    def("unclean.leader.election.enable", Kind::Bool, Some("false")),
    def("message.downconversion.enable", Kind::Bool, Some("true")),
    def("remote.storage.enable", Kind::Bool, Some("false")),
    def("local.retention.ms", Kind::Long, Some("-2")),
    def("local.retention.bytes", Kind::Long, Some("-2")),
    def(
        "follower.replication.throttled.replicas",
        Kind::Text,
        Some(""),
    ),
    def(
        "leader.replication.throttled.replicas",
        Kind::Text,
        Some(""),
    ),
];

const fn def(name: &'static str, kind: Kind, default: Option<&'static str>) -> Definition {
    Definition {
        name,
        kind,
        default,
    }
}

/// One row of DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    /// True when set on the topic, false when it is the default.
    pub is_override: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

fn broker_default(name: &str, config: &Config) -> String {
    match name {
        "segment.bytes" => config.log.segment_bytes.min(i32::MAX as u64).to_string(),
        "index.interval.bytes" => config.log.index_interval_bytes.to_string(),
        "max.message.bytes" => config.max_message_bytes.to_string(),
        "retention.ms" => config.log.retention_ms.to_string(),
        "retention.bytes" => config.log.retention_bytes.to_string(),
        "segment.ms" => config.log.segment_ms.to_string(),
        _ => String::new(),
    }
}

/// Checks every name and value; unknown names are INVALID_CONFIG as in Kafka.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    for (name, value) in configs {
        let Some(definition) = DEFINITIONS.iter().find(|d| d.name == name) else {
            return Err(MetadataError::InvalidConfig(format!(
                "unknown topic config {name}"
            )));
        };
        let ok = match definition.kind {
            Kind::Long => value.trim().parse::<i64>().is_ok(),
            Kind::Int => value.trim().parse::<i32>().is_ok(),
            Kind::Double => value.trim().parse::<f64>().is_ok(),
            Kind::Bool => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false"),
            Kind::Text => true,
            Kind::Choice(choices) => choices.contains(&value.trim()),
        };
        if !ok {
            return Err(MetadataError::InvalidConfig(format!(
                "invalid value {value} for topic config {name}"
            )));
        }
        if matches!(name.as_str(), "segment.bytes" | "max.message.bytes")
            && value.trim().parse::<i64>().map(|v| v < 14).unwrap_or(true)
        {
            return Err(MetadataError::InvalidConfig(format!("{name} is too small")));
        }
    }
    Ok(())
}

/// Every known topic config with its effective value, sorted by name.
pub fn describe(overrides: &BTreeMap<String, String>, config: &Config) -> Vec<ConfigEntry> {
    DEFINITIONS
        .iter()
        .map(|d| {
            let set = overrides.get(d.name);
            let value = match (set, d.default) {
                (Some(v), _) => v.clone(),
                (None, Some(v)) => v.to_string(),
                (None, None) => broker_default(d.name, config),
            };
            ConfigEntry {
                name: d.name.to_string(),
                value,
                is_override: set.is_some(),
                read_only: false,
                sensitive: false,
            }
        })
        .collect()
}

/// One change of IncrementalAlterConfigs (AlterConfigs is a SET of each given name after
/// dropping every other override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

/// List-valued configs, the only ones APPEND and SUBTRACT apply to.
fn is_list(name: &str) -> bool {
    matches!(
        name,
        "cleanup.policy"
            | "follower.replication.throttled.replicas"
            | "leader.replication.throttled.replicas"
    )
}

/// Applies changes to a topic's overrides and validates the result; the overrides are
/// untouched on error.
pub fn apply_changes(
    overrides: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    config: &Config,
) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut next = overrides.clone();
    let current = |next: &BTreeMap<String, String>, name: &str| -> Vec<String> {
        let value = next.get(name).cloned().unwrap_or_else(|| {
            describe(next, config)
                .into_iter()
                .find(|e| e.name == name)
                .map(|e| e.value)
                .unwrap_or_default()
        });
        value
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    for change in changes {
        match change {
            ConfigChange::Set(name, value) => {
                next.insert(name.clone(), value.clone());
            }
            ConfigChange::Delete(name) => {
                next.remove(name);
            }
            ConfigChange::Append(name, value) | ConfigChange::Subtract(name, value) => {
                if !is_list(name) {
                    return Err(MetadataError::InvalidConfig(format!(
                        "{name} is not a list: APPEND and SUBTRACT do not apply"
                    )));
                }
                let mut items = current(&next, name);
                for item in value.split(',').map(|v| v.trim()).filter(|v| !v.is_empty()) {
                    if matches!(change, ConfigChange::Append(..)) {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    validate(&next)?;
    Ok(next)
}

/// The effective value of a numeric config.
pub fn effective_u64(overrides: &BTreeMap<String, String>, name: &str, fallback: u64) -> u64 {
    overrides
        .get(name)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(fallback)
}

/// The effective value of a signed numeric config (-1 style limits).
pub fn effective_i64(overrides: &BTreeMap<String, String>, name: &str, fallback: i64) -> i64 {
    overrides
        .get(name)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(fallback)
}

/// Kafka's topic name rule: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name.len() > 249 {
        return Err(MetadataError::InvalidTopic(
            "a topic name has 1 to 249 characters".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(MetadataError::InvalidTopic(
            "a topic name cannot be '.' or '..'".into(),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(MetadataError::InvalidTopic(format!(
            "topic name {name} has characters other than [a-zA-Z0-9._-]"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name(".").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad/name").is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn incremental_changes() {
        let config = Config::default();
        let start = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let next = apply_changes(
            &start,
            &[
                ConfigChange::Set("retention.bytes".into(), "5000".into()),
                ConfigChange::Delete("retention.ms".into()),
                ConfigChange::Append("cleanup.policy".into(), "compact".into()),
            ],
            &config,
        )
        .unwrap();
        assert_eq!(
            next.get("retention.bytes").map(String::as_str),
            Some("5000")
        );
        assert!(!next.contains_key("retention.ms"));
        assert_eq!(
            next.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        let back = apply_changes(
            &next,
            &[ConfigChange::Subtract(
                "cleanup.policy".into(),
                "delete".into(),
            )],
            &config,
        )
        .unwrap();
        assert_eq!(
            back.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(apply_changes(
            &start,
            &[ConfigChange::Append("retention.ms".into(), "1".into())],
            &config
        )
        .is_err());
        assert!(apply_changes(
            &start,
            &[ConfigChange::Set("retention.ms".into(), "soon".into())],
            &config
        )
        .is_err());
        assert!(apply_changes(
            &start,
            &[ConfigChange::Set("no.such".into(), "1".into())],
            &config
        )
        .is_err());
    }

    #[test]
    fn config_validation_and_describe() {
        let mut set = BTreeMap::new();
        set.insert("retention.ms".to_string(), "1000".to_string());
        assert!(validate(&set).is_ok());
        set.insert("retention.ms".to_string(), "soon".to_string());
        assert!(validate(&set).is_err());
        let mut unknown = BTreeMap::new();
        unknown.insert("no.such.config".to_string(), "1".to_string());
        assert!(validate(&unknown).is_err());

        let mut set = BTreeMap::new();
        set.insert("cleanup.policy".to_string(), "compact".to_string());
        let rows = describe(&set, &Config::default());
        let cleanup = rows.iter().find(|r| r.name == "cleanup.policy").unwrap();
        assert!(cleanup.is_override);
        assert_eq!(cleanup.value, "compact");
        let segment = rows.iter().find(|r| r.name == "segment.bytes").unwrap();
        assert!(!segment.is_override);
        assert_eq!(segment.value, (1024 * 1024 * 1024).to_string());
    }
}
