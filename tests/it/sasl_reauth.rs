//! Re-authentication (KIP-368, `connections_max_reauth_ms`): a successful
//! SaslAuthenticate v1+ answers the session lifetime; past it, a request other than a
//! re-authentication closes the connection, as Kafka does; a re-authentication on the same
//! connection must keep the mechanism and the principal and starts a new session.
//! librdkafka re-authenticates by itself and keeps producing across several sessions.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use rdkafka::producer::BaseRecord;

use broker::security::scram::ScramMechanism;

use crate::actor_sasl::{alter, authenticate, handshake, metadata_answers, plain_login, upsert};
use crate::client_metrics::{sample, scrape_until};
use crate::harness::{self, TestBroker};

fn reauth_broker(lifetime_ms: u64, metrics_port: u16) -> TestBroker {
    TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"SASL_PLAINTEXT://127.0.0.1:{port}\"\n\
             connections_max_reauth_ms = {lifetime_ms}\n\
             connection_failed_authentication_delay_ms = 10\n\
             metrics_listen = \"127.0.0.1:{metrics_port}\"\n\
             [sasl_plain_users]\n\
             admin = \"admin-secret\"\n\
             carol = \"carol-secret\""
        )
    })
}

/// Waits until `lifetime` has passed since `since`: the session's end is a point in time,
/// not an event the test could wait on.
fn wait_past(since: Instant, lifetime: Duration) {
    let end = since + lifetime + Duration::from_millis(50);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
}

#[test]
fn a_session_ends_unless_the_client_reauthenticates_as_itself() {
    const LIFETIME: Duration = Duration::from_millis(600);
    let broker = reauth_broker(LIFETIME.as_millis() as u64, harness::free_port());
    let port = broker.port();

    // The lifetime is answered; within it the connection is served.
    let (mut expiring, r) = plain_login(port, "admin", "admin-secret");
    let started = Instant::now(); // after the broker's success, so past the session's start
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 600));
    assert!(metadata_answers(&mut expiring));
    let (mut renewing, _) = plain_login(port, "admin", "admin-secret");
    let (mut other, _) = plain_login(port, "admin", "admin-secret");
    let (mut mechanism, _) = plain_login(port, "admin", "admin-secret");

    // Past it: a request other than a re-authentication closes the connection unanswered.
    wait_past(started, LIFETIME);
    assert!(!metadata_answers(&mut expiring));
    assert!(expiring.is_closed());

    // A re-authentication as the same principal starts a new session, then serves.
    assert_eq!(handshake(&mut renewing, 1, "PLAIN").unwrap().error_code, 0);
    let r = authenticate(&mut renewing, b"\0admin\0admin-secret").unwrap();
    let renewed = Instant::now();
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 600));
    assert!(metadata_answers(&mut renewing));

    // As another principal: SASL_AUTHENTICATION_FAILED, then closed.
    assert_eq!(handshake(&mut other, 1, "PLAIN").unwrap().error_code, 0);
    let r = authenticate(&mut other, b"\0carol\0carol-secret").unwrap();
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(other.is_closed());

    // With another mechanism: UNSUPPORTED_SASL_MECHANISM, then closed.
    let h = handshake(&mut mechanism, 1, "SCRAM-SHA-512").unwrap();
    assert_eq!(h.error_code, ResponseError::UnsupportedSaslMechanism.code());
    assert!(mechanism.is_closed());

    // The renewed session ends in its turn.
    wait_past(renewed, LIFETIME);
    assert!(!metadata_answers(&mut renewing));
}

#[test]
fn librdkafka_reauthenticates_and_keeps_producing() {
    const LIFETIME_MS: u64 = 2000;
    let metrics = harness::free_port();
    let broker = reauth_broker(LIFETIME_MS, metrics);
    let (mut admin, _) = plain_login(broker.port(), "admin", "admin-secret");
    let made = alter(
        &mut admin,
        vec![],
        vec![upsert("bob", ScramMechanism::Sha512, "bob-secret", 4096)],
    );
    assert_eq!(made, [("bob".to_string(), 0)]);
    let bob = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "bob"),
        ("sasl.password", "bob-secret"),
        ("acks", "all"),
        ("linger.ms", "0"),
    ];
    let (producer, deliveries) = harness::producer(&broker.bootstrap(), &bob);
    let counter = |page: &str, name: &str| sample(page, name, &[]).unwrap_or(0.0);
    // Produce until three re-authentications were counted (each session lasts 2 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0usize;
    loop {
        for _ in 0..20 {
            let record = BaseRecord::to("reauth").payload(b"v".as_slice());
            harness::send_and_wait(&producer, &deliveries, record);
            sent += 1;
        }
        let page = scrape_until(metrics, "metrics", |_| true);
        if counter(&page, "broker_successful_reauthentication_total") >= 3.0 {
            assert_eq!(
                counter(&page, "broker_expired_connections_killed_total"),
                0.0,
                "no connection outlived its session"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three re-authentications within 60 s"
        );
    }
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), sent);
    assert_eq!(deliveries.failed.load(Ordering::SeqCst), 0);
}
