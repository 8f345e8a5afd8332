//! SaslHandshake v0-v1 and SaslAuthenticate v0-v2 after authentication, or on a listener
//! without SASL: ILLEGAL_SASL_STATE (34), as Kafka's request handler answers them (no
//! re-authentication, KIP-368). Before authentication on a SASL listener the connection's
//! exchange (`security/sasl.rs`) answers them instead.

use kafka_protocol::messages::{ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::ResponseError;

use super::text;

pub async fn handshake() -> ResponseKind {
    ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code()),
    )
}

pub async fn authenticate() -> ResponseKind {
    ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(text(
                "SaslAuthenticate request received after successful authentication",
            ))),
    )
}
