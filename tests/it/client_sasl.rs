//! SASL with real broker processes and files: the first administrator made offline with
//! `broker user add` logs in with SCRAM, and users made online with
//! AlterUserScramCredentials survive kill -9.

use std::process::Command;

use broker::security::scram::ScramMechanism;

use crate::actor_sasl::{alter, metadata_answers, plain_login, scram_login, upsert};
use crate::harness::TestBroker;

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
