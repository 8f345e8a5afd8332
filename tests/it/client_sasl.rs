//! SASL with real broker processes and files: the first administrator made offline with
//! `broker user add` logs in with SCRAM, and users made online with
//! AlterUserScramCredentials survive kill -9; librdkafka with SCRAM-SHA-256 and -512 over
//! SASL_PLAINTEXT and SASL_SSL (TLS, then SASL); PLAINTEXT clients on a SASL port make one
//! warn line, not one each.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;

use broker::security::scram::ScramMechanism;

use crate::actor_sasl::{alter, metadata_answers, plain_login, scram_login, upsert};
use crate::certs::TestCerts;
use crate::client_metrics::{sample, scrape_until};
use crate::harness::{self, TestBroker};
use crate::hostile_wire::Wire;

fn sasl_broker() -> TestBroker {
    TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"SASL_PLAINTEXT://127.0.0.1:{port}\"\n\
             connection_failed_authentication_delay_ms = 10\n\
             [sasl_plain_users]\n\
             admin = \"admin-secret\""
        )
    })
}

#[test]
fn an_offline_admin_and_online_users_log_in_across_restarts() {
    let mut broker = sasl_broker();
    let s512 = ScramMechanism::Sha512;
    assert!(scram_login(broker.port(), s512, "root", "root-secret").is_none());
    assert!(broker.sigterm().success());

    // `broker user add` on the stopped broker's config.
    let dir = broker.data_dir().parent().unwrap().to_path_buf();
    std::fs::write(dir.join("root-password"), "root-secret\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args([
            "user",
            "add",
            "--name",
            "root",
            "--mechanism",
            "SCRAM-SHA-512",
        ])
        .arg("--password-file")
        .arg(dir.join("root-password"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(["user", "add", "--name", "x", "--iterations", "100"])
        .arg("--password-file")
        .arg(dir.join("root-password"))
        .output()
        .unwrap();
    assert!(!bad.status.success(), "too few iterations is refused");
    let meta = std::fs::read(broker.data_dir().join("__meta/topics.log")).unwrap();
    assert!(
        !meta.windows(11).any(|w| w == b"root-secret"),
        "the password is not stored"
    );

    broker.restart();
    let mut root = scram_login(broker.port(), s512, "root", "root-secret").expect("root logs in");
    assert!(metadata_answers(&mut root));

    // A user made online, then kill -9: the credential was fsynced before the answer.
    let (mut admin, _) = plain_login(broker.port(), "admin", "admin-secret");
    let made = alter(
        &mut admin,
        vec![],
        vec![upsert("carol", s512, "carol-secret", 4096)],
    );
    assert_eq!(made, [("carol".to_string(), 0)]);
    broker.kill9();
    broker.restart();
    assert!(scram_login(broker.port(), s512, "carol", "carol-secret").is_some());
    assert!(scram_login(broker.port(), s512, "root", "root-secret").is_some());
    assert!(scram_login(broker.port(), s512, "carol", "wrong").is_none());
}

/// A client's Metadata error with these settings (within 3 s: a served client answers in
/// milliseconds), or None if it was served.
fn metadata_error(bootstrap: &str, settings: &[(&str, &str)]) -> Option<String> {
    let consumer = harness::consumer(bootstrap, settings);
    consumer
        .fetch_metadata(None, Duration::from_secs(3))
        .err()
        .map(|e| format!("{e:?}"))
}

#[test]
fn librdkafka_scram_over_sasl_plaintext_and_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let ssl_port = harness::free_port();
    let broker = TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"SASL_PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{ssl_port}\"\n\
             ssl_keystore_location = \"{}\"\n\
             connection_failed_authentication_delay_ms = 10\n\
             [sasl_plain_users]\n\
             admin = \"admin-secret\"",
            certs.broker_keystore.display()
        )
    });
    let (mut admin, _) = plain_login(broker.port(), "admin", "admin-secret");
    let made = alter(
        &mut admin,
        vec![],
        vec![
            upsert("alice", ScramMechanism::Sha256, "alice-secret", 4096),
            upsert("bob", ScramMechanism::Sha512, "bob-secret", 8192),
        ],
    );
    assert_eq!(made, [("alice".to_string(), 0), ("bob".to_string(), 0)]);

    let ca = certs.ca.display().to_string();
    let over_ssl = |mechanism, user, password| {
        vec![
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", ca.as_str()),
            ("sasl.mechanism", mechanism),
            ("sasl.username", user),
            ("sasl.password", password),
        ]
    };
    let plaintext = |mechanism, user, password| {
        vec![
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", user),
            ("sasl.password", password),
        ]
    };
    let ssl_bootstrap = format!("127.0.0.1:{ssl_port}");

    // bob produces over SASL_SSL with SCRAM-SHA-512.
    let bob = over_ssl("SCRAM-SHA-512", "bob", "bob-secret");
    let (producer, deliveries) = harness::producer(&ssl_bootstrap, &bob);
    for i in 0..10u8 {
        harness::send(&producer, BaseRecord::to("scram").payload([i].as_slice()));
    }
    harness::flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 10);

    // alice consumes over SASL_PLAINTEXT with SCRAM-SHA-256.
    let alice = plaintext("SCRAM-SHA-256", "alice", "alice-secret");
    let consumer = harness::consumer(&broker.bootstrap(), &alice);
    let records = harness::consume(&consumer, "scram", 1, 10, Duration::from_secs(30));
    assert_eq!(records.len(), 10);

    // Wrong passwords, and a client that speaks no SASL, are refused; the others go on.
    let wrong = metadata_error(&ssl_bootstrap, &over_ssl("SCRAM-SHA-512", "bob", "nope"));
    assert!(wrong.is_some(), "a wrong password was served");
    let wrong = metadata_error(
        &broker.bootstrap(),
        &plaintext("SCRAM-SHA-256", "alice", "x"),
    );
    assert!(wrong.is_some(), "a wrong password was served");
    let bare = metadata_error(&broker.bootstrap(), &[]);
    assert!(bare.is_some(), "a client without SASL was served");
    let again = harness::consumer(&ssl_bootstrap, &bob);
    let records = harness::consume(&again, "scram", 1, 10, Duration::from_secs(30));
    assert_eq!(records.len(), 10);
}

#[test]
fn plaintext_clients_on_a_sasl_port_make_one_warn_line() {
    let metrics = harness::free_port();
    let broker = TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"SASL_PLAINTEXT://127.0.0.1:{port}\"\n\
             metrics_listen = \"127.0.0.1:{metrics}\"\n\
             [sasl_plain_users]\n\
             admin = \"admin-secret\""
        )
    });
    for _ in 0..20 {
        let mut plaintext = Wire::connect(broker.port());
        assert!(!metadata_answers(&mut plaintext));
        assert!(plaintext.is_closed());
    }
    // Each closed connection told the listener before it closed; the listener accepts
    // this one after handling those, so once it is served every warning was written.
    let (mut admin, _) = plain_login(broker.port(), "admin", "admin-secret");
    assert!(metadata_answers(&mut admin));
    let logs = broker.logs();
    assert_eq!(
        logs.matches("unauthenticated connection").count(),
        1,
        "one warn line for 20 attempts:\n{logs}"
    );
    let page = scrape_until(metrics, "the failed authentications", |page| {
        sample(page, "broker_failed_authentication_total", &[]) == Some(20.0)
    });
    assert!(page.contains("broker_failed_authentication_total"));
}
