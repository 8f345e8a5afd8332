//! The connection's SASL state machine with an in-memory credential source.

use std::collections::BTreeMap;

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ResponseKind, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::sasl::*;
use super::scram::{ScramCredential, ScramMechanism};

struct Users {
    plain: BTreeMap<String, String>,
    scram: BTreeMap<(String, ScramMechanism), ScramCredential>,
}

impl Credentials for Users {
    fn plain_password(&self, user: &str) -> Option<&str> {
        self.plain.get(user).map(String::as_str)
    }

    async fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
        self.scram.get(&(user.to_string(), m)).cloned()
    }
}

fn users() -> Users {
    let m = ScramMechanism::Sha256;
    Users {
        plain: [("alice".to_string(), "alice-secret".to_string())].into(),
        scram: [(
            ("bob".to_string(), m),
            ScramCredential::from_password(m, b"bob-secret", vec![7; 16], 4096),
        )]
        .into(),
    }
}

fn all() -> Vec<SaslMechanism> {
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        .iter()
        .map(|n| SaslMechanism::parse(n).unwrap())
        .collect()
}

fn handshake(server: &mut SaslServer, version: i16, mechanism: &str) -> SaslStep {
    let req =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
    server.handshake(version, req)
}

async fn token(server: &mut SaslServer, bytes: &[u8]) -> SaslStep {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes));
    server.authenticate(req, &users()).await
}

fn auth_error(step: &SaslStep) -> i16 {
    match step {
        SaslStep::Fail(ResponseKind::SaslAuthenticate(r)) => r.error_code,
        other => panic!("expected a failed SaslAuthenticate, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_succeeds_with_the_right_password_only() {
    let mut server = SaslServer::new(all());
    assert!(server.allows_api_versions());
    server.api_versions_answered();
    assert!(
        !server.allows_api_versions(),
        "one ApiVersions before the handshake"
    );
    assert!(matches!(
        handshake(&mut server, 1, "PLAIN"),
        SaslStep::Continue(_)
    ));
    assert!(
        !server.allows_api_versions(),
        "ApiVersions only before the handshake"
    );
    match token(&mut server, b"\0alice\0alice-secret").await {
        SaslStep::Authenticated(_, principal) => assert_eq!(principal.to_string(), "User:alice"),
        other => panic!("{other:?}"),
    }

    let mut server = SaslServer::new(all());
    handshake(&mut server, 1, "PLAIN");
    let step = token(&mut server, b"\0alice\0wrong").await;
    assert_eq!(
        auth_error(&step),
        ResponseError::SaslAuthenticationFailed.code()
    );
    // PLAIN also checks the SCRAM store.
    let mut server = SaslServer::new(all());
    handshake(&mut server, 1, "PLAIN");
    assert!(matches!(
        token(&mut server, b"\0bob\0bob-secret").await,
        SaslStep::Authenticated(..)
    ));
    let mut server = SaslServer::new(all());
    handshake(&mut server, 1, "PLAIN");
    let step = token(&mut server, b"\0nobody\0x").await;
    assert_eq!(
        auth_error(&step),
        ResponseError::SaslAuthenticationFailed.code()
    );
}

#[tokio::test]
async fn a_mechanism_not_enabled_is_refused_with_the_enabled_list() {
    let mut server = SaslServer::new(vec![SaslMechanism::Plain]);
    match handshake(&mut server, 1, "SCRAM-SHA-256") {
        SaslStep::Fail(ResponseKind::SaslHandshake(r)) => {
            assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
            let names: Vec<_> = r.mechanisms.iter().map(|m| m.to_string()).collect();
            assert_eq!(names, ["PLAIN"]);
        }
        other => panic!("{other:?}"),
    }
    let mut server = SaslServer::new(all());
    assert!(matches!(
        handshake(&mut server, 1, "GSSAPI"),
        SaslStep::Fail(_)
    ));
}

#[tokio::test]
async fn out_of_order_requests_are_illegal_sasl_state() {
    // SaslAuthenticate before the handshake.
    let mut server = SaslServer::new(all());
    let step = token(&mut server, b"\0alice\0alice-secret").await;
    assert_eq!(auth_error(&step), ResponseError::IllegalSaslState.code());
    // A second handshake.
    let mut server = SaslServer::new(all());
    handshake(&mut server, 1, "PLAIN");
    match handshake(&mut server, 1, "PLAIN") {
        SaslStep::Fail(ResponseKind::SaslHandshake(r)) => {
            assert_eq!(r.error_code, ResponseError::IllegalSaslState.code())
        }
        other => panic!("{other:?}"),
    }
    // Any other API closes without an answer.
    let mut server = SaslServer::new(all());
    assert!(matches!(
        server.unexpected(ApiKey::Metadata),
        SaslStep::Close(_)
    ));
}

#[tokio::test]
async fn scram_exchange_and_unknown_users() {
    let mut server = SaslServer::new(all());
    handshake(&mut server, 0, "SCRAM-SHA-256");
    assert!(
        server.expects_raw_token(),
        "v0 handshake: raw tokens follow"
    );
    let step = token(&mut server, b"n,,n=bob,r=abcdef").await;
    let SaslStep::Continue(ResponseKind::SaslAuthenticate(first)) = step else {
        panic!("{step:?}")
    };
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    assert!(server_first.starts_with("r=abcdef") && server_first.ends_with(",i=4096"));
    // A wrong proof fails.
    let nonce = server_first.split(',').next().unwrap();
    let step = token(&mut server, format!("c=biws,{nonce},p=AAAA").as_bytes()).await;
    assert_eq!(
        auth_error(&step),
        ResponseError::SaslAuthenticationFailed.code()
    );

    // An unknown user, or a user without that mechanism, fails at the first message.
    for user in ["nobody", "bob"] {
        let mut server = SaslServer::new(all());
        handshake(&mut server, 1, "SCRAM-SHA-512");
        let step = token(&mut server, format!("n,,n={user},r=abc").as_bytes()).await;
        assert_eq!(
            auth_error(&step),
            ResponseError::SaslAuthenticationFailed.code()
        );
    }
}

/// A PLAIN login checked against a SCRAM credential runs its PBKDF2 off the task: the
/// login's future is still pending after its first poll, where inline PBKDF2 would have
/// finished it (and held the thread) within that poll. The login then succeeds.
#[tokio::test(flavor = "current_thread")]
async fn a_plain_login_of_a_scram_user_hashes_off_the_task() {
    let mut server = SaslServer::new(all());
    handshake(&mut server, 1, "PLAIN");
    let req = SaslAuthenticateRequest::default()
        .with_auth_bytes(Bytes::from_static(b"\0bob\0bob-secret"));
    let credentials = users();
    let mut login = std::pin::pin!(server.authenticate(req, &credentials));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(login.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the PBKDF2 ran within the first poll");
    let step = login.await;
    assert!(
        matches!(&step, SaslStep::Authenticated(_, p) if p.name == "bob"),
        "{step:?}"
    );
}
