//! Unit tests of topic configs: validation, describe, the fixed configs, log settings.
use super::*;
use crate::broker_config::DynamicBrokerConfigs;
use crate::config::Config;

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
    let dynamic = DynamicBrokerConfigs::default();
    let defaults = BrokerDefaults {
        config: &config,
        dynamic: &dynamic,
    };
    let start = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
    let next = apply_changes(
        &start,
        &[
            ConfigChange::Set("retention.bytes".into(), "5000".into()),
            ConfigChange::Delete("retention.ms".into()),
            ConfigChange::Append("cleanup.policy".into(), "compact".into()),
        ],
        defaults,
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
        defaults,
    )
    .unwrap();
    assert_eq!(
        back.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert!(apply_changes(
        &start,
        &[ConfigChange::Append("retention.ms".into(), "1".into())],
        defaults
    )
    .is_err());
    assert!(apply_changes(
        &start,
        &[ConfigChange::Set("retention.ms".into(), "soon".into())],
        defaults
    )
    .is_err());
    assert!(apply_changes(
        &start,
        &[ConfigChange::Set("no.such".into(), "1".into())],
        defaults
    )
    .is_err());
}

#[test]
fn log_config_carries_every_applied_topic_config() {
    let config = Config::default();
    let dynamic = crate::broker_config::DynamicBrokerConfigs::default();
    let defaults = BrokerDefaults {
        config: &config,
        dynamic: &dynamic,
    };
    let set: BTreeMap<String, String> = [
        ("segment.bytes", "123456"),
        ("segment.ms", "7000"),
        ("max.message.bytes", "54321"),
        ("index.interval.bytes", "99"),
        ("retention.ms", "8000"),
        ("retention.bytes", "9000"),
        ("cleanup.policy", "compact,delete"),
        ("delete.retention.ms", "1111"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("min.compaction.lag.ms", "2222"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    validate(&set).unwrap();
    let log = log_config(&set, defaults);
    assert_eq!(log.segment_bytes, 123_456);
    assert_eq!(log.segment_ms, 7_000);
    assert_eq!(log.max_batch_bytes, 54_321);
    assert_eq!(log.index_interval_bytes, 99);
    assert_eq!(log.retention_ms, 8_000);
    assert_eq!(log.retention_bytes, 9_000);
    assert!(log.delete);
    let compaction = log.compaction.expect("compact is in cleanup.policy");
    assert_eq!(compaction.delete_retention_ms, 1_111);
    assert_eq!(compaction.min_cleanable_dirty_ratio, 0.25);
    assert_eq!(compaction.min_compaction_lag_ms, 2_222);
    let compact_only = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    assert!(!log_config(&compact_only, defaults).delete);
}

#[test]
fn fixed_configs_accept_only_the_value_the_broker_applies() {
    for (name, only, _) in FIXED {
        assert!(validate_value(name, only).is_ok(), "{name}={only}");
        let other = match *name {
            "preallocate" | "message.downconversion.enable" => "true",
            "unclean.leader.election.enable" | "remote.storage.enable" => "true",
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
                "0:0"
            }
            _ => "1000",
        };
        let err = validate_value(name, other).expect_err(name);
        assert!(err.contains("is not supported"), "{name}: {err}");
        // What DescribeConfigs shows is the value that is applied.
        let config = Config::default();
        let dynamic = crate::broker_config::DynamicBrokerConfigs::default();
        let defaults = BrokerDefaults {
            config: &config,
            dynamic: &dynamic,
        };
        assert_eq!(effective(&BTreeMap::new(), name, defaults), *only, "{name}");
    }
    assert!(validate_value("preallocate", "FALSE").is_ok());
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
    let config = Config::default();
    let dynamic = DynamicBrokerConfigs::default();
    let defaults = BrokerDefaults {
        config: &config,
        dynamic: &dynamic,
    };
    let rows = describe(&set, defaults);
    let cleanup = rows.iter().find(|r| r.name == "cleanup.policy").unwrap();
    assert_eq!(cleanup.source, SOURCE_DYNAMIC_TOPIC);
    assert_eq!(cleanup.value, "compact");
    let segment = rows.iter().find(|r| r.name == "segment.bytes").unwrap();
    assert_eq!(segment.source, SOURCE_DEFAULT);
    assert_eq!(segment.value, (1024 * 1024 * 1024).to_string());
    // Kafka's ranges.
    for (name, bad) in [
        ("segment.bytes", "13"),
        ("retention.ms", "-2"),
        ("min.cleanable.dirty.ratio", "1.01"),
        ("min.insync.replicas", "0"),
        ("segment.bytes", "3000000000"),
    ] {
        assert!(validate_value(name, bad).is_err(), "{name}={bad}");
    }
    assert!(validate_value("retention.ms", "-1").is_ok());
}

#[test]
fn max_compaction_lag_ms_reaches_the_cleaner_and_rolls_the_active_segment() {
    let config = Config::default();
    let dynamic = DynamicBrokerConfigs::default();
    let defaults = BrokerDefaults {
        config: &config,
        dynamic: &dynamic,
    };
    let mut set = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    let log = log_config(&set, defaults);
    let compaction = log.compaction.unwrap();
    assert_eq!(
        compaction.max_compaction_lag_ms,
        i64::MAX,
        "Kafka's default"
    );
    assert_eq!(log.segment_ms, config.log.segment_ms);
    set.insert("max.compaction.lag.ms".into(), "60000".into());
    let log = log_config(&set, defaults);
    assert_eq!(log.compaction.unwrap().max_compaction_lag_ms, 60_000);
    assert_eq!(log.segment_ms, 60_000, "the active segment rolls in time");
    assert!(validate_value("max.compaction.lag.ms", "0").is_err());
    // The broker default, log.cleaner.max.compaction.lag.ms, under a topic override.
    let mut dynamic = DynamicBrokerConfigs::default();
    dynamic
        .cluster_default
        .insert("log.cleaner.max.compaction.lag.ms".into(), "30000".into());
    let defaults = BrokerDefaults {
        config: &config,
        dynamic: &dynamic,
    };
    let log = log_config(&set, defaults);
    assert_eq!(log.compaction.unwrap().max_compaction_lag_ms, 60_000);
    set.remove("max.compaction.lag.ms");
    let log = log_config(&set, defaults);
    assert_eq!(log.compaction.unwrap().max_compaction_lag_ms, 30_000);
}
