//! ACLs with librdkafka over SASL_PLAINTEXT and SCRAM-SHA-512, against a broker process:
//! the super user lets alice write topic `t1` only. Her produce to `t1` is delivered, to
//! `t2` it fails with TOPIC_AUTHORIZATION_FAILED, her Metadata does not list `t2`, and
//! once the ACL is deleted her next produce on the same connection fails too.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;

use broker::security::scram::ScramMechanism;

use crate::acl_matrix::{acl, create_acls, delete_acls, ALLOW, LITERAL, TOPIC, WRITE};
use crate::actor_sasl::{alter, plain_login, scram_login, upsert};
use crate::harness::{self, Deliveries, TestBroker};

/// Sends one record to `topic` and waits for its report: None if delivered, else the error
/// (librdkafka refuses at once a topic its metadata already marks unauthorized, else the
/// delivery report carries the broker's error).
fn deliver(
    producer: &harness::CountingProducer,
    deliveries: &Deliveries,
    topic: &str,
) -> Option<String> {
    let failed = deliveries.failed.load(Ordering::SeqCst);
    let record = BaseRecord::to(topic).payload(b"v".as_slice());
    if let Err(refused) = harness::try_send_and_wait(producer, deliveries, record) {
        return Some(refused.to_string());
    }
    if deliveries.failed.load(Ordering::SeqCst) == failed {
        return None;
    }
    let mut first = deliveries.first_error.lock().unwrap();
    Some(first.take().unwrap_or_default())
}

#[test]
fn alice_may_write_t1_only_and_loses_it_when_the_acl_is_deleted() {
    let broker = TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"SASL_PLAINTEXT://127.0.0.1:{port}\"\n\
             authorizer_class_name = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
             super_users = \"User:admin\"\n\
             connection_failed_authentication_delay_ms = 10\n\
             [sasl_plain_users]\n\
             admin = \"admin-secret\""
        )
    });
    let s512 = ScramMechanism::Sha512;
    let (mut bootstrap_admin, _) = plain_login(broker.port(), "admin", "admin-secret");
    let made = alter(
        &mut bootstrap_admin,
        vec![],
        vec![
            upsert("admin", s512, "admin-scram", 4096),
            upsert("alice", s512, "alice-secret", 4096),
        ],
    );
    assert_eq!(made, [("admin".into(), 0), ("alice".into(), 0)]);
    let mut admin = scram_login(broker.port(), s512, "admin", "admin-scram").expect("admin");
    admin.create_topic("t1", 1);
    admin.create_topic("t2", 1);
    let allow = acl(TOPIC, "t1", LITERAL, "User:alice", WRITE, ALLOW);
    assert_eq!(create_acls(&mut admin, vec![allow]), [0]);

    let alice = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
        ("message.timeout.ms", "10000"),
        ("retries", "0"),
    ];
    let (producer, deliveries) = harness::producer(&broker.bootstrap(), &alice);
    assert_eq!(deliver(&producer, &deliveries, "t1"), None);
    let refused = deliver(&producer, &deliveries, "t2").expect("t2 is refused");
    assert!(refused.contains("uthorization"), "{refused}");

    let consumer = harness::consumer(&broker.bootstrap(), &alice);
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("alice's Metadata");
    let names: Vec<_> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    assert_eq!(names, ["t1"], "WRITE implies DESCRIBE on t1 only");

    // Deleted: the producer's open connection is refused at its next produce.
    assert_eq!(delete_acls(&mut admin, "User:alice", 1, 1), (0, 1));
    let refused = deliver(&producer, &deliveries, "t1").expect("t1 is refused now");
    assert!(refused.contains("uthorization"), "{refused}");
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 1);
}
