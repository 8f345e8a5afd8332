//! Topic configs: the names Kafka users set, their defaults, and validation.
//!
//! Values set on a topic are kept as strings by the metadata actor; DescribeConfigs shows
//! every known name with its effective value and whether it is a default or a topic override.
//! Kafka's rule holds: a config the broker accepts, it applies. The log settings (KIP-937's
//! timestamp window included) reach the partition log through `log_config`;
//! `compression.type` and `min.insync.replicas` reach the produce path through
//! `produce_settings`. Configs this broker can apply with one value only (no tiered
//! storage, no replication yet, fsync by flush_policy) accept that value and refuse any
//! other with INVALID_CONFIG and the reason (`FIXED`).

use std::collections::BTreeMap;

use crate::actors::routing::ProduceSettings;
use crate::broker_config::{BrokerDefaults, Synonym, SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC};
use crate::error::MetadataError;
use crate::storage::recompression::target_codec;
use crate::storage::record_validator::TimestampWindow;
use crate::storage::{CompactionConfig, LogConfig};

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
    def("file.delete.delay.ms", Kind::Long, Some("0")),
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
    def("message.downconversion.enable", Kind::Bool, Some("false")),
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

/// Topic configs this broker applies with one value only: the value that says what it does.
/// Kafka's rule is that a config it accepts, it applies, so any other value is refused
/// with INVALID_CONFIG and the reason, never stored and ignored.
const FIXED: &[(&str, &str, &str)] = &[
    (
        "file.delete.delay.ms",
        "0",
        "segment files leave the log directory as soon as retention or the cleaner drops them",
    ),
    (
        "flush.messages",
        "9223372036854775807",
        "fsync is governed by the broker's flush_policy (default: before acks=all is answered)",
    ),
    (
        "flush.ms",
        "9223372036854775807",
        "fsync is governed by the broker's flush_policy (default: before acks=all is answered)",
    ),
    (
        "preallocate",
        "false",
        "segment files grow as records are appended",
    ),
    (
        "segment.index.bytes",
        "10485760",
        "offset and time indexes are sized by segment.bytes and index.interval.bytes",
    ),
    (
        "segment.jitter.ms",
        "0",
        "segments roll exactly at segment.ms",
    ),
    (
        "message.downconversion.enable",
        "false",
        "only Fetch v4 and later (message format v2) is served, so records are never down-converted",
    ),
    (
        "unclean.leader.election.enable",
        "false",
        "a single broker has no other replica to elect",
    ),
    (
        "remote.storage.enable",
        "false",
        "tiered storage is not implemented",
    ),
    (
        "local.retention.ms",
        "-2",
        "tiered storage is not implemented, so the local log is the whole log",
    ),
    (
        "local.retention.bytes",
        "-2",
        "tiered storage is not implemented, so the local log is the whole log",
    ),
    (
        "leader.replication.throttled.replicas",
        "",
        "replication is not implemented yet",
    ),
    (
        "follower.replication.throttled.replicas",
        "",
        "replication is not implemented yet",
    ),
];

/// The only value a fixed topic config accepts, and why, if `name` is one.
pub fn fixed_value(name: &str) -> Option<(&'static str, &'static str)> {
    FIXED
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, value, reason)| (*value, *reason))
}

/// One row of DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    /// Kafka's config source: 1 topic override, 2-4 a broker layer, 5 default.
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
    /// Every layer that has a value, highest precedence first (DescribeConfigs synonyms).
    pub synonyms: Vec<Synonym>,
}

/// Kafka's range for a numeric topic config, where it has one.
fn range(name: &str) -> Option<(f64, f64)> {
    let at_least = |min: f64| Some((min, f64::MAX));
    match name {
        "segment.bytes" => at_least(14.0),
        "segment.ms" | "max.compaction.lag.ms" | "min.insync.replicas" | "flush.messages" => {
            at_least(1.0)
        }
        "segment.index.bytes" => at_least(4.0),
        "retention.ms" => at_least(-1.0),
        "local.retention.ms" | "local.retention.bytes" => at_least(-2.0),
        "min.cleanable.dirty.ratio" => Some((0.0, 1.0)),
        "max.message.bytes"
        | "index.interval.bytes"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "file.delete.delay.ms"
        | "flush.ms"
        | "segment.jitter.ms"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms" => at_least(0.0),
        _ => None,
    }
}

/// Longest config value accepted (topic and broker configs). Kafka bounds values only by
/// the request size; here every value ends up in a metadata record, so each is bounded
/// far below the record limit. The longest legitimate values are lists such as the
/// throttled-replica lists ("partition:broker,..."), which fit well over a thousand
/// partitions in 16 KiB.
pub const MAX_CONFIG_VALUE_BYTES: usize = 16 * 1024;

/// Checks one value against its config's type and range; the reason on error.
pub fn validate_value(name: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_CONFIG_VALUE_BYTES {
        // Not echoed back: the value itself may be the attack.
        return Err(format!(
            "a value of {} bytes is longer than the {MAX_CONFIG_VALUE_BYTES} allowed",
            value.len()
        ));
    }
    let Some(definition) = DEFINITIONS.iter().find(|d| d.name == name) else {
        return Err(format!("unknown topic config {name}"));
    };
    let v = value.trim();
    if let Some((only, reason)) = fixed_value(name) {
        let same = match definition.kind {
            Kind::Bool => v.eq_ignore_ascii_case(only),
            _ => v == only,
        };
        if !same {
            return Err(format!(
                "{name}={v} is not supported: {reason}; only {name}={only:?} is accepted"
            ));
        }
    }
    let number = match definition.kind {
        Kind::Long => v.parse::<i64>().ok().map(|n| n as f64),
        Kind::Int => v.parse::<i32>().ok().map(f64::from),
        Kind::Double => v.parse::<f64>().ok().filter(|n| n.is_finite()),
        Kind::Bool => {
            return match v.to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => Err(format!("{value} is not true or false")),
            }
        }
        Kind::Text => return Ok(()),
        Kind::Choice(choices) => {
            return if choices.contains(&v) {
                Ok(())
            } else {
                Err(format!("{value} is not one of {}", choices.join(", ")))
            }
        }
    };
    let Some(number) = number else {
        return Err(format!("{value} is not a {:?}", definition.kind));
    };
    match range(name) {
        Some((min, max)) if number < min || number > max => Err(if max == f64::MAX {
            format!("{value} is below the least allowed value {min}")
        } else {
            format!("{value} is outside [{min}, {max}]")
        }),
        _ => Ok(()),
    }
}

/// Checks every name and value; unknown names and bad values are INVALID_CONFIG as in
/// Kafka.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<(), MetadataError> {
    for (name, value) in configs {
        validate_value(name, value)
            .map_err(|e| MetadataError::InvalidConfig(format!("topic config {name}: {e}")))?;
    }
    Ok(())
}

/// Every known topic config with its effective value, source and synonyms, sorted by name.
pub fn describe(
    overrides: &BTreeMap<String, String>,
    defaults: BrokerDefaults<'_>,
) -> Vec<ConfigEntry> {
    DEFINITIONS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push(Synonym {
                    name: d.name.to_string(),
                    value: v.clone(),
                    source: SOURCE_DYNAMIC_TOPIC,
                });
            }
            synonyms.extend(defaults.layers_of_topic_config(d.name));
            if synonyms.is_empty() {
                synonyms.push(Synonym {
                    name: d.name.to_string(),
                    value: d.default.unwrap_or_default().to_string(),
                    source: SOURCE_DEFAULT,
                });
            }
            ConfigEntry {
                name: d.name.to_string(),
                value: synonyms[0].value.clone(),
                source: synonyms[0].source,
                read_only: false,
                sensitive: false,
                synonyms,
            }
        })
        .collect()
}

/// The value a topic config has: its override, else the broker layers, else the default.
pub fn effective(
    overrides: &BTreeMap<String, String>,
    name: &str,
    defaults: BrokerDefaults<'_>,
) -> String {
    if let Some(v) = overrides.get(name) {
        return v.clone();
    }
    if let Some(top) = defaults.layers_of_topic_config(name).into_iter().next() {
        return top.value;
    }
    DEFINITIONS
        .iter()
        .find(|d| d.name == name)
        .and_then(|d| d.default)
        .unwrap_or_default()
        .to_string()
}

/// What the produce path applies to a topic: `compression.type` (the codec batches are
/// stored in and the topic's max.message.bytes, the bound of a recompressed batch; None for
/// `producer`, stored as sent) and `min.insync.replicas`.
pub fn produce_settings(
    overrides: &BTreeMap<String, String>,
    defaults: BrokerDefaults<'_>,
) -> ProduceSettings {
    let compression = target_codec(&effective(overrides, "compression.type", defaults))
        .map(|codec| (codec, log_config(overrides, defaults).max_batch_bytes));
    let min_insync_replicas = effective(overrides, "min.insync.replicas", defaults)
        .trim()
        .parse::<i32>()
        .unwrap_or(1);
    ProduceSettings {
        compression,
        min_insync_replicas,
    }
}

/// The partition log settings a topic's configs give, over the broker defaults.
pub fn log_config(overrides: &BTreeMap<String, String>, defaults: BrokerDefaults<'_>) -> LogConfig {
    let text = |name: &str| effective(overrides, name, defaults);
    let long = |name: &str, fallback: i64| text(name).trim().parse::<i64>().unwrap_or(fallback);
    let config = defaults.config;
    let policy = text("cleanup.policy");
    let policy: Vec<&str> = policy.split(',').map(str::trim).collect();
    let mut log = LogConfig {
        segment_bytes: long("segment.bytes", config.log.segment_bytes as i64).max(14) as u64,
        index_interval_bytes: long(
            "index.interval.bytes",
            config.log.index_interval_bytes as i64,
        )
        .max(0) as u64,
        max_batch_bytes: long("max.message.bytes", config.max_message_bytes as i64).max(0) as usize,
        retention_ms: long("retention.ms", config.log.retention_ms),
        retention_bytes: long("retention.bytes", config.log.retention_bytes),
        segment_ms: long("segment.ms", config.log.segment_ms),
        delete: policy.contains(&"delete"),
        compaction: policy.contains(&"compact").then(|| CompactionConfig {
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_cleanable_dirty_ratio: text("min.cleanable.dirty.ratio")
                .trim()
                .parse::<f64>()
                .unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
        }),
        log_append_time: text("message.timestamp.type").trim() == "LogAppendTime",
        // KIP-937: checked on CreateTime topics only (LogAppendTime replaces the timestamps).
        timestamp_window: if text("message.timestamp.type").trim() == "LogAppendTime" {
            None
        } else {
            TimestampWindow::new(
                long("message.timestamp.before.max.ms", i64::MAX),
                long("message.timestamp.after.max.ms", i64::MAX),
            )
        },
    };
    // Kafka's maxSegmentMs: a compacted log rolls at least every max.compaction.lag.ms,
    // since the active segment is never cleaned.
    if let Some(lag) = log.compaction.as_ref().map(|c| c.max_compaction_lag_ms) {
        if lag > 0 && (log.segment_ms < 0 || lag < log.segment_ms) {
            log.segment_ms = lag;
        }
    }
    log
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

/// APPEND (or SUBTRACT) the comma-separated `items` to (from) the list `current`.
pub fn edit_list(
    name: &str,
    current: &str,
    items: &str,
    append: bool,
) -> Result<String, MetadataError> {
    if !is_list(name) {
        return Err(MetadataError::InvalidConfig(format!(
            "{name} is not a list: APPEND and SUBTRACT do not apply"
        )));
    }
    let mut list: Vec<String> = current
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    for item in items.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        if append {
            if !list.iter().any(|i| i == item) {
                list.push(item.to_string());
            }
        } else {
            list.retain(|i| i != item);
        }
    }
    Ok(list.join(","))
}

/// Applies changes to a topic's overrides and validates the result; the overrides are
/// untouched on error.
pub fn apply_changes(
    overrides: &BTreeMap<String, String>,
    changes: &[ConfigChange],
    defaults: BrokerDefaults<'_>,
) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut next = overrides.clone();
    for change in changes {
        match change {
            ConfigChange::Set(name, value) => {
                next.insert(name.clone(), value.clone());
            }
            ConfigChange::Delete(name) => {
                next.remove(name);
            }
            ConfigChange::Append(name, value) | ConfigChange::Subtract(name, value) => {
                let current = effective(&next, name, defaults);
                let append = matches!(change, ConfigChange::Append(..));
                next.insert(name.clone(), edit_list(name, &current, value, append)?);
            }
        }
    }
    validate(&next)?;
    Ok(next)
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
mod tests;
