//! SASL on a SASL_PLAINTEXT listener (`listeners = "SASL_PLAINTEXT://..."`), with the
//! broker in process on a simulated disk (so a restart can follow a power cut). Raw frames
//! check Kafka's exchange rules and error codes; librdkafka produces and consumes with
//! PLAIN; SCRAM users made with AlterUserScramCredentials log in and survive a restart.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;
use sha2::{Digest, Sha256, Sha512};

use crate::in_process::InProcessBroker;
use broker::config::{Config, PlainUsers};
use broker::security::scram::ScramMechanism;
use broker::storage::sim::SimStorage;

use crate::harness;
use crate::hostile_wire::{text, Wire};

const FAILED_AUTH_DELAY_MS: u64 = 50;

/// A broker on a simulated disk whose clients talk to a SASL_PLAINTEXT listener.
struct SaslBroker {
    broker: InProcessBroker,
    port: u16,
}

impl SaslBroker {
    fn start(storage: &SimStorage) -> SaslBroker {
        let port = harness::free_port();
        let config = Config {
            listeners: Some(format!("SASL_PLAINTEXT://127.0.0.1:{port}")),
            data_dir: "/data".into(),
            group_initial_rebalance_delay_ms: 0,
            sasl_plain_users: PlainUsers(
                [("admin".to_string(), "admin-secret".to_string())].into(),
            ),
            connection_failed_authentication_delay_ms: FAILED_AUTH_DELAY_MS,
            ..Config::default()
        };
        SaslBroker {
            broker: InProcessBroker::start(config, Arc::new(storage.clone())),
            port,
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(self) {
        self.broker.stop();
    }
}

pub(crate) fn handshake(
    wire: &mut Wire,
    version: i16,
    mechanism: &str,
) -> Option<SaslHandshakeResponse> {
    wire.call(
        version,
        &SaslHandshakeRequest::default().with_mechanism(text(mechanism)),
    )
}

pub(crate) fn authenticate(wire: &mut Wire, token: &[u8]) -> Option<SaslAuthenticateResponse> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(token.to_vec().into());
    wire.call(2, &req)
}

pub(crate) fn plain_login(
    port: u16,
    user: &str,
    password: &str,
) -> (Wire, SaslAuthenticateResponse) {
    let mut wire = Wire::connect(port);
    let versions = wire
        .call(3, &ApiVersionsRequest::default())
        .expect("ApiVersions");
    assert_eq!(versions.error_code, 0);
    let h = handshake(&mut wire, 1, "PLAIN").expect("handshake answered");
    assert_eq!(h.error_code, 0);
    let token = format!("\0{user}\0{password}");
    let r = authenticate(&mut wire, token.as_bytes()).expect("authenticate answered");
    (wire, r)
}

pub(crate) fn metadata_answers(wire: &mut Wire) -> bool {
    wire.call(12, &MetadataRequest::default().with_topics(Some(vec![])))
        .is_some()
}

#[test]
fn kafkas_exchange_rules_on_raw_frames() {
    let broker = SaslBroker::start(&SimStorage::new());
    let port = broker.port;

    // The right password: authenticated, then served.
    let (mut admin, r) = plain_login(port, "admin", "admin-secret");
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0));
    assert!(metadata_answers(&mut admin));

    // A request before authentication closes the connection without an answer.
    let mut early = Wire::connect(port);
    assert!(!metadata_answers(&mut early));
    assert!(early.is_closed());

    // A wrong password: SASL_AUTHENTICATION_FAILED with a message, then closed.
    let (mut wrong, r) = plain_login(port, "admin", "guess");
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(r.error_message.unwrap().contains("PLAIN"));
    assert!(wrong.is_closed());

    // A mechanism that is not enabled: UNSUPPORTED_SASL_MECHANISM and the enabled list.
    let mut gssapi = Wire::connect(port);
    let h = handshake(&mut gssapi, 1, "GSSAPI").unwrap();
    assert_eq!(h.error_code, ResponseError::UnsupportedSaslMechanism.code());
    let names: Vec<_> = h.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(gssapi.is_closed());

    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE, then closed.
    let mut early = Wire::connect(port);
    let r = authenticate(&mut early, b"\0admin\0admin-secret").unwrap();
    assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
    assert!(early.is_closed());

    // After authentication, another handshake is ILLEGAL_SASL_STATE (no re-authentication).
    let h = handshake(&mut admin, 1, "PLAIN").unwrap();
    assert_eq!(h.error_code, ResponseError::IllegalSaslState.code());

    // The legacy v0 handshake, then a raw token: an empty answer means success.
    let mut legacy = Wire::connect(port);
    assert_eq!(handshake(&mut legacy, 0, "PLAIN").unwrap().error_code, 0);
    assert_eq!(legacy.raw_token(b"\0admin\0admin-secret"), Some(Vec::new()));
    assert!(metadata_answers(&mut legacy));
    let mut legacy = Wire::connect(port);
    handshake(&mut legacy, 0, "PLAIN").unwrap();
    assert_eq!(
        legacy.raw_token(b"\0admin\0nope"),
        None,
        "closed, no answer"
    );

    // A frame larger than sasl_server_max_receive_size before authentication closes.
    let mut big = Wire::connect(port);
    assert!(big.write(&(600_000i32).to_be_bytes()));
    assert!(big.is_closed());

    // The authenticated connection was served throughout.
    assert!(metadata_answers(&mut admin));
    broker.stop();
}

/// RFC 5802's client side; returns the connection if the server's signature checked out.
pub(crate) fn scram_login(
    port: u16,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> Option<Wire> {
    let mut wire = Wire::connect(port);
    let h = handshake(&mut wire, 1, mechanism.mechanism_name())?;
    assert_eq!(h.error_code, 0);
    let bare = format!("n={user},r=clientnonce123");
    let first = authenticate(&mut wire, format!("n,,{bare}").as_bytes())?;
    if first.error_code != 0 {
        return None;
    }
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let mut fields = server_first.split(',');
    let nonce = fields.next()?.strip_prefix("r=")?.to_string();
    assert!(nonce.starts_with("clientnonce123") && nonce.len() > 30);
    let salt = BASE64.decode(fields.next()?.strip_prefix("s=")?).unwrap();
    let iterations: u32 = fields.next()?.strip_prefix("i=")?.parse().unwrap();
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        match mechanism {
            ScramMechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(&client_key).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(&client_key).to_vec(),
    };
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let last = format!("{without_proof},p={}", BASE64.encode(proof));
    let last = authenticate(&mut wire, last.as_bytes())?;
    if last.error_code != 0 {
        assert_eq!(
            last.error_code,
            ResponseError::SaslAuthenticationFailed.code()
        );
        assert!(wire.is_closed());
        return None;
    }
    let server_key = hmac(&salted, b"Server Key");
    let expected = format!("v={}", BASE64.encode(hmac(&server_key, auth.as_bytes())));
    assert_eq!(
        last.auth_bytes.to_vec(),
        expected.into_bytes(),
        "server proves it knows the key"
    );
    Some(wire)
}

pub(crate) fn upsert(
    user: &str,
    mechanism: ScramMechanism,
    password: &str,
    iterations: i32,
) -> ScramCredentialUpsertion {
    let salt = format!("salt-of-{user}").into_bytes();
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
    ScramCredentialUpsertion::default()
        .with_name(text(user))
        .with_mechanism(mechanism.wire_id())
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

pub(crate) fn alter(
    wire: &mut Wire,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Vec<(String, i16)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(deletions)
        .with_upsertions(upsertions);
    let r = wire
        .call(0, &req)
        .expect("AlterUserScramCredentials answered");
    let mut results: Vec<_> = r
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    results.sort();
    results
}

fn describe(wire: &mut Wire, users: Option<&[&str]>) -> DescribeUserScramCredentialsResponse {
    let users = users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(text(n)))
            .collect()
    });
    wire.call(
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(users),
    )
    .expect("DescribeUserScramCredentials answered")
}

#[test]
fn scram_users_made_online_log_in_and_survive_a_restart() {
    let storage = SimStorage::new();
    let broker = SaslBroker::start(&storage);
    let port = broker.port;
    let (mut admin, _) = plain_login(port, "admin", "admin-secret");
    let s256 = ScramMechanism::Sha256;
    let s512 = ScramMechanism::Sha512;

    let results = alter(
        &mut admin,
        vec![],
        vec![
            upsert("alice", s512, "alice-secret", 8192),
            upsert("bob", s256, "bob-secret", 4096),
            upsert("few", s256, "x", 4095),
            upsert("many", s256, "x", 16385),
            upsert("", s256, "x", 4096),
            upsert("twice", s256, "x", 4096),
            upsert("twice", s512, "x", 4096),
            upsert("odd", s256, "x", 4096).with_mechanism(0),
        ],
    );
    let code = |e: ResponseError| e.code();
    assert_eq!(
        results,
        [
            ("".to_string(), code(ResponseError::UnacceptableCredential)),
            ("alice".to_string(), 0),
            ("bob".to_string(), 0),
            (
                "few".to_string(),
                code(ResponseError::UnacceptableCredential)
            ),
            (
                "many".to_string(),
                code(ResponseError::UnacceptableCredential)
            ),
            (
                "odd".to_string(),
                code(ResponseError::UnsupportedSaslMechanism)
            ),
            ("twice".to_string(), code(ResponseError::DuplicateResource)),
        ]
    );
    let deleted = alter(
        &mut admin,
        vec![ScramCredentialDeletion::default()
            .with_name(text("bob"))
            .with_mechanism(s512.wire_id())],
        vec![],
    );
    assert_eq!(
        deleted,
        [("bob".to_string(), code(ResponseError::ResourceNotFound))]
    );

    let d = describe(&mut admin, None);
    assert_eq!(d.error_code, 0);
    let listed: Vec<_> = d
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("alice".to_string(), vec![(2, 8192)]),
            ("bob".to_string(), vec![(1, 4096)])
        ]
    );
    let d = describe(&mut admin, Some(&["nobody", "alice", "alice"]));
    let codes: Vec<_> = d
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("nobody".to_string(), code(ResponseError::ResourceNotFound)),
            ("alice".to_string(), code(ResponseError::DuplicateResource)),
        ]
    );

    // Log in with each; a wrong password or the other mechanism fails.
    let mut alice = scram_login(port, s512, "alice", "alice-secret").expect("alice logs in");
    assert!(metadata_answers(&mut alice));
    assert!(scram_login(port, s256, "bob", "bob-secret").is_some());
    assert!(scram_login(port, s512, "alice", "wrong").is_none());
    assert!(scram_login(port, s256, "alice", "alice-secret").is_none());
    // PLAIN checks the SCRAM store too.
    let (_, r) = plain_login(port, "alice", "alice-secret");
    assert_eq!(r.error_code, 0);
    broker.stop();

    // After a restart (and a power cut: every record was fsynced) the users are there.
    storage.power_cut();
    let broker = SaslBroker::start(&storage);
    let port = broker.port;
    assert!(scram_login(port, s512, "alice", "alice-secret").is_some());
    let (mut admin, _) = plain_login(port, "admin", "admin-secret");
    let deleted = alter(
        &mut admin,
        vec![ScramCredentialDeletion::default()
            .with_name(text("bob"))
            .with_mechanism(s256.wire_id())],
        vec![],
    );
    assert_eq!(deleted, [("bob".to_string(), 0)]);
    assert!(scram_login(port, s256, "bob", "bob-secret").is_none());
    broker.stop();
}

#[test]
fn librdkafka_produces_and_consumes_with_plain_and_a_wrong_password_fails() {
    let broker = SaslBroker::start(&SimStorage::new());
    let bootstrap = broker.bootstrap();
    let sasl = |password: &'static str| {
        vec![
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "admin"),
            ("sasl.password", password),
        ]
    };
    // The topic is auto-created by the first produce.
    let (producer, deliveries) = harness::producer(&bootstrap, &sasl("admin-secret"));
    for i in 0..10 {
        let value = format!("v{i}");
        harness::send(
            &producer,
            BaseRecord::to("t1").payload(value.as_bytes()).key(b"k"),
        );
    }
    harness::flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 10);

    // A wrong password gets an authentication error, and the others are served.
    let wrong = harness::consumer(&bootstrap, &sasl("guess"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let err = loop {
        match wrong.fetch_metadata(None, Duration::from_secs(2)) {
            Err(err) => break err,
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => panic!("a wrong password was served"),
        }
    };
    assert!(
        format!("{err:?}").contains("Authentication") || format!("{err:?}").contains("Transport"),
        "{err:?}"
    );
    let consumer = harness::consumer(&bootstrap, &sasl("admin-secret"));
    let records = harness::consume(&consumer, "t1", 1, 10, Duration::from_secs(30));
    assert_eq!(records.len(), 10);
    broker.stop();
}

/// No authentication bypass: every API the broker serves, sent as the first request (a
/// default body at its lowest version) or after a handshake, closes the connection
/// unanswered; ApiVersions is answered only before the handshake.
#[test]
fn no_request_is_served_before_authentication() {
    use kafka_protocol::protocol::Encodable;
    let broker = SaslBroker::start(&SimStorage::new());
    let port = broker.port;
    let exempt = [
        ApiKey::ApiVersions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
    ];
    let mut tried = 0;
    for (api, min, _) in broker::protocol::versions::SUPPORTED {
        if exempt.contains(api) {
            continue;
        }
        for after_handshake in [false, true] {
            let mut wire = Wire::connect(port);
            if after_handshake {
                assert_eq!(handshake(&mut wire, 1, "PLAIN").unwrap().error_code, 0);
            }
            let header = RequestHeader::default()
                .with_request_api_key(*api as i16)
                .with_request_api_version(*min)
                .with_correlation_id(1);
            let mut frame = bytes::BytesMut::new();
            header
                .encode(&mut frame, api.request_header_version(*min))
                .unwrap();
            // A body of zeros: whatever it decodes to, it must not be served.
            frame.extend_from_slice(&[0u8; 64]);
            let mut bytes = (frame.len() as i32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame);
            assert!(wire.write(&bytes));
            assert!(
                wire.is_closed(),
                "{api:?} v{min} was answered before authentication"
            );
            tried += 1;
        }
    }
    assert!(tried >= 2 * 35, "every API tried: {tried}");
    // A second ApiVersions before the handshake closes, as in Kafka.
    let mut wire = Wire::connect(port);
    let r = wire.call(3, &ApiVersionsRequest::default()).unwrap();
    assert_eq!(r.error_code, 0);
    assert!(wire.call(3, &ApiVersionsRequest::default()).is_none());
    // ApiVersions after the handshake closes too.
    let mut wire = Wire::connect(port);
    handshake(&mut wire, 1, "PLAIN").unwrap();
    assert!(wire.call(3, &ApiVersionsRequest::default()).is_none());
    // And the broker still serves an authenticated client.
    let (mut admin, r) = plain_login(port, "admin", "admin-secret");
    assert_eq!(r.error_code, 0);
    assert!(metadata_answers(&mut admin));
    broker.stop();
}

/// Password guessing is slowed: every failed attempt is answered no sooner than
/// connection_failed_authentication_delay_ms, on one connection after another and on many
/// at once, while an authenticated client is served throughout.
#[test]
fn failed_authentications_are_delayed_and_others_are_served() {
    let broker = SaslBroker::start(&SimStorage::new());
    let port = broker.port;
    let delay = Duration::from_millis(FAILED_AUTH_DELAY_MS);
    let (mut admin, _) = plain_login(port, "admin", "admin-secret");
    for _ in 0..20 {
        let started = Instant::now();
        let (mut wire, r) = plain_login(port, "admin", "guess");
        assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
        assert!(
            started.elapsed() >= delay,
            "answered after {:?}",
            started.elapsed()
        );
        assert!(wire.is_closed());
        assert!(metadata_answers(&mut admin));
    }
    // 50 guessing connections at once: each waits its delay; the admin is served meanwhile.
    let guesses: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let (_, r) = plain_login(port, "admin", "guess");
                (r.error_code, started.elapsed())
            })
        })
        .collect();
    for _ in 0..20 {
        assert!(metadata_answers(&mut admin));
    }
    for guess in guesses {
        let (code, took) = guess.join().unwrap();
        assert_eq!(code, ResponseError::SaslAuthenticationFailed.code());
        assert!(took >= delay, "answered after {took:?}");
    }
    broker.stop();
}
