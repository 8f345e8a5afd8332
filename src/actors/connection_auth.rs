//! The SASL exchange on a connection's reading task (SASL_PLAINTEXT and SASL_SSL
//! listeners): each frame read before authentication succeeds goes through here, one at
//! a time, so the exchange is answered in order and nothing else runs before it ends.
//! ApiVersions is served as usual; SaslHandshake and SaslAuthenticate go to the
//! connection's `SaslServer`; any other request closes the connection (see
//! `security/sasl.rs` for Kafka's rules). Users come from `sasl_plain_users` and, through
//! the metadata actor, from the SCRAM store.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest};
use tracing::warn;

use crate::actors::metadata::MetadataMsg;
use crate::protocol::frame::{self, FrameError};
use crate::protocol::{versions, BrokerContext};
use crate::security::sasl::{Credentials, SaslServer, SaslStep};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::KafkaPrincipal;

/// What the reading task does with a frame read before authentication.
pub(super) enum PreAuth {
    /// An ApiVersions request: serve it as usual.
    Serve(Bytes),
    /// Write this frame and read on.
    Answer(Bytes),
    /// Write this frame; the connection is now this principal.
    Authenticated(Bytes, KafkaPrincipal),
    /// Wait the failed-authentication delay, write this frame (if any), then close.
    Fail(Option<Bytes>),
    /// Close at once, without an answer.
    Close(String),
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

/// One frame of the exchange.
pub(super) async fn step(ctx: &BrokerContext, server: &mut SaslServer, body: Bytes) -> PreAuth {
    if server.expects_raw_token() {
        return raw_token(ctx, server, body).await;
    }
    let prefix = match frame::peek_prefix(&body) {
        Ok(prefix) => prefix,
        Err(err) => return PreAuth::Close(err.to_string()),
    };
    let Ok(api) = ApiKey::try_from(prefix.api_key) else {
        return PreAuth::Close(FrameError::UnknownApiKey(prefix.api_key).to_string());
    };
    match api {
        ApiKey::ApiVersions if server.allows_api_versions() => return PreAuth::Serve(body),
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
            server.authenticate(req, &BrokerCredentials(ctx)).await
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

/// After a v0 handshake: the frame is the token itself, and so is the answer.
async fn raw_token(ctx: &BrokerContext, server: &mut SaslServer, token: Bytes) -> PreAuth {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(token);
    let step = server.authenticate(request, &BrokerCredentials(ctx)).await;
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
