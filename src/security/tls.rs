//! TLS for SSL and SASL_SSL listeners, through rustls: Kafka's PEM keystore and truststore
//! settings turned into one acceptor at start (and again when the files change, see
//! `tls_reload`), and the principal a client certificate
//! gives (`User:` + its subject in RFC 2253 form, as Kafka's default
//! `ssl.principal.mapping.rules` writes it).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

use super::principal_mapping::{MappingError, PrincipalMapper};
use super::KafkaPrincipal;

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for: every client is User:ANONYMOUS.
    #[default]
    None,
    /// A certificate is asked for; a client without one is User:ANONYMOUS.
    Requested,
    /// A client without a certificate the truststore vouches for is refused.
    Required,
}

/// The `ssl_*` keys of config.toml, Kafka's `ssl.*` settings with PEM stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// Only `PEM`.
    pub ssl_keystore_type: String,
    /// One PEM file with the certificate chain (leaf first) and the private key.
    pub ssl_keystore_location: Option<String>,
    /// The certificate chain: a PEM file's path, or the PEM text itself (as Kafka's
    /// `ssl.keystore.certificate.chain` holds it).
    pub ssl_keystore_certificate_chain: Option<String>,
    /// The private key: a PEM file's path, or the PEM text itself.
    pub ssl_keystore_key: Option<String>,
    /// Only `PEM`.
    pub ssl_truststore_type: String,
    /// PEM file of the CAs client certificates are checked against.
    pub ssl_truststore_location: Option<String>,
    pub ssl_client_auth: ClientAuth,
    /// Comma-separated: `TLSv1.2`, `TLSv1.3`.
    pub ssl_enabled_protocols: String,
    /// Kafka's `ssl.principal.mapping.rules`: client certificate subject -> principal name.
    pub ssl_principal_mapping_rules: String,
    /// How often each TLS listener looks at its keystore and truststore files and, when
    /// they changed, builds its configuration anew for new connections (0: never).
    pub ssl_reload_check_interval_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ssl_keystore_type: "PEM".to_string(),
            ssl_keystore_location: None,
            ssl_keystore_certificate_chain: None,
            ssl_keystore_key: None,
            ssl_truststore_type: "PEM".to_string(),
            ssl_truststore_location: None,
            ssl_client_auth: ClientAuth::None,
            ssl_enabled_protocols: "TLSv1.2,TLSv1.3".to_string(),
            ssl_principal_mapping_rules: "DEFAULT".to_string(),
            ssl_reload_check_interval_ms: 60_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: only PEM is supported, not {value:?}")]
    StoreType { key: &'static str, value: String },
    #[error("an SSL or SASL_SSL listener needs ssl_keystore_location, or ssl_keystore_certificate_chain and ssl_keystore_key")]
    NoKeystore,
    #[error("ssl_client_auth = {0:?} needs ssl_truststore_location")]
    NoTruststore(ClientAuth),
    #[error("TLS to other brokers (the inter-broker or controller listener) needs ssl_truststore_location")]
    NoPeerTruststore,
    #[error("{key}: {reason}")]
    Pem { key: &'static str, reason: String },
    #[error("ssl_enabled_protocols: {0:?} is not TLSv1.2 or TLSv1.3")]
    Protocol(String),
    #[error("ssl_enabled_protocols names no protocol")]
    NoProtocol,
    #[error("the TLS configuration is refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the truststore is refused: {0}")]
    Verifier(String),
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// What every TLS listener shares: the acceptor, and how a client certificate's subject
/// becomes a principal.
#[derive(Clone)]
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    mapper: Arc<PrincipalMapper>,
}

impl ServerTls {
    /// The principal of a client that sent `cert` (the leaf of its chain): `User:` + its
    /// subject in RFC 2253 form as Java's `X500Principal.getName()` writes it, through the
    /// mapping rules. A certificate that does not parse (the verifier accepted it, so
    /// unlikely) is ANONYMOUS; a subject no rule applies to is refused.
    pub fn principal_of(&self, cert: &CertificateDer<'_>) -> Result<KafkaPrincipal, MappingError> {
        match x509_parser::parse_x509_certificate(cert.as_ref()) {
            Ok((_, cert)) => Ok(KafkaPrincipal::user(
                self.mapper.map(&rfc2253(cert.subject()))?,
            )),
            Err(_) => Ok(KafkaPrincipal::anonymous()),
        }
    }
}

impl TlsSettings {
    /// The acceptor of TLS listeners: certificates and keys read here, at start and on
    /// each reload.
    pub fn acceptor(&self) -> Result<ServerTls, TlsError> {
        let mapper = Arc::new(PrincipalMapper::parse(&self.ssl_principal_mapping_rules)?);
        for (key, value) in [
            ("ssl_keystore_type", &self.ssl_keystore_type),
            ("ssl_truststore_type", &self.ssl_truststore_type),
        ] {
            if !value.eq_ignore_ascii_case("PEM") {
                return Err(TlsError::StoreType {
                    key,
                    value: value.clone(),
                });
            }
        }
        let (chain, key) = self.keystore()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocols()?)?;
        let builder = match self.ssl_client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let location = self
                    .ssl_truststore_location
                    .as_deref()
                    .ok_or(TlsError::NoTruststore(auth))?;
                let roots = truststore_roots(location)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key)?;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            mapper,
        })
    }

    pub(crate) fn keystore(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let (chain_key, chain, key_key, key) = match (
            &self.ssl_keystore_location,
            &self.ssl_keystore_certificate_chain,
            &self.ssl_keystore_key,
        ) {
            (_, Some(chain), Some(key)) => (
                "ssl_keystore_certificate_chain",
                chain.as_str(),
                "ssl_keystore_key",
                key.as_str(),
            ),
            (Some(both), None, None) => (
                "ssl_keystore_location",
                both.as_str(),
                "ssl_keystore_location",
                both.as_str(),
            ),
            _ => return Err(TlsError::NoKeystore),
        };
        let chain = certificates(chain_key, chain)?;
        let key = pem_bytes(key_key, key).and_then(|pem| {
            PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
                key: key_key,
                reason: format!("no private key: {e}"),
            })
        })?;
        Ok((chain, key))
    }

    pub(crate) fn protocols(
        &self,
    ) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
        let mut versions = Vec::new();
        for name in self
            .ssl_enabled_protocols
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            versions.push(match name {
                "TLSv1.2" => &rustls::version::TLS12,
                "TLSv1.3" => &rustls::version::TLS13,
                other => return Err(TlsError::Protocol(other.to_string())),
            });
        }
        if versions.is_empty() {
            return Err(TlsError::NoProtocol);
        }
        Ok(versions)
    }
}

/// A setting's PEM: the text itself when it holds one, else the file it names.
fn pem_bytes(key: &'static str, value: &str) -> Result<Vec<u8>, TlsError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(Path::new(value)).map_err(|e| TlsError::Pem {
        key,
        reason: format!("cannot read {value}: {e}"),
    })
}

/// The CAs of `ssl_truststore_location`, the PEM file at `location`.
pub(crate) fn truststore_roots(location: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("ssl_truststore_location", location)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            key: "ssl_truststore_location",
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

pub(crate) fn certificates(
    key: &'static str,
    value: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = pem_bytes(key, value)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            key,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key,
            reason: "no certificate in it".to_string(),
        });
    }
    Ok(certs)
}

fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn.iter().map(attribute).collect();
            parts.join("+")
        })
        .collect();
    let mut reversed = rdns;
    reversed.reverse();
    reversed.join(",")
}

fn attribute(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    let oid = atv.attr_type().to_id_string();
    let keyword = match oid.as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        _ => None,
    };
    match (keyword, atv.as_str()) {
        (Some(keyword), Ok(value)) => format!("{keyword}={}", escape(value)),
        // RFC 2253: an unknown type by its OID, its value as the hex of its BER encoding.
        _ => {
            let any = atv.attr_value();
            let mut ber = vec![any.header.tag().0 as u8];
            let data = any.data;
            if data.len() < 128 {
                ber.push(data.len() as u8);
            } else {
                let len = (data.len() as u32).to_be_bytes();
                let skip = len.iter().take_while(|b| **b == 0).count();
                ber.push(0x80 | (4 - skip) as u8);
                ber.extend_from_slice(&len[skip..]);
            }
            ber.extend_from_slice(data);
            let hex: String = ber.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", keyword.unwrap_or(&oid))
        }
    }
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_rfc_2253_does() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn a_client_certificate_gives_kafkas_principal() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "eng");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        let mut settings = TlsSettings {
            ssl_keystore_certificate_chain: Some(cert.pem()),
            ssl_keystore_key: Some(key.serialize_pem()),
            ..TlsSettings::default()
        };
        let tls = settings.acceptor().unwrap();
        let principal = tls.principal_of(cert.der()).unwrap();
        // Java's X500Principal.getName(): the last RDN first, no spaces, RFC 2253 escapes.
        assert_eq!(
            principal.to_string(),
            "User:CN=alice,OU=eng,O=Acme\\, Inc.,C=DE"
        );
        assert_eq!(
            tls.principal_of(&CertificateDer::from(vec![1u8, 2, 3])),
            Ok(KafkaPrincipal::anonymous())
        );
        settings.ssl_principal_mapping_rules = "RULE:^CN=([^,]*),OU=eng,.*$/$1/U".into();
        let tls = settings.acceptor().unwrap();
        assert_eq!(
            tls.principal_of(cert.der()).unwrap().to_string(),
            "User:ALICE"
        );
        settings.ssl_principal_mapping_rules = "RULE:^CN=bob$/bob/".into();
        let tls = settings.acceptor().unwrap();
        assert!(tls.principal_of(cert.der()).is_err());
    }

    #[test]
    fn builds_an_acceptor_from_pem_text_or_files() {
        use rcgen::{CertificateParams, KeyPair};
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut s = TlsSettings {
            ssl_keystore_certificate_chain: Some(cert.pem()),
            ssl_keystore_key: Some(key.serialize_pem()),
            ..TlsSettings::default()
        };
        assert!(s.acceptor().is_ok());
        s.ssl_client_auth = ClientAuth::Required;
        assert!(matches!(s.acceptor(), Err(TlsError::NoTruststore(_))));
        let dir = std::env::temp_dir().join(format!("tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        s.ssl_truststore_location = Some(ca.display().to_string());
        let result = s.acceptor();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(result.is_ok(), "{:?}", result.err());
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        let mut s = TlsSettings::default();
        assert!(matches!(s.acceptor(), Err(TlsError::NoKeystore)));
        s.ssl_keystore_type = "JKS".into();
        assert!(matches!(s.acceptor(), Err(TlsError::StoreType { .. })));
        s.ssl_keystore_type = "PEM".into();
        s.ssl_enabled_protocols = "TLSv1.1".into();
        assert!(matches!(s.protocols(), Err(TlsError::Protocol(_))));
        s.ssl_enabled_protocols = " ".into();
        assert!(matches!(s.protocols(), Err(TlsError::NoProtocol)));
        s.ssl_keystore_location = Some("/nonexistent/keystore.pem".into());
        s.ssl_enabled_protocols = "TLSv1.3".into();
        assert!(matches!(s.acceptor(), Err(TlsError::Pem { .. })));
    }
}
