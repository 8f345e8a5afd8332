//! One Kafka request to another broker and its response: the inter-broker client that the
//! replica fetcher and the transaction marker sender share. Its connections speak the
//! inter-broker listener's protocol (`config::inter_broker`): plain TCP (or the simulated
//! network's, see `sockets`), TLS checked against the truststore and the peer's host, and
//! a SASL login (SaslHandshake, then SaslAuthenticate with PLAIN or SCRAM) as the broker's
//! own principal, logging in again on the same connection before the session ends
//! (KIP-368). Every length read off the wire is bounded.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::debug;

use crate::config::InterBrokerSecurity;
use crate::security::jaas::JaasLogin;
use crate::security::sasl::SaslMechanism;
use crate::security::sasl_client::{plain_token, ScramClient};
use crate::security::transport_layer::TransportLayer;
use crate::sockets::Network;

#[derive(Debug, thiserror::Error)]
pub enum BrokerCallError {
    #[error("i/o with the other broker: {0}")]
    Io(#[from] std::io::Error),
    #[error("the other broker's answer is not valid: {0}")]
    Protocol(String),
    #[error("the other broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the other broker did not accept this broker's login: {0}")]
    Authentication(String),
}

/// How this broker reaches other brokers: its sockets, and what the inter-broker
/// listener speaks.
#[derive(Clone, Debug, Default)]
pub struct BrokerConnector {
    pub network: Network,
    pub security: Arc<InterBrokerSecurity>,
}

/// A connection to another broker, and when its SASL session is to be renewed.
pub struct BrokerConnection {
    pub stream: TransportLayer,
    /// KIP-368: when to log in again on this connection; None when the session does not end.
    reauthenticate_at: Option<Instant>,
}

/// The largest SASL answer read during a login.
const LOGIN_RESPONSE_LIMIT: usize = 64 * 1024;

impl BrokerConnector {
    /// PLAINTEXT on `network` (tests, and brokers with no inter-broker security).
    pub fn plaintext(network: Network) -> Self {
        Self {
            network,
            security: Arc::default(),
        }
    }

    /// The connector `config` describes; reads the TLS files.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            network: config.network.clone(),
            security: Arc::new(config.inter_broker_security()?),
        })
    }

    /// A connection to `address` (host:port), Nagle off, with its TLS handshake and SASL
    /// login done, all within `wait`.
    pub async fn connect(
        &self,
        address: &str,
        wait: Duration,
    ) -> Result<BrokerConnection, BrokerCallError> {
        let open = async {
            let stream = self.network.connect(address).await?;
            stream.set_nodelay(true)?;
            let tls = self.security.tls.as_ref();
            let mut stream = TransportLayer::client(stream, tls, address).await?;
            let mut reauthenticate_at = None;
            if let Some((mechanism, login)) = &self.security.sasl {
                let lifetime = authenticate(&mut stream, *mechanism, login, wait).await?;
                reauthenticate_at = renewal_time(lifetime);
            }
            Ok(BrokerConnection {
                stream,
                reauthenticate_at,
            })
        };
        tokio::time::timeout(wait, open)
            .await
            .map_err(|_| BrokerCallError::Timeout(wait))?
    }

    /// Logs in again on `connection` once its session is near its end (KIP-368), as
    /// Kafka's clients do, rather than letting the other broker close it; within `wait`.
    pub async fn keep_logged_in(
        &self,
        connection: &mut BrokerConnection,
        wait: Duration,
    ) -> Result<(), BrokerCallError> {
        let (Some(at), Some((mechanism, login))) =
            (connection.reauthenticate_at, &self.security.sasl)
        else {
            return Ok(());
        };
        if Instant::now() < at {
            return Ok(());
        }
        let login = authenticate(&mut connection.stream, *mechanism, login, wait);
        let lifetime = tokio::time::timeout(wait, login)
            .await
            .map_err(|_| BrokerCallError::Timeout(wait))??;
        connection.reauthenticate_at = renewal_time(lifetime);
        debug!("Logged in again on a connection to another broker before its session ended.");
        Ok(())
    }
}

/// When to renew a session of `lifetime_ms` (0: it does not end): at a random point
/// between 85 % and 95 % of it, Kafka's client rule, so renewals do not all come at once.
fn renewal_time(lifetime_ms: i64) -> Option<Instant> {
    if lifetime_ms <= 0 {
        return None;
    }
    let share: f64 = rand::random_range(0.85..0.95);
    let after = Duration::from_millis((lifetime_ms as f64 * share) as u64);
    Some(Instant::now() + after)
}

/// KIP-43's exchange: SaslHandshake v1 naming the mechanism, then its tokens in
/// SaslAuthenticate v1 requests; the session's lifetime in ms (0: it does not end). The
/// same exchange renews a session on a connection already logged in (KIP-368).
async fn authenticate(
    stream: &mut TransportLayer,
    mechanism: SaslMechanism,
    login: &JaasLogin,
    wait: Duration,
) -> Result<i64, BrokerCallError> {
    let mut spec = CallSpec {
        version: 1,
        correlation: -10,
        client_id: "broker-login",
        wait,
        response_limit: LOGIN_RESPONSE_LIMIT,
    };
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let answer = call(stream, spec, &handshake).await?;
    if answer.error_code != 0 {
        return Err(BrokerCallError::Authentication(format!(
            "{} is not enabled there (error {}; enabled: {:?})",
            mechanism.name(),
            answer.error_code,
            answer.mechanisms
        )));
    }
    let refused =
        |e: crate::security::scram::ScramError| BrokerCallError::Authentication(e.to_string());
    spec.correlation -= 1;
    let lifetime = match mechanism {
        SaslMechanism::Plain => {
            let token = plain_token(&login.username, &login.password);
            sasl_token(stream, spec, token).await?.1
        }
        SaslMechanism::Scram(m) => {
            let (client, first) = ScramClient::start(m, &login.username, login.password.clone());
            let (server_first, _) = sasl_token(stream, spec, first).await?;
            let (client, last) = client.answer(&server_first).map_err(refused)?;
            spec.correlation -= 1;
            let (server_final, lifetime) = sasl_token(stream, spec, last).await?;
            client.verify(&server_final).map_err(refused)?;
            lifetime
        }
    };
    Ok(lifetime)
}

/// One SaslAuthenticate exchange: our token out, the server's back with the session
/// lifetime it answered.
async fn sasl_token(
    stream: &mut TransportLayer,
    spec: CallSpec,
    token: Vec<u8>,
) -> Result<(Vec<u8>, i64), BrokerCallError> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
    let answer = call(stream, spec, &req).await?;
    match answer.error_code {
        0 => Ok((answer.auth_bytes.to_vec(), answer.session_lifetime_ms)),
        code => Err(BrokerCallError::Authentication(format!(
            "error {code}: {}",
            answer.error_message.as_deref().unwrap_or("no message")
        ))),
    }
}

/// What one request needs besides its body.
#[derive(Debug, Clone, Copy)]
pub struct CallSpec {
    pub version: i16,
    pub correlation: i32,
    pub client_id: &'static str,
    /// The whole exchange's deadline.
    pub wait: Duration,
    /// The largest response accepted, in bytes.
    pub response_limit: usize,
}

/// Sends `req` on `stream` and reads its response, within `spec.wait`.
pub async fn call<R: Request>(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    spec: CallSpec,
    req: &R,
) -> Result<R::Response, BrokerCallError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(spec.version)
        .with_correlation_id(spec.correlation)
        .with_client_id(Some(StrBytes::from_static_str(spec.client_id)));
    let mut body = BytesMut::new();
    let encode = |e: anyhow::Error| BrokerCallError::Protocol(e.to_string());
    header
        .encode(&mut body, R::header_version(spec.version))
        .map_err(encode)?;
    req.encode(&mut body, spec.version).map_err(encode)?;
    let limit = spec.response_limit;
    let exchange = async {
        stream.write_all(&(body.len() as u32).to_be_bytes()).await?;
        stream.write_all(&body).await?;
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await?;
        let length = i32::from_be_bytes(length);
        if length < 0 || length as usize > limit {
            return Err(BrokerCallError::Protocol(format!(
                "a response of {length} bytes is above the {limit} bytes allowed"
            )));
        }
        let mut buf = vec![0u8; length as usize];
        stream.read_exact(&mut buf).await?;
        Ok(Bytes::from(buf))
    };
    let mut buf = tokio::time::timeout(spec.wait, exchange)
        .await
        .map_err(|_| BrokerCallError::Timeout(spec.wait))??;
    let header_version = <R::Response as HeaderVersion>::header_version(spec.version);
    let header = ResponseHeader::decode(&mut buf, header_version).map_err(encode)?;
    if header.correlation_id != spec.correlation {
        return Err(BrokerCallError::Protocol(format!(
            "correlation id {} where {} was expected",
            header.correlation_id, spec.correlation
        )));
    }
    R::Response::decode(&mut buf, spec.version).map_err(encode)
}
