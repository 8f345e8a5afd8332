//! Who is on the other end of a connection, and what they may do.
//!
//! `principal` names an authenticated identity the way Kafka does (`User:alice`). Listeners
//! with TLS and SASL set it; the authorizer and the quotas read it from each request's
//! `ClientInfo`. A PLAINTEXT connection is `User:ANONYMOUS`, as in Kafka.

pub mod acl;
pub mod acl_filter;
pub mod acl_index;
pub mod authorizer_view;
pub mod jaas;
pub mod listeners;
pub mod peer_tls;
pub mod plain;
pub mod principal;
pub mod principal_mapping;
pub mod protocol;
pub mod quorum_peers;
pub mod sasl;
pub mod sasl_client;
#[cfg(test)]
mod sasl_tests;
pub mod scram;
#[cfg(test)]
mod scram_tests;
pub mod tls;
pub mod tls_reload;
pub mod transport_layer;

pub use principal::KafkaPrincipal;
pub use protocol::SecurityProtocol;

/// Which listener a connection came in on: its name (`PLAINTEXT`, `CLIENT`, ...) and
/// the security protocol `listener_security_protocol_map` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerIdentity {
    pub name: String,
    pub protocol: SecurityProtocol,
}

impl ListenerIdentity {
    /// The single-listener default: `listen` speaks PLAINTEXT.
    pub fn plaintext() -> Self {
        Self {
            name: "PLAINTEXT".to_string(),
            protocol: SecurityProtocol::Plaintext,
        }
    }
}
