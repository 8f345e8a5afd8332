//! The SASL exchange on one connection of a SASL_PLAINTEXT or SASL_SSL listener, as Kafka's
//! `SaslServerAuthenticator` runs it (KIP-43, KIP-152).
//!
//! Before authentication succeeds a client may send only ApiVersions (once, before its
//! handshake), SaslHandshake (once) and then SaslAuthenticate; anything else closes the
//! connection, without an answer during the handshake and with ILLEGAL_SASL_STATE (34)
//! during authentication, as Kafka does. A mechanism that is not enabled is answered
//! UNSUPPORTED_SASL_MECHANISM (33) with the enabled list, a failed authentication
//! SASL_AUTHENTICATION_FAILED (58) with a message; both then close the connection.
//! SaslHandshake v0 is followed by raw tokens (`[length][token]`, no Kafka header) instead
//! of SaslAuthenticate requests; the connection reads and writes those frames.
//!
//! This is a state machine over decoded requests; the connection owns the socket, and a
//! `Credentials` source answers for users (the configured PLAIN users and the SCRAM store
//! the metadata actor holds). A re-authentication (KIP-368) is an exchange of its own that
//! starts at the handshake, for the mechanism of the first one (see
//! `actors/connection_auth.rs`).

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use super::plain::{self, PlainMessage};
use super::scram::{self, ClientFirst, ScramCredential, ScramExchange, ScramMechanism};
use super::KafkaPrincipal;
use crate::protocol::handlers::text;

/// A mechanism this broker can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.mechanism_name(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            other => ScramMechanism::from_mechanism_name(other).map(Self::Scram),
        }
    }
}

/// Where the exchange finds users: the configured PLAIN passwords and the SCRAM store.
pub trait Credentials: Send + Sync {
    /// The password `sasl_plain_users` gives this user.
    fn plain_password(&self, user: &str) -> Option<&str>;
    /// The user's SCRAM credential for this mechanism; None when there is none (or it
    /// could not be read, which the source logs).
    fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> impl Future<Output = Option<ScramCredential>> + Send;
}

/// What the connection does after a step.
#[derive(Debug)]
pub enum SaslStep {
    /// Write this answer and read on.
    Continue(ResponseKind),
    /// Write this answer; from now on the connection is this principal.
    Authenticated(ResponseKind, KafkaPrincipal),
    /// Write this answer, wait `connection_failed_authentication_delay_ms` (for a failed
    /// authentication), then close.
    Fail(ResponseKind),
    /// Close without answering.
    Close(String),
}

enum State {
    /// ApiVersions or SaslHandshake expected.
    Handshake,
    /// SaslAuthenticate (or raw tokens after a v0 handshake) expected.
    Authenticate {
        mechanism: SaslMechanism,
        raw_tokens: bool,
    },
    /// SCRAM: the client's final message expected.
    ScramFinal {
        exchange: ScramExchange,
        user: String,
        raw_tokens: bool,
    },
    Done,
}

/// One connection's exchange.
pub struct SaslServer {
    enabled: Vec<SaslMechanism>,
    state: State,
    /// An ApiVersions request was answered: Kafka takes one before the handshake (a
    /// retry after UNSUPPORTED_VERSION aside), so the exchange has a bounded length.
    versions_answered: bool,
    /// The mechanism the handshake chose.
    chosen: Option<SaslMechanism>,
}

impl SaslServer {
    pub fn new(enabled: Vec<SaslMechanism>) -> Self {
        SaslServer {
            enabled,
            state: State::Handshake,
            versions_answered: false,
            chosen: None,
        }
    }

    /// A re-authentication: its handshake comes first (no ApiVersions) and must name the
    /// mechanism of the first authentication.
    pub fn reauthenticating(mechanism: SaslMechanism) -> Self {
        SaslServer {
            enabled: vec![mechanism],
            state: State::Handshake,
            versions_answered: true,
            chosen: None,
        }
    }

    /// The mechanism the handshake chose, once it did.
    pub fn mechanism(&self) -> Option<SaslMechanism> {
        self.chosen
    }

    /// ApiVersions is allowed once, before the handshake, as in Kafka.
    pub fn allows_api_versions(&self) -> bool {
        matches!(self.state, State::Handshake) && !self.versions_answered
    }

    /// An ApiVersions request at a supported version is being answered.
    pub fn api_versions_answered(&mut self) {
        self.versions_answered = true;
    }

    /// After a v0 handshake the tokens come raw, without Kafka headers.
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.state,
            State::Authenticate {
                raw_tokens: true,
                ..
            } | State::ScramFinal {
                raw_tokens: true,
                ..
            }
        )
    }

    /// A request that is neither ApiVersions nor a SASL request arrived before success.
    pub fn unexpected(&mut self, api: kafka_protocol::messages::ApiKey) -> SaslStep {
        let stage = match self.state {
            State::Handshake => "handshake",
            _ => "authentication",
        };
        self.state = State::Done;
        SaslStep::Close(format!(
            "unexpected {api:?} request during SASL {stage} (ILLEGAL_SASL_STATE)"
        ))
    }

    pub fn handshake(&mut self, version: i16, request: SaslHandshakeRequest) -> SaslStep {
        if !matches!(self.state, State::Handshake) {
            return self.illegal_state(
                ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code()),
                ),
                "SaslHandshake",
            );
        }
        let names = self.enabled.iter().map(|m| text(m.name())).collect();
        let wanted = request.mechanism.as_str();
        match self.enabled.iter().find(|m| m.name() == wanted) {
            Some(mechanism) => {
                debug!(mechanism = wanted, version, "SASL handshake.");
                self.chosen = Some(*mechanism);
                self.state = State::Authenticate {
                    mechanism: *mechanism,
                    raw_tokens: version == 0,
                };
                SaslStep::Continue(ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default().with_mechanisms(names),
                ))
            }
            None => {
                warn!(
                    mechanism = wanted,
                    "Closing a connection that asked for a SASL mechanism that is not enabled."
                );
                self.state = State::Done;
                SaslStep::Fail(ResponseKind::SaslHandshake(
                    SaslHandshakeResponse::default()
                        .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                        .with_mechanisms(names),
                ))
            }
        }
    }

    /// A SaslAuthenticate request (or, with `raw` after a v0 handshake, a raw token,
    /// whose answer is the returned response's `auth_bytes`).
    pub async fn authenticate(
        &mut self,
        request: SaslAuthenticateRequest,
        credentials: &impl Credentials,
    ) -> SaslStep {
        let token = request.auth_bytes;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Authenticate {
                mechanism: SaslMechanism::Plain,
                ..
            } => self.plain(&token, credentials).await,
            State::Authenticate {
                mechanism: SaslMechanism::Scram(mechanism),
                raw_tokens,
            } => {
                let first = match ClientFirst::parse(&token) {
                    Ok(first) => first,
                    Err(err) => return failed(mechanism.mechanism_name(), None, &err.to_string()),
                };
                let Some(credential) = credentials.scram_credential(&first.user, mechanism).await
                else {
                    let user = first.user.clone();
                    return failed(
                        mechanism.mechanism_name(),
                        Some(&user),
                        "Invalid user credentials",
                    );
                };
                let user = first.user.clone();
                let (exchange, server_first) =
                    first.answer(mechanism, credential, &scram::server_nonce());
                self.state = State::ScramFinal {
                    exchange,
                    user,
                    raw_tokens,
                };
                SaslStep::Continue(auth_response(server_first))
            }
            State::ScramFinal { exchange, user, .. } => match exchange.finish(&token) {
                Ok(server_final) => success(&user, auth_response(server_final)),
                Err(err) => failed(
                    exchange_mechanism_name(&exchange),
                    Some(&user),
                    &err.to_string(),
                ),
            },
            State::Handshake | State::Done => self.illegal_state(
                ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code())
                        .with_error_message(Some(text(
                            "SaslAuthenticate request received before SaslHandshake",
                        ))),
                ),
                "SaslAuthenticate",
            ),
        }
    }

    async fn plain(&mut self, token: &[u8], credentials: &impl Credentials) -> SaslStep {
        let mut message = match PlainMessage::parse(token) {
            Ok(message) => message,
            Err(err) => return failed("PLAIN", None, &err.to_string()),
        };
        let valid = match credentials.plain_password(&message.user) {
            Some(expected) => plain::password_matches(expected, &message.password),
            None => {
                // PLAIN also checks against the SCRAM store (the strongest hash first).
                let mut valid = false;
                for mechanism in [ScramMechanism::Sha512, ScramMechanism::Sha256] {
                    if let Some(c) = credentials.scram_credential(&message.user, mechanism).await {
                        // A PBKDF2 of up to 16,384 iterations: on the blocking pool, so a
                        // guesser does not hold a thread that serves other connections.
                        let password = std::mem::take(&mut message.password);
                        let check = move || c.matches_password(mechanism, &password);
                        valid = tokio::task::spawn_blocking(check).await.unwrap_or(false);
                        break;
                    }
                }
                valid
            }
        };
        if valid {
            success(&message.user, auth_response(Vec::new()))
        } else {
            failed("PLAIN", Some(&message.user), "Invalid username or password")
        }
    }

    fn illegal_state(&mut self, response: ResponseKind, api: &str) -> SaslStep {
        warn!(
            api,
            "Closing a connection that sent a SASL request out of order."
        );
        self.state = State::Done;
        SaslStep::Fail(response)
    }
}

fn exchange_mechanism_name(exchange: &ScramExchange) -> &'static str {
    exchange.mechanism().mechanism_name()
}

fn auth_response(bytes: Vec<u8>) -> ResponseKind {
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes)),
    )
}

fn success(user: &str, response: ResponseKind) -> SaslStep {
    let principal = KafkaPrincipal::user(user);
    debug!(%principal, "SASL authentication succeeded.");
    SaslStep::Authenticated(response, principal)
}

/// SASL_AUTHENTICATION_FAILED with Kafka's message; logged at warn with the user and
/// reason, never the secret.
fn failed(mechanism: &str, user: Option<&str>, reason: &str) -> SaslStep {
    warn!(
        mechanism,
        user = user.unwrap_or(""),
        reason,
        "SASL authentication failed; closing the connection."
    );
    let message = format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    );
    SaslStep::Fail(ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(text(message))),
    ))
}
