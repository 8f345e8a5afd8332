//! Every config DescribeConfigs shows is applied or refused (issue 18's rule: a config the
//! broker accepts, it applies). The test walks the names a real broker returns for a topic
//! and for the broker, and for each one checks its proof:
//! - `Applied`: tests that show it changes what the broker does; each named test must
//!   exist in this repository's sources, so a removed or renamed proof fails here;
//! - `Fixed`: only the value shown is accepted; another is refused with INVALID_CONFIG;
//! - `BrokerDefault`: a dynamic broker config, applied as the default of a topic config
//!   whose proof is checked in turn, with its own tests where it has them (layer
//!   resolution is proven once, below);
//! - `ReadOnly`: a config.toml setting, shown read-only and refused by AlterConfigs; its
//!   effect is checked here on the broker under test, or by the named tests.
//!
//! A config that appears without a row, or a row whose config no longer appears, fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::harness::TestBroker;
use crate::hostile_wire::{text, topic, Wire};

const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;

enum Proof {
    Applied(&'static [&'static str]),
    Fixed {
        other: &'static str,
    },
    BrokerDefault(&'static str, &'static [&'static str]),
    /// Checked on the broker under test (`checked_here`), or by the named tests.
    ReadOnly(&'static [&'static str]),
}
use Proof::*;

/// Layer resolution and live application of broker-level defaults.
const BROKER_LAYERS: &[&str] = &[
    "layers_resolve_in_kafka_order",
    "broker_config_layers_resolve_persist_and_answer_with_kafka_codes",
    "test_dynamic_broker_config_applies_live_and_survives_restart",
];

const TOPIC_CONFIGS: &[(&str, Proof)] = &[
    (
        "cleanup.policy",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "a_compacted_topic_keeps_the_latest_value_of_every_key",
            "retention_bytes_moves_the_earliest_offset_while_clients_keep_working",
        ]),
    ),
    (
        "compression.type",
        Applied(&["topic_compression_type_is_the_codec_batches_are_stored_in"]),
    ),
    (
        "delete.retention.ms",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "compaction_keeps_the_latest_record_per_key_and_expires_tombstones",
        ]),
    ),
    ("file.delete.delay.ms", Fixed { other: "60000" }),
    ("flush.messages", Fixed { other: "1" }),
    ("flush.ms", Fixed { other: "1000" }),
    (
        "follower.replication.throttled.replicas",
        Fixed { other: "0:0" },
    ),
    (
        "index.interval.bytes",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "index_interval_bytes_sets_how_often_the_offset_index_gets_an_entry",
        ]),
    ),
    (
        "leader.replication.throttled.replicas",
        Fixed { other: "0:0" },
    ),
    ("local.retention.bytes", Fixed { other: "1000" }),
    ("local.retention.ms", Fixed { other: "1000" }),
    (
        "max.compaction.lag.ms",
        Applied(&[
            "max_compaction_lag_forces_a_pass_below_the_dirty_ratio",
            "max_compaction_lag_cleans_a_log_below_its_dirty_ratio",
        ]),
    ),
    (
        "max.message.bytes",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "a_zstd_bomb_to_a_compacted_topic_is_refused_in_bounded_memory",
        ]),
    ),
    ("message.downconversion.enable", Fixed { other: "true" }),
    (
        "message.timestamp.after.max.ms",
        Applied(&["records_outside_the_timestamp_window_get_invalid_timestamp"]),
    ),
    (
        "message.timestamp.before.max.ms",
        Applied(&["records_outside_the_timestamp_window_get_invalid_timestamp"]),
    ),
    (
        "message.timestamp.type",
        Applied(&[
            "log_append_time_stamps_batches_and_the_produce_response",
            "librdkafka_reads_the_brokers_append_time_and_finds_records_by_it",
        ]),
    ),
    (
        "min.cleanable.dirty.ratio",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "a_compacted_topic_keeps_the_latest_value_of_every_key",
        ]),
    ),
    (
        "min.compaction.lag.ms",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "min_compaction_lag_ms_keeps_recent_segments_out_of_the_cleaner",
        ]),
    ),
    (
        "min.insync.replicas",
        Applied(&["acks_all_needs_min_insync_replicas_at_most_one_on_a_single_broker"]),
    ),
    ("preallocate", Fixed { other: "true" }),
    ("remote.storage.enable", Fixed { other: "true" }),
    (
        "retention.bytes",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "retention_bytes_moves_the_earliest_offset_while_clients_keep_working",
        ]),
    ),
    (
        "retention.ms",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "retention_ms_removes_closed_segments_whose_newest_record_is_older",
        ]),
    ),
    (
        "segment.bytes",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "append_assigns_offsets_and_reads_cross_segments",
        ]),
    ),
    ("segment.index.bytes", Fixed { other: "4096" }),
    ("segment.jitter.ms", Fixed { other: "1000" }),
    (
        "segment.ms",
        Applied(&[
            "log_config_carries_every_applied_topic_config",
            "segment_ms_rolls_an_old_active_segment",
        ]),
    ),
    ("unclean.leader.election.enable", Fixed { other: "true" }),
];

const BROKER_CONFIGS: &[(&str, Proof)] = &[
    ("advertised.listeners", ReadOnly(&[])),
    ("auto.create.topics.enable", ReadOnly(&[])),
    ("broker.id", ReadOnly(&[])),
    ("compression.type", BrokerDefault("compression.type", &["broker_compression_type_applies_to_topics_without_an_override"])),
    ("default.replication.factor", ReadOnly(&[])),
    (
        "log.cleaner.dedupe.buffer.size",
        ReadOnly(&["the_dedupe_buffer_bounds_how_much_of_the_dirty_range_one_pass_cleans"]),
    ),
    (
        "log.cleaner.delete.retention.ms",
        BrokerDefault("delete.retention.ms", &[]),
    ),
    (
        "log.cleaner.min.cleanable.ratio",
        BrokerDefault("min.cleanable.dirty.ratio", &[]),
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        BrokerDefault("min.compaction.lag.ms", &[]),
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        BrokerDefault("max.compaction.lag.ms", &["max_compaction_lag_ms_reaches_the_cleaner_and_rolls_the_active_segment"]),
    ),
    (
        "log.message.timestamp.after.max.ms",
        BrokerDefault("message.timestamp.after.max.ms", &["the_broker_level_window_applies_to_topics_without_their_own"]),
    ),
    (
        "log.message.timestamp.before.max.ms",
        BrokerDefault("message.timestamp.before.max.ms", &["the_broker_level_window_applies_to_topics_without_their_own"]),
    ),
    ("log.cleanup.policy", BrokerDefault("cleanup.policy", &[])),
    ("log.dirs", ReadOnly(&[])),
    (
        "log.flush.interval.ms",
        ReadOnly(&["log_flush_interval_ms_fsyncs_acks_1_appends_when_its_timer_fires"]),
    ),
    (
        "log.index.interval.bytes",
        BrokerDefault("index.interval.bytes", &[]),
    ),
    (
        "log.message.timestamp.type",
        BrokerDefault("message.timestamp.type", &["the_broker_default_log_message_timestamp_type_applies_live_to_topics_without_an_override"]),
    ),
    ("log.retention.bytes", BrokerDefault("retention.bytes", &[])),
    (
        "log.retention.check.interval.ms",
        ReadOnly(&["retention_bytes_moves_the_earliest_offset_while_clients_keep_working"]),
    ),
    ("log.retention.ms", BrokerDefault("retention.ms", &[])),
    ("log.roll.ms", BrokerDefault("segment.ms", &[])),
    ("log.segment.bytes", BrokerDefault("segment.bytes", &[])),
    ("listeners", ReadOnly(&[])),
    (
        "max.incremental.fetch.session.cache.slots",
        ReadOnly(&["the_cache_holds_its_slots_and_evicts_the_idle_session"]),
    ),
    ("message.max.bytes", BrokerDefault("max.message.bytes", &[])),
    (
        "min.incremental.fetch.session.eviction.ms",
        ReadOnly(&["the_cache_holds_its_slots_and_evicts_the_idle_session"]),
    ),
    ("min.insync.replicas", BrokerDefault("min.insync.replicas", &["acks_all_needs_min_insync_replicas_at_most_one_on_a_single_broker"])),
    ("node.id", ReadOnly(&[])),
    (
        "producer.id.expiration.check.interval.ms",
        ReadOnly(&["the_check_interval_applies_producer_id_expiration"]),
    ),
    (
        "producer.id.expiration.ms",
        ReadOnly(&["idle_producers_expire_from_memory_and_from_the_snapshot"]),
    ),
    ("num.partitions", ReadOnly(&[])),
    ("socket.request.max.bytes", ReadOnly(&[])),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        ReadOnly(&["the_cleanup_interval_applies_transactional_id_expiration"]),
    ),
    (
        "transactional.id.expiration.ms",
        ReadOnly(&[
            "ten_thousand_idle_transactional_ids_expire_with_their_files",
            "ten_thousand_transactional_ids_expire_back_to_the_baseline",
        ]),
    ),
];

/// Read-only configs whose effect this test checks on the broker it starts.
fn checked_here(name: &str) -> bool {
    matches!(
        name,
        "advertised.listeners"
            | "auto.create.topics.enable"
            | "broker.id"
            | "default.replication.factor"
            | "listeners"
            | "log.dirs"
            | "node.id"
            | "num.partitions"
            | "socket.request.max.bytes"
    )
}

/// Every test function name (Rust `fn`, Python `def`) in src/ and tests/.
fn test_names() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read a source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("rs" | "py")) {
                let source = std::fs::read_to_string(&path).expect("read a source file");
                for line in source.lines() {
                    let line = line.trim_start();
                    let rest = line
                        .strip_prefix("async fn ")
                        .or_else(|| line.strip_prefix("fn "))
                        .or_else(|| line.strip_prefix("def "));
                    if let Some(name) = rest.and_then(|r| r.split(['(', '<']).next()) {
                        out.push(name.to_string());
                    }
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(&root.join("src"), &mut out);
    walk(&root.join("tests"), &mut out);
    out
}

fn describe(wire: &mut Wire, kind: i8, name: &str) -> BTreeMap<String, (String, bool)> {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(text(name))])
        .with_include_documentation(true);
    let resp = wire.call(4, &req).expect("DescribeConfigs answered");
    assert_eq!(resp.results[0].error_code, 0, "{name}");
    resp.results[0]
        .configs
        .iter()
        .map(|c| {
            // KIP-569: every config says its type and what it does.
            assert!(c.config_type > 0, "{} has no config type", c.name);
            assert!(
                c.documentation.as_ref().is_some_and(|d| !d.is_empty()),
                "{} has no documentation",
                c.name
            );
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), (value, c.read_only))
        })
        .collect()
}

fn check_names(shown: &BTreeMap<String, (String, bool)>, table: &[(&str, Proof)], what: &str) {
    let listed: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let unproven: Vec<&String> = shown
        .keys()
        .filter(|n| !listed.contains(&n.as_str()))
        .collect();
    assert!(
        unproven.is_empty(),
        "{what} configs shown by DescribeConfigs without a proof in this test: {unproven:?}"
    );
    let gone: Vec<&&str> = listed.iter().filter(|n| !shown.contains_key(**n)).collect();
    assert!(
        gone.is_empty(),
        "{what} rows for configs no longer shown: {gone:?}"
    );
}

fn assert_tests_exist(names: &[&str], config: &str, known: &[String]) {
    assert!(!names.is_empty(), "{config}: no proof named");
    for name in names {
        assert!(
            known.iter().any(|k| k == name),
            "{config}: the test {name} that proves it is applied does not exist"
        );
    }
}

#[test]
fn every_config_describe_configs_shows_is_applied_or_refused() {
    let broker = TestBroker::start(
        "node_id = 7\ndefault_partitions = 2\nauto_create_topics = false\nmax_request_bytes = 1048576",
    );
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("walk", 1);
    let known = test_names();

    let topic_configs = describe(&mut wire, TOPIC_RESOURCE, "walk");
    check_names(&topic_configs, TOPIC_CONFIGS, "topic");
    for (name, proof) in TOPIC_CONFIGS {
        match proof {
            Applied(tests) => assert_tests_exist(tests, name, &known),
            Fixed { other } => {
                let (code, message) = wire.set_config(TOPIC_RESOURCE, "walk", name, other);
                assert_eq!(code, INVALID_CONFIG, "{name}={other}: {message}");
                assert!(message.contains("not supported"), "{name}: {message}");
                let shown = &topic_configs[*name].0;
                assert_eq!(wire.set_config(TOPIC_RESOURCE, "walk", name, shown).0, 0);
            }
            BrokerDefault(..) | ReadOnly(_) => panic!("{name}: not a topic-level proof"),
        }
    }

    let broker_configs = describe(&mut wire, BROKER_RESOURCE, "7");
    check_names(&broker_configs, BROKER_CONFIGS, "broker");
    assert_tests_exist(BROKER_LAYERS, "broker-level defaults", &known);
    for (name, proof) in BROKER_CONFIGS {
        let read_only = broker_configs[*name].1;
        match proof {
            BrokerDefault(topic_config, own) => {
                assert!(!read_only, "{name} is dynamic");
                if !own.is_empty() {
                    assert_tests_exist(own, name, &known);
                }
                match TOPIC_CONFIGS.iter().find(|(n, _)| n == topic_config) {
                    Some((_, Applied(tests))) => assert_tests_exist(tests, name, &known),
                    _ => panic!("{name}: {topic_config} is not an applied topic config"),
                }
            }
            ReadOnly(tests) => {
                assert!(read_only, "{name} is shown read-only");
                let (code, message) = wire.set_config(BROKER_RESOURCE, "7", name, "1");
                assert_eq!(code, INVALID_REQUEST, "{name}: {message}");
                if !checked_here(name) {
                    assert_tests_exist(tests, name, &known);
                }
            }
            Applied(_) | Fixed { .. } => panic!("{name}: not a broker-level proof"),
        }
    }

    // The read-only settings checked here, against config.toml above.
    let value = |name: &str| broker_configs[name].0.clone();
    let metadata = |wire: &mut Wire, name: &str| {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic(name)))
            ]))
            .with_allow_auto_topic_creation(true);
        wire.call(9, &req).expect("Metadata answered")
    };
    let answer = metadata(&mut wire, "walk");
    let me = &answer.brokers[0];
    assert_eq!(
        (value("node.id"), value("broker.id")),
        ("7".into(), "7".into())
    );
    assert_eq!(*me.node_id, 7, "node.id is the id clients see");
    let address = format!("127.0.0.1:{}", broker.port());
    assert_eq!(format!("{}:{}", me.host, me.port), address);
    assert_eq!(value("listeners"), format!("PLAINTEXT://{address}"));
    assert_eq!(
        value("advertised.listeners"),
        format!("PLAINTEXT://{address}")
    );
    assert_eq!(value("log.dirs"), broker.data_dir().display().to_string());
    assert!(
        broker.data_dir().join("walk-0").exists(),
        "partitions live in log.dirs"
    );
    // auto.create.topics.enable=false: Metadata does not create the topic.
    assert_eq!(value("auto.create.topics.enable"), "false");
    assert_eq!(
        metadata(&mut wire, "not-created").topics[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // num.partitions and default.replication.factor fill in -1 in CreateTopics.
    assert_eq!(
        (value("num.partitions"), value("default.replication.factor")),
        ("2".into(), "1".into())
    );
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("defaults"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)]);
    let created = wire.call(4, &req).expect("CreateTopics answered");
    assert_eq!(created.topics[0].error_code, 0);
    let partitions = &metadata(&mut wire, "defaults").topics[0].partitions;
    assert_eq!(partitions.len(), 2);
    assert!(partitions.iter().all(|p| p.replica_nodes.len() == 1));
    // socket.request.max.bytes: a frame one byte over it closes the connection.
    assert_eq!(value("socket.request.max.bytes"), "1048576");
    let mut raw = TcpStream::connect(("127.0.0.1", broker.port())).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    raw.write_all(&(1_048_577i32).to_be_bytes()).unwrap();
    let mut buf = [0u8; 4];
    assert!(
        matches!(raw.read(&mut buf), Ok(0) | Err(_)),
        "a frame over socket.request.max.bytes closes the connection"
    );
    assert_eq!(metadata(&mut wire, "walk").topics[0].error_code, 0);
}
