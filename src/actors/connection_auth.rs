//! The SASL exchange on a connection's reading task (SASL_PLAINTEXT and SASL_SSL
//! listeners): each frame read before authentication succeeds goes through here, one at
//! a time, so the exchange is answered in order and nothing else runs before it ends.
//! ApiVersions is served as usual; SaslHandshake and SaslAuthenticate go to the
//! connection's `SaslServer`; any other request closes the connection (see
//! `security/sasl.rs` for Kafka's rules). Users come from `sasl_plain_users` and, through
//! the metadata actor, from the SCRAM store.
//!
//! Re-authentication (KIP-368): with `connections_max_reauth_ms` above 0 a successful
//! SaslAuthenticate (v1 and later) answers that as `session_lifetime_ms`, and the session
//! ends that long after. The client re-authenticates on the same connection with a
//! SaslHandshake (v1) and SaslAuthenticate of the same mechanism, as the same principal,
//! which starts a new session; a request other than SaslHandshake after the session ended
//! closes the connection, as Kafka does (also for clients that cannot re-authenticate).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::actors::metadata::MetadataMsg;
use crate::protocol::frame::{self, FrameError};
use crate::protocol::handlers::text;
use crate::protocol::{versions, BrokerContext};
use crate::security::sasl::{Credentials, SaslMechanism, SaslServer, SaslStep};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::KafkaPrincipal;

/// What the reading task does with a frame read before authentication.
pub(super) enum PreAuth {
    /// An ApiVersions request, or any request within an authenticated session: serve it
    /// as usual.
    Serve(Bytes),
    /// Write this frame and read on.
    Answer(Bytes),
    /// Write this frame; the connection is now this principal.
    Authenticated(Bytes, KafkaPrincipal),
    /// Wait the failed-authentication delay, write this frame (if any), then close.
    Fail(Option<Bytes>),
    /// Close at once, without an answer.
    Close(String),
    /// The session ended (connections_max_reauth_ms) and the client sent a request other
    /// than a re-authentication: close at once, as Kafka does.
    Expired,
}

/// The SASL side of a connection on a SASL listener: the exchange under way (before the
/// first success, and during a re-authentication) and the session it gave.
pub(super) struct SaslSession {
    exchange: Option<SaslServer>,
    session: Option<Established>,
    /// connections_max_reauth_ms; 0: sessions do not end.
    reauth_ms: u64,
}

/// What the first successful authentication established.
struct Established {
    mechanism: SaslMechanism,
    principal: KafkaPrincipal,
    /// When the session ends (None: never).
    ends: Option<Instant>,
}

impl SaslSession {
    pub(super) fn new(ctx: &BrokerContext) -> SaslSession {
        let enabled = ctx.config.sasl_mechanisms().unwrap_or_default();
        SaslSession {
            exchange: Some(SaslServer::new(enabled)),
            session: None,
            reauth_ms: ctx.config.connections_max_reauth_ms,
        }
    }

    /// The exchange under way, if any (its frames are bounded by
    /// sasl_server_max_receive_size and may be raw tokens).
    pub(super) fn exchange(&self) -> Option<&SaslServer> {
        self.exchange.as_ref()
    }

    /// One frame: part of an exchange, or a request of the session.
    pub(super) async fn frame(&mut self, ctx: &BrokerContext, body: Bytes) -> PreAuth {
        if self.exchange.is_none() {
            let Some(session) = &self.session else {
                return PreAuth::Close("no SASL session".into());
            };
            let handshake = frame::peek_prefix(&body)
                .ok()
                .filter(|p| p.api_key == ApiKey::SaslHandshake as i16 && p.api_version >= 1);
            if handshake.is_some() && self.reauth_ms > 0 {
                // A re-authentication: the same mechanism only.
                debug!(principal = %session.principal, "SASL re-authentication.");
                self.exchange = Some(SaslServer::reauthenticating(session.mechanism));
            } else if session.ends.is_some_and(|ends| Instant::now() >= ends) {
                return PreAuth::Expired;
            } else {
                return PreAuth::Serve(body);
            }
        }
        let server = self.exchange.as_mut().expect("an exchange is under way");
        let expected = self.session.as_ref().map(|s| &s.principal);
        let lifetime = self.reauth_ms.min(i64::MAX as u64) as i64;
        let outcome = step(ctx, server, body, lifetime, expected).await;
        if let PreAuth::Authenticated(_, principal) = &outcome {
            if self.session.is_some() {
                metrics::counter!(crate::metrics::SASL_REAUTHENTICATIONS).increment(1);
            }
            let mechanism = server.mechanism().expect("a mechanism was chosen");
            self.exchange = None;
            self.session = Some(Established {
                mechanism,
                principal: principal.clone(),
                ends: (self.reauth_ms > 0)
                    .then(|| Instant::now() + std::time::Duration::from_millis(self.reauth_ms)),
            });
        }
        outcome
    }
}

/// The credential sources of a broker: config.toml and the metadata actor.
struct BrokerCredentials<'a>(&'a BrokerContext);

impl Credentials for BrokerCredentials<'_> {
    fn plain_password(&self, user: &str) -> Option<&str> {
        self.0
            .config
            .sasl_plain_users
            .0
            .get(user)
            .map(String::as_str)
    }

    async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        let asked = crate::actors::call(
            &self.0.metadata,
            |reply| MetadataMsg::ScramCredential {
                user: user.to_string(),
                mechanism,
                reply,
            },
            std::time::Duration::from_secs(10),
        )
        .await;
        match asked {
            Ok(credential) => credential,
            Err(err) => {
                warn!(%err, "Could not read a SCRAM credential from the metadata actor.");
                None
            }
        }
    }
}

/// One frame of the exchange. A success answers `lifetime_ms` as the session lifetime
/// (SaslAuthenticate v1 and later); in a re-authentication it must be as `expected`.
async fn step(
    ctx: &BrokerContext,
    server: &mut SaslServer,
    body: Bytes,
    lifetime_ms: i64,
    expected: Option<&KafkaPrincipal>,
) -> PreAuth {
    if server.expects_raw_token() {
        return raw_token(ctx, server, body, expected).await;
    }
    let prefix = match frame::peek_prefix(&body) {
        Ok(prefix) => prefix,
        Err(err) => return PreAuth::Close(err.to_string()),
    };
    let Ok(api) = ApiKey::try_from(prefix.api_key) else {
        return PreAuth::Close(FrameError::UnknownApiKey(prefix.api_key).to_string());
    };
    match api {
        ApiKey::ApiVersions if server.allows_api_versions() => {
            // An unsupported version is answered (KIP-511) and may be retried.
            if versions::is_supported(api, prefix.api_version) {
                server.api_versions_answered();
            }
            return PreAuth::Serve(body);
        }
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {}
        other => {
            let SaslStep::Close(reason) = server.unexpected(other) else {
                unreachable!("an unexpected request always closes");
            };
            return PreAuth::Close(reason);
        }
    }
    let version = prefix.api_version;
    if !versions::is_supported(api, version) {
        return PreAuth::Close(FrameError::UnsupportedVersion { api, version }.to_string());
    }
    let request = match frame::decode_request(api, version, body) {
        Ok((_, request)) => request,
        Err(err) => return PreAuth::Close(err.to_string()),
    };
    let step = match request {
        RequestKind::SaslHandshake(req) => server.handshake(version, req),
        RequestKind::SaslAuthenticate(req) => {
            match same_principal(
                server.authenticate(req, &BrokerCredentials(ctx)).await,
                expected,
            ) {
                SaslStep::Authenticated(ResponseKind::SaslAuthenticate(r), principal)
                    if version >= 1 =>
                {
                    let r = r.with_session_lifetime_ms(lifetime_ms);
                    SaslStep::Authenticated(ResponseKind::SaslAuthenticate(r), principal)
                }
                step => step,
            }
        }
        _ => unreachable!("the API key was checked above"),
    };
    let encode = |response: &ResponseKind| {
        frame::encode_response(api, version, prefix.correlation_id, response)
    };
    let encoded = match &step {
        SaslStep::Continue(r) | SaslStep::Authenticated(r, _) | SaslStep::Fail(r) => encode(r),
        SaslStep::Close(reason) => return PreAuth::Close(reason.clone()),
    };
    let frame = match encoded {
        Ok(frame) => frame,
        Err(err) => return PreAuth::Close(err.to_string()),
    };
    match step {
        SaslStep::Continue(_) => PreAuth::Answer(frame),
        SaslStep::Authenticated(_, principal) => PreAuth::Authenticated(frame, principal),
        _ => PreAuth::Fail(Some(frame)),
    }
}

/// A re-authentication must keep the principal: another is a failed authentication
/// (Kafka: "Cannot change principals during re-authentication").
fn same_principal(step: SaslStep, expected: Option<&KafkaPrincipal>) -> SaslStep {
    match step {
        SaslStep::Authenticated(_, principal) if expected.is_some_and(|e| *e != principal) => {
            warn!(%principal, "Closing a connection that re-authenticated as another principal.");
            SaslStep::Fail(ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(text(
                        "Cannot change principals during re-authentication",
                    ))),
            ))
        }
        step => step,
    }
}

/// After a v0 handshake: the frame is the token itself, and so is the answer.
async fn raw_token(
    ctx: &BrokerContext,
    server: &mut SaslServer,
    token: Bytes,
    expected: Option<&KafkaPrincipal>,
) -> PreAuth {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(token);
    let step = same_principal(
        server.authenticate(request, &BrokerCredentials(ctx)).await,
        expected,
    );
    let token_frame = |response: ResponseKind| {
        let ResponseKind::SaslAuthenticate(r) = response else {
            return Bytes::new();
        };
        let mut out = BytesMut::with_capacity(4 + r.auth_bytes.len());
        out.extend_from_slice(&(r.auth_bytes.len() as i32).to_be_bytes());
        out.extend_from_slice(&r.auth_bytes);
        out.freeze()
    };
    match step {
        SaslStep::Continue(r) => PreAuth::Answer(token_frame(r)),
        SaslStep::Authenticated(r, principal) => PreAuth::Authenticated(token_frame(r), principal),
        // A raw exchange has no way to carry an error: Kafka closes the connection.
        SaslStep::Fail(_) => PreAuth::Fail(None),
        SaslStep::Close(reason) => PreAuth::Close(reason),
    }
}
