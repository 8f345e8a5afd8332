//! The `sasl` target: fuzzed bytes sent, as one client connection each, to a real
//! SASL_PLAINTEXT listener of a broker on the simulated disk. An input is what a client
//! writes: frames (`[length][body]`) of ApiVersions, SaslHandshake (v0 with its raw
//! tokens, v1), SaslAuthenticate, and other APIs before authentication.
//!
//! Findings, besides a hang (the broker must close or answer within a bound):
//! - a crash: any panic in the process, in a connection's task or actor too (the panic
//!   hook counts them);
//! - an authentication bypass: the broker has one PLAIN and one SCRAM user whose
//!   passwords are random per run and in no input, so no connection can authenticate.
//!   A request other than ApiVersions, SaslHandshake and SaslAuthenticate must then never
//!   be served, which is checked on both sides: the broker's `broker_requests_total`
//!   counter (counted for every request the connection dispatches) must see only
//!   ApiVersions, and no response may carry the correlation id of such a request (each
//!   gets a tag no other frame carries before it is sent).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use broker::actors::broker::Broker;
use broker::config::{Config, PlainUsers};
use broker::protocol::dispatch;
use broker::security::scram::{self, ScramMechanism};
use broker::storage::sim::SimStorage;

use crate::corpus::request_frame;

/// Requests the broker served (dispatched) other than ApiVersions, counted by the
/// recorder below from the broker's own `broker_requests_total`.
static SERVED_OTHER: AtomicU64 = AtomicU64::new(0);

/// The top 16 bits of the correlation id a frame of another API is sent with.
const TAG: u32 = 0x5EC0_0000;

/// A metrics recorder that counts requests served other than ApiVersions and drops the
/// rest.
struct ServedRecorder;

struct ServedCounter;

impl metrics::CounterFn for ServedCounter {
    fn increment(&self, value: u64) {
        SERVED_OTHER.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, _value: u64) {}
}

impl metrics::Recorder for ServedRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let other_api = key
            .labels()
            .any(|l| l.key() == "api" && l.value() != "ApiVersions");
        if key.name() == broker::metrics::REQUESTS && other_api {
            metrics::Counter::from_arc(Arc::new(ServedCounter))
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

pub struct SaslTarget {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    /// Panics seen by the hook (in any thread) so far.
    panics: &'static AtomicU64,
    /// Inputs that sent at least one request of another API.
    pub early_requests: std::cell::Cell<u64>,
}

impl SaslTarget {
    pub fn new(panics: &'static AtomicU64) -> Self {
        metrics::set_global_recorder(ServedRecorder).expect("no other metrics recorder");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = Config {
            listeners: Some("SASL_PLAINTEXT://127.0.0.1:0".into()),
            data_dir: "/data".into(),
            connection_failed_authentication_delay_ms: 0,
            sasl_plain_users: PlainUsers([("admin".to_string(), scram::server_nonce())].into()),
            ..Config::default()
        };
        let broker = runtime
            .block_on(Broker::start(config, Arc::new(SimStorage::new())))
            .expect("broker");
        let addr = broker.local_addr;
        let ctx = broker.context();
        std::mem::forget(broker); // lives for the whole run
                                  // alice has a SCRAM-SHA-256 credential, so the exchange reaches its final message.
        let salt = scram::new_salt();
        let salted =
            ScramMechanism::Sha256.salted_password(scram::server_nonce().as_bytes(), &salt, 4096);
        let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_static_str("alice"))
                .with_mechanism(ScramMechanism::Sha256.wire_id())
                .with_iterations(4096)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        ]);
        runtime.block_on(async {
            let request = RequestKind::AlterUserScramCredentials(upsert);
            let prepared = dispatch::prepare(&ctx, 0, request, &Default::default())
                .await
                .expect("AlterUserScramCredentials v0 is served");
            let ResponseKind::AlterUserScramCredentials(r) = prepared.response.await else {
                panic!("not an AlterUserScramCredentials response");
            };
            assert_eq!(r.results[0].error_code, 0, "alice is made");
        });
        SaslTarget {
            runtime,
            addr,
            panics,
            early_requests: std::cell::Cell::new(0),
        }
    }

    pub fn run(&self, input: &[u8]) {
        let (input, tags) = tag_other_requests(input);
        if !tags.is_empty() {
            self.early_requests.set(self.early_requests.get() + 1);
        }
        let panics_before = self.panics.load(Ordering::SeqCst);
        let served_before = SERVED_OTHER.load(Ordering::SeqCst);
        let addr = self.addr;
        let answers = self.runtime.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut read, mut write) = stream.into_split();
            let writing = async move {
                // The broker may close first: what it did not read is its business.
                let _ = write.write_all(&input).await;
                let _ = write.shutdown().await;
            };
            let reading = async move {
                let mut answers = Vec::new();
                let _ = read.read_to_end(&mut answers).await;
                answers
            };
            let both = async { tokio::join!(writing, reading).1 };
            tokio::time::timeout(Duration::from_secs(5), both)
                .await
                .expect("the broker answers or closes within 5 s (no hang)")
        });
        // A bad frame is the reading task's to refuse; a connection actor that panics
        // is a crash.
        assert_eq!(
            self.panics.load(Ordering::SeqCst),
            panics_before,
            "a panic while the broker served this input"
        );
        // The responses are written before the connection closes, so the count is final.
        assert_eq!(
            SERVED_OTHER.load(Ordering::SeqCst),
            served_before,
            "authentication bypass: a request other than ApiVersions was served before authentication"
        );
        for answer in split_frames(&answers) {
            if answer.len() >= 4 {
                let correlation = u32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
                assert!(
                    !tags.contains(&correlation),
                    "authentication bypass: a request other than ApiVersions or SASL was answered before authentication"
                );
            }
        }
    }
}

/// Frame bodies as the broker splits them: `[length][body]` while the length is sane.
fn split_frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let length = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        if rest.len() - 4 < length {
            break;
        }
        frames.push(&rest[4..4 + length]);
        rest = &rest[4 + length..];
    }
    frames
}

/// The input with every frame of another API than ApiVersions, SaslHandshake and
/// SaslAuthenticate given correlation id `TAG | n`, and no other frame a correlation id in
/// that range; returns those tags.
fn tag_other_requests(input: &[u8]) -> (Vec<u8>, Vec<u32>) {
    let mut out = input.to_vec();
    let mut tags = Vec::new();
    let mut pos = 0usize;
    while pos + 4 <= out.len() {
        let length = i32::from_be_bytes([out[pos], out[pos + 1], out[pos + 2], out[pos + 3]]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let body = pos + 4;
        if length >= 8 && body + 8 <= out.len() {
            let api = i16::from_be_bytes([out[body], out[body + 1]]);
            let sasl_or_versions = [
                ApiKey::ApiVersions as i16,
                ApiKey::SaslHandshake as i16,
                ApiKey::SaslAuthenticate as i16,
            ]
            .contains(&api);
            let old =
                u32::from_be_bytes([out[body + 4], out[body + 5], out[body + 6], out[body + 7]]);
            let new = if sasl_or_versions {
                if old & 0xFFFF_0000 == TAG {
                    old & 0xFFFF
                } else {
                    old
                }
            } else {
                let tag = TAG | (tags.len() as u32 & 0xFFFF);
                tags.push(tag);
                tag
            };
            out[body + 4..body + 8].copy_from_slice(&new.to_be_bytes());
        }
        pos = body.saturating_add(length);
    }
    (out, tags)
}

// ---- corpus seeds ----

fn with_length(body: Vec<u8>) -> Vec<u8> {
    let mut framed = (body.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    framed
}

fn handshake(version: i16, mechanism: &'static str) -> Vec<u8> {
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    with_length(request_frame(ApiKey::SaslHandshake, version, &request))
}

fn authenticate(version: i16, token: &[u8]) -> Vec<u8> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    with_length(request_frame(ApiKey::SaslAuthenticate, version, &request))
}

/// ApiVersions at `version`; past v3 a v3 body with that version (the codec knows v4 at
/// most).
fn api_versions(version: i16) -> Vec<u8> {
    let request = ApiVersionsRequest::default();
    let mut body = request_frame(ApiKey::ApiVersions, version.min(3), &request);
    body[2..4].copy_from_slice(&version.to_be_bytes());
    with_length(body)
}

fn raw(token: &[u8]) -> Vec<u8> {
    with_length(token.to_vec())
}

/// The seeds: whole exchanges with wrong credentials, in each version, and other APIs
/// before, during and after the exchange. `others` are frames of other APIs (the frame
/// target's seeds), without their length.
pub fn seeds(others: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let scram_first = b"n,,n=alice,r=fuzznonce0123456789";
    let scram_final =
        b"c=biws,r=fuzznonce0123456789server,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        (
            "plain-v1.bin".into(),
            [
                api_versions(3),
                handshake(1, "PLAIN"),
                authenticate(2, b"\0admin\0guess"),
            ]
            .concat(),
        ),
        (
            "plain-v1-auth-v0.bin".into(),
            [
                handshake(1, "PLAIN"),
                authenticate(0, b"alice\0alice\0guess"),
            ]
            .concat(),
        ),
        (
            "scram-v1.bin".into(),
            [
                api_versions(3),
                handshake(1, "SCRAM-SHA-256"),
                authenticate(1, scram_first),
                authenticate(2, scram_final),
            ]
            .concat(),
        ),
        (
            "scram512-unknown-user.bin".into(),
            [
                handshake(1, "SCRAM-SHA-512"),
                authenticate(2, b"n,,n=mallory,r=x"),
            ]
            .concat(),
        ),
        (
            "plain-v0-raw.bin".into(),
            [handshake(0, "PLAIN"), raw(b"\0admin\0guess")].concat(),
        ),
        (
            "scram-v0-raw.bin".into(),
            [
                api_versions(0),
                handshake(0, "SCRAM-SHA-256"),
                raw(scram_first),
                raw(scram_final),
            ]
            .concat(),
        ),
        (
            "unknown-mechanism.bin".into(),
            [handshake(1, "GSSAPI"), authenticate(2, b"x")].concat(),
        ),
        (
            "authenticate-first.bin".into(),
            authenticate(2, b"\0admin\0guess"),
        ),
        (
            "two-handshakes.bin".into(),
            [handshake(1, "PLAIN"), handshake(1, "SCRAM-SHA-512")].concat(),
        ),
        (
            "two-api-versions.bin".into(),
            [api_versions(3), api_versions(3), api_versions(99)].concat(),
        ),
    ];
    for (name, frame) in others {
        let early = with_length(frame.clone());
        seeds.push((format!("early-{name}"), early.clone()));
        seeds.push((
            format!("mid-{name}"),
            [
                handshake(1, "PLAIN"),
                early.clone(),
                authenticate(2, b"\0admin\0guess"),
            ]
            .concat(),
        ));
        seeds.push((
            format!("after-failure-{name}"),
            [
                handshake(1, "PLAIN"),
                authenticate(2, b"\0admin\0guess"),
                early,
            ]
            .concat(),
        ));
    }
    seeds
}
