//! TLS between brokers, both ends: the connector a broker's own connections to other
//! brokers use (replica fetchers, transaction markers, the metadata quorum), and the
//! acceptor of the quorum's transport, which asks every peer for a certificate.
//!
//! Both read the listeners' `ssl_*` keys, as Kafka's inter-broker client reads its
//! listener's `ssl.*` settings: the truststore vouches for the other broker's certificate,
//! whose name must match the host connected to (Kafka's default
//! `ssl.endpoint.identification.algorithm=https`); the keystore, when there is one, is the
//! certificate this broker shows when asked.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use super::tls::{truststore_roots, ClientAuth, ServerTls, TlsError, TlsSettings};

impl TlsSettings {
    /// The connector for TLS to other brokers.
    pub fn peer_connector(&self) -> Result<TlsConnector, TlsError> {
        let location = self
            .ssl_truststore_location
            .as_deref()
            .ok_or(TlsError::NoPeerTruststore)?;
        let roots = truststore_roots(location)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.protocols()?)?
            .with_root_certificates(roots);
        let has_keystore =
            self.ssl_keystore_location.is_some() || self.ssl_keystore_certificate_chain.is_some();
        let config = if has_keystore {
            let (chain, key) = self.keystore()?;
            builder.with_client_auth_cert(chain, key)?
        } else {
            builder.with_no_client_auth()
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The acceptor of the quorum's transport: as a listener's, but a peer without a
    /// certificate the truststore vouches for is refused, whatever `ssl_client_auth` says.
    pub fn peer_acceptor(&self) -> Result<ServerTls, TlsError> {
        let required = TlsSettings {
            ssl_client_auth: ClientAuth::Required,
            ..self.clone()
        };
        required.acceptor()
    }
}

/// The name a peer's certificate must hold: the host of `address` (`host:port`), a DNS
/// name or an IP address.
pub fn server_name(address: &str) -> std::io::Result<ServerName<'static>> {
    let host = match address.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => address,
    };
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host:?} is not a name a certificate can hold: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_checked_is_the_host_connected_to() {
        assert_eq!(
            server_name("127.0.0.1:9093").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("[::1]:9093").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
        assert_eq!(
            server_name("kafka-1.example:9093").unwrap(),
            ServerName::try_from("kafka-1.example").unwrap()
        );
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn a_peer_connector_needs_a_truststore() {
        assert!(matches!(
            TlsSettings::default().peer_connector(),
            Err(TlsError::NoPeerTruststore)
        ));
        assert!(matches!(
            TlsSettings::default().peer_acceptor(),
            Err(TlsError::NoKeystore)
        ));
    }
}
