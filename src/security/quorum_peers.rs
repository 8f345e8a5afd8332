//! Who may speak Raft on the metadata quorum's TLS transport.
//!
//! Every peer must show a certificate the truststore vouches for (`peer_acceptor`). With an
//! authorizer on, that is not enough: a certificate from the same CA may belong to a client,
//! and Kafka's controller answers quorum requests only to a principal allowed CLUSTER_ACTION
//! on the cluster. The ACLs are themselves records of the quorum, so they cannot vouch for
//! the peers that replicate them; here the certificate's principal (through
//! `ssl_principal_mapping_rules`) must be one of `super_users`, as Kafka's documentation
//! asks of its brokers' and controllers' principals.
//!
//! A refused peer retries every few milliseconds; `RefusalLog` says each distinct refusal
//! once at warn, the rest at debug.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use super::acl::Authorizer;
use super::principal_mapping::MappingError;
use super::tls::ServerTls;
use super::KafkaPrincipal;

/// The longest a peer may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS acceptor of the quorum's transport and the principals it admits.
#[derive(Clone)]
pub struct QuorumAcceptor {
    tls: ServerTls,
    /// The super users when an authorizer is on; None admits every vouched-for certificate.
    admitted: Option<Arc<Vec<KafkaPrincipal>>>,
}

/// Why a peer was not served.
#[derive(Debug, thiserror::Error)]
pub enum PeerRefusal {
    #[error("Refused a quorum connection whose TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("Refused a quorum connection that did not finish its TLS handshake in time.")]
    Timeout,
    #[error("Refused a quorum connection whose certificate maps to no principal: {0}")]
    Unmapped(MappingError),
    #[error("Refused a quorum connection from {0}, which is not one of super_users.")]
    NotSuperUser(KafkaPrincipal),
}

impl QuorumAcceptor {
    pub fn new(tls: ServerTls, authorizer: Option<&Authorizer>) -> Self {
        Self {
            tls,
            admitted: authorizer.map(|a| Arc::new(a.super_users.clone())),
        }
    }

    /// The TLS handshake with one peer, within a deadline, and the check of who it is.
    pub async fn accept<S>(&self, stream: S) -> Result<TlsStream<S>, PeerRefusal>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.acceptor.accept(stream))
            .await
            .map_err(|_| PeerRefusal::Timeout)?
            .map_err(PeerRefusal::Handshake)?;
        let Some(admitted) = &self.admitted else {
            return Ok(stream);
        };
        // The verifier required a certificate, so a handshake without one did not finish.
        let principal = match stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(cert) => self.tls.principal_of(cert).map_err(PeerRefusal::Unmapped)?,
            None => KafkaPrincipal::anonymous(),
        };
        if admitted.contains(&principal) {
            Ok(stream)
        } else {
            Err(PeerRefusal::NotSuperUser(principal))
        }
    }
}

/// The most distinct refusals remembered; past it the memory starts again, so a peer
/// inventing new ones costs a bounded set and an occasional repeated warning.
const REMEMBERED: usize = 256;

/// Says each distinct refusal once at warn, again only at debug. Owned by the accept loop.
#[derive(Default)]
pub struct RefusalLog {
    said: HashSet<String>,
}

impl RefusalLog {
    pub fn say(&mut self, peer: std::net::SocketAddr, refusal: &PeerRefusal) {
        let text = refusal.to_string();
        if self.said.contains(&text) {
            debug!(%peer, "{text}");
            return;
        }
        warn!(%peer, "{text}");
        if self.said.len() >= REMEMBERED {
            self.said.clear();
        }
        self.said.insert(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_remembered_and_the_memory_is_bounded() {
        let mut log = RefusalLog::default();
        let peer = "127.0.0.1:1".parse().unwrap();
        let user = |n: usize| PeerRefusal::NotSuperUser(KafkaPrincipal::user(format!("u{n}")));
        log.say(peer, &user(0));
        log.say(peer, &user(0));
        assert_eq!(log.said.len(), 1);
        for n in 0..1000 {
            log.say(peer, &user(n));
        }
        assert!(log.said.len() <= REMEMBERED);
    }
}
