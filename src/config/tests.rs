//! Config loading and validation tests.

use super::*;

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure returns its own error type
fn file_then_environment() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "c.toml",
            "listen = \"127.0.0.1:9999\"\n[log]\nflush_policy = \"interval\"\n",
        )?;
        jail.set_env("BROKER_DEFAULT_PARTITIONS", "3");
        jail.set_env("BROKER_LOG__FLUSH_POLICY", "always");
        let c = Config::load(Path::new("c.toml")).map_err(|e| e.to_string())?;
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.default_partitions, 3);
        assert_eq!(c.log.flush_policy, FlushPolicy::Always);
        assert_eq!(c.log.segment_bytes, 1024 * 1024 * 1024);
        assert!(!c.cluster_mode());
        Ok(())
    });
}

#[test]
fn the_authorizer_is_on_only_with_a_class_name() {
    assert_eq!(Config::default().authorizer().unwrap(), None);
    let on = Config {
        authorizer_class_name: "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        super_users: "User:admin;User:ops".into(),
        ..Config::default()
    };
    on.validate().unwrap();
    let unknown = Config {
        authorizer_class_name: "com.example.MyAuthorizer".into(),
        ..Config::default()
    };
    assert!(unknown
        .validate()
        .unwrap_err()
        .to_string()
        .contains("authorizer_class_name"));
    let authorizer = on.authorizer().unwrap().unwrap();
    assert_eq!(authorizer.super_users.len(), 2);
    assert!(!authorizer.allow_everyone_if_no_acl_found);
    let bad = Config {
        super_users: "admin".into(),
        ..Config::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("super_users"));
}

#[test]
fn the_offsets_topic_settings_are_bounded_in_a_cluster() {
    let voter = Config {
        node_id: 1,
        controller_quorum_voters: "1@127.0.0.1:9292".into(),
        ..Config::default()
    };
    voter.validate().unwrap();
    assert_eq!(voter.offsets_topic_num_partitions, 50);
    assert_eq!(voter.offsets_topic_replication_factor, 3);
    assert_eq!(voter.offsets_commit_timeout_ms, 5_000);
    for bad in [
        Config {
            offsets_topic_num_partitions: 0,
            ..voter.clone()
        },
        Config {
            offsets_topic_replication_factor: 0,
            ..voter.clone()
        },
        Config {
            offsets_commit_timeout_ms: 0,
            ..voter.clone()
        },
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("offsets_topic_num_partitions"), "{err}");
    }
}

#[test]
fn the_transaction_state_topic_settings_are_kafkas_and_bounded() {
    let voter = Config {
        node_id: 1,
        controller_quorum_voters: "1@127.0.0.1:9292".into(),
        ..Config::default()
    };
    voter.validate().unwrap();
    assert_eq!(voter.transaction_state_log_num_partitions, 50);
    assert_eq!(voter.transaction_state_log_replication_factor, 3);
    assert_eq!(voter.transaction_state_log_min_isr, 2);
    for bad in [
        Config {
            transaction_state_log_num_partitions: 0,
            ..voter.clone()
        },
        Config {
            transaction_state_log_replication_factor: 0,
            ..voter.clone()
        },
        Config {
            transaction_state_log_min_isr: 0,
            ..voter.clone()
        },
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("transaction_state_log_num_partitions"),
            "{err}"
        );
    }
}

#[test]
fn quorum_voters_parse_and_validate() {
    let voters = parse_quorum_voters("1@127.0.0.1:9292, 2@127.0.0.1:9293").unwrap();
    assert_eq!(voters.len(), 2);
    assert_eq!(voters[1].id, 2);
    assert_eq!(voters[1].addr.port(), 9293);
    for bad in [
        "1",
        "x@127.0.0.1:1",
        "1@nohost",
        "1@127.0.0.1:1,1@127.0.0.1:2",
        "-1@127.0.0.1:1",
    ] {
        let err = parse_quorum_voters(bad).unwrap_err().to_string();
        assert!(err.contains("controller_quorum_voters"), "{bad}: {err}");
    }
    let voter = Config {
        node_id: 2,
        controller_quorum_voters: "1@127.0.0.1:9292,2@127.0.0.1:9293".into(),
        ..Config::default()
    };
    voter.validate().unwrap();
    assert!(voter.cluster_mode());
    assert_eq!(voter.controller_address().unwrap().port(), 9293);
    let outsider = Config {
        node_id: 4,
        ..voter.clone()
    };
    assert!(outsider
        .validate()
        .unwrap_err()
        .to_string()
        .contains("controller_listen"));
    let listening = Config {
        controller_listen: Some("127.0.0.1:9295".parse().unwrap()),
        ..outsider
    };
    listening.validate().unwrap();
    let slow = Config {
        broker_heartbeat_interval_ms: 9_000,
        ..voter
    };
    assert!(slow.validate().is_err());
}

#[test]
fn the_replica_socket_timeout_covers_the_fetch_long_poll() {
    let config = Config::default();
    assert_eq!(config.replica_socket_timeout_ms, 30_000);
    let short = Config {
        replica_socket_timeout_ms: 400,
        replica_fetch_wait_max_ms: 500,
        ..Config::default()
    };
    assert!(short.validate().is_err(), "below replica_fetch_wait_max_ms");
    let equal = Config {
        replica_socket_timeout_ms: 500,
        ..short
    };
    equal.validate().unwrap();
}
