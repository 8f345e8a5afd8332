//! How this broker's own connections to other brokers are secured: Kafka's
//! `security.inter.broker.protocol` (or the protocol of `inter.broker.listener.name`'s
//! listener), `sasl.mechanism.inter.broker.protocol` and the broker's JAAS login for
//! the replica fetchers and transaction markers, and `controller.listener.names` for the
//! metadata quorum's transport. TLS to peers reads the listeners' `ssl_*` keys
//! (`security::peer_tls`). Unset, everything stays PLAINTEXT as before.

use serde::{Deserialize, Serialize};
use tokio_rustls::TlsConnector;

use crate::security::quorum_peers::QuorumAcceptor;

use super::{Config, ConfigError};
use crate::security::jaas::{self, JaasLogin, Password};
use crate::security::sasl::SaslMechanism;
use crate::security::SecurityProtocol;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InterBrokerSettings {
    /// Kafka's `security.inter.broker.protocol`: other brokers are reached on the listener
    /// named after this protocol. Kafka refuses it together with `inter_broker_listener_name`.
    pub security_inter_broker_protocol: Option<String>,
    /// Kafka's `sasl.mechanism.inter.broker.protocol`: PLAIN, SCRAM-SHA-256 or
    /// SCRAM-SHA-512 (Kafka's default, GSSAPI, is not implemented).
    pub sasl_mechanism_inter_broker_protocol: Option<String>,
    /// The broker's own login on other brokers' SASL listeners, as Kafka's listener
    /// `sasl.jaas.config` holds it: `...ScramLoginModule required username="broker"
    /// password="...";`. Hidden from logs and Debug.
    pub sasl_inter_broker_jaas_config: Option<Password>,
    /// Kafka's `controller.listener.names`: a name in `listener_security_protocol_map`
    /// whose protocol the metadata quorum's transport speaks, PLAINTEXT or SSL (TLS with
    /// a certificate required of every peer).
    pub controller_listener_names: Option<String>,
}

/// What the broker's connections to other brokers' inter-broker listener speak.
#[derive(Clone, Default)]
pub struct InterBrokerSecurity {
    pub protocol: SecurityProtocol,
    /// Set for SSL and SASL_SSL.
    pub tls: Option<TlsConnector>,
    /// Set for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<(SaslMechanism, JaasLogin)>,
}

impl std::fmt::Debug for InterBrokerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterBrokerSecurity")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

fn invalid(e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(e.to_string())
}

impl Config {
    /// The name of the listener other brokers reach this one on, if one is named:
    /// `inter_broker_listener_name`, else the listener `security_inter_broker_protocol`
    /// names (Kafka names it after the protocol).
    pub fn inter_broker_listener(&self) -> Option<String> {
        self.inter_broker_listener_name.clone().or_else(|| {
            self.inter_broker
                .security_inter_broker_protocol
                .as_ref()
                .map(|p| p.trim().to_ascii_uppercase())
        })
    }

    /// The protocol of the inter-broker listener: the chosen listener's (the first one's
    /// when none is named).
    pub fn inter_broker_protocol(&self) -> Result<SecurityProtocol, ConfigError> {
        let settings = &self.inter_broker;
        if let Some(protocol) = &settings.security_inter_broker_protocol {
            if self.inter_broker_listener_name.is_some() {
                return Err(invalid(
                    "only one of inter_broker_listener_name and security_inter_broker_protocol may be set",
                ));
            }
            protocol
                .trim()
                .parse::<SecurityProtocol>()
                .map_err(invalid)?;
        }
        let listeners = self.listener_configs()?;
        let chosen = match self.inter_broker_listener() {
            Some(name) => listeners
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(&name))
                .ok_or_else(|| {
                    invalid(format!(
                        "the inter-broker listener {name} is not in listeners"
                    ))
                })?,
            None => listeners.first().ok_or_else(|| invalid("no listener"))?,
        };
        Ok(chosen.protocol)
    }

    /// How to reach other brokers' inter-broker listener; reads the truststore and
    /// keystore files for TLS. A single node has no peers: PLAINTEXT, nothing read.
    pub fn inter_broker_security(&self) -> Result<InterBrokerSecurity, ConfigError> {
        if !self.cluster_mode() {
            return Ok(InterBrokerSecurity::default());
        }
        let protocol = self.inter_broker_protocol()?;
        let tls = match protocol.uses_tls() {
            true => Some(self.tls.peer_connector().map_err(invalid)?),
            false => None,
        };
        let sasl = match protocol.uses_sasl() {
            true => Some(self.inter_broker_login()?),
            false => None,
        };
        Ok(InterBrokerSecurity {
            protocol,
            tls,
            sasl,
        })
    }

    fn inter_broker_login(&self) -> Result<(SaslMechanism, JaasLogin), ConfigError> {
        let settings = &self.inter_broker;
        let name = settings.sasl_mechanism_inter_broker_protocol.as_deref().ok_or_else(|| {
            invalid("a SASL inter-broker listener needs sasl_mechanism_inter_broker_protocol (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
        })?;
        let mechanism = SaslMechanism::parse(name.trim()).ok_or_else(|| {
            invalid(format!(
                "sasl_mechanism_inter_broker_protocol: {name:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            ))
        })?;
        let jaas = settings.sasl_inter_broker_jaas_config.as_ref().ok_or_else(|| {
            invalid("a SASL inter-broker listener needs sasl_inter_broker_jaas_config, the broker's own login")
        })?;
        let login = jaas::parse(jaas.value(), mechanism)
            .map_err(|e| invalid(format!("sasl_inter_broker_jaas_config: {e}")))?;
        Ok((mechanism, login))
    }

    /// The protocol of the metadata quorum's transport: PLAINTEXT unless
    /// `controller_listener_names` maps to SSL.
    pub fn controller_protocol(&self) -> Result<SecurityProtocol, ConfigError> {
        let Some(name) = &self.inter_broker.controller_listener_names else {
            return Ok(SecurityProtocol::Plaintext);
        };
        let name = name.trim();
        if name.contains(',') {
            return Err(invalid("controller_listener_names: one name only"));
        }
        let protocol =
            crate::security::listeners::protocol_of(&self.listener_security_protocol_map, name)
                .map_err(invalid)?;
        match protocol {
            SecurityProtocol::Plaintext | SecurityProtocol::Ssl => Ok(protocol),
            other => Err(invalid(format!(
                "controller_listener_names: the quorum transport speaks PLAINTEXT or SSL, not {other}"
            ))),
        }
    }

    /// TLS of the metadata quorum's transport, both ends, when it speaks SSL.
    /// With an authorizer on, only super users' certificates may speak Raft.
    pub fn quorum_tls(&self) -> Result<Option<(TlsConnector, QuorumAcceptor)>, ConfigError> {
        if self.controller_protocol()? != SecurityProtocol::Ssl {
            return Ok(None);
        }
        let connector = self.tls.peer_connector().map_err(invalid)?;
        let tls = self.tls.peer_acceptor().map_err(invalid)?;
        let acceptor = QuorumAcceptor::new(tls, self.authorizer()?.as_ref());
        Ok(Some((connector, acceptor)))
    }

    /// Checks the inter-broker settings at load. A single node has no peers, so its SASL
    /// listeners need no login of its own.
    pub(super) fn validate_inter_broker(&self) -> Result<(), ConfigError> {
        let protocol = self.inter_broker_protocol()?;
        if protocol.uses_sasl() && self.cluster_mode() {
            self.inter_broker_login()?;
        }
        self.controller_protocol()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::ScramMechanism;

    fn two_listeners() -> Config {
        Config {
            node_id: 1,
            controller_quorum_voters: "1@127.0.0.1:9093".into(),
            listeners: Some("CLIENT://127.0.0.1:0,INTERNAL://127.0.0.1:0".into()),
            listener_security_protocol_map:
                "CLIENT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:SSL,BAD:SASL_SSL"
                    .into(),
            ..Config::default()
        }
    }

    const JAAS: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"pw\";";

    #[test]
    fn unset_keeps_plaintext_everywhere() {
        let c = Config::default();
        c.validate().unwrap();
        let security = c.inter_broker_security().unwrap();
        assert_eq!(security.protocol, SecurityProtocol::Plaintext);
        assert!(security.tls.is_none() && security.sasl.is_none());
        assert!(c.quorum_tls().unwrap().is_none());
    }

    #[test]
    fn a_single_node_with_a_sasl_or_ssl_listener_needs_no_inter_broker_login() {
        let single = Config {
            listeners: Some("SASL_SSL://127.0.0.1:0".into()),
            ..Config::default()
        };
        single.validate().unwrap();
        let security = single.inter_broker_security().unwrap();
        assert_eq!(security.protocol, SecurityProtocol::Plaintext);
        assert!(security.tls.is_none() && security.sasl.is_none());
    }

    #[test]
    fn the_inter_broker_listener_gives_the_protocol_and_sasl_needs_a_login() {
        let mut c = two_listeners();
        c.inter_broker_listener_name = Some("INTERNAL".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("sasl_mechanism_inter_broker_protocol"),
            "{err}"
        );
        c.inter_broker.sasl_mechanism_inter_broker_protocol = Some("SCRAM-SHA-512".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("sasl_inter_broker_jaas_config"), "{err}");
        c.inter_broker.sasl_inter_broker_jaas_config = Some(Password::new(JAAS));
        c.validate().unwrap();
        let (mechanism, login) = c.inter_broker_security().unwrap().sasl.unwrap();
        assert_eq!(mechanism, SaslMechanism::Scram(ScramMechanism::Sha512));
        assert_eq!(login.username, "broker");
        assert!(
            !format!("{c:?}").contains("password=\\\"pw"),
            "Debug hides it"
        );
        c.inter_broker.sasl_mechanism_inter_broker_protocol = Some("GSSAPI".into());
        assert!(c.validate().is_err());
        c.inter_broker.sasl_mechanism_inter_broker_protocol = Some("PLAIN".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("PlainLoginModule"), "{err}");
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn security_inter_broker_protocol_names_the_listener_and_excludes_the_name() {
        let mut c = two_listeners();
        c.inter_broker.security_inter_broker_protocol = Some("SSL".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("SSL is not in listeners"), "{err}");
        c.listeners = Some("CLIENT://127.0.0.1:0,SSL://127.0.0.1:0".into());
        c.validate().unwrap();
        assert_eq!(c.inter_broker_protocol().unwrap(), SecurityProtocol::Ssl);
        assert_eq!(c.inter_broker_listener().as_deref(), Some("SSL"));
        let err = c.inter_broker_security().unwrap_err().to_string();
        assert!(err.contains("ssl_truststore_location"), "{err}");
        c.inter_broker_listener_name = Some("CLIENT".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("only one of"), "{err}");
    }

    #[test]
    fn the_controller_listener_speaks_plaintext_or_ssl() {
        let mut c = two_listeners();
        c.inter_broker.controller_listener_names = Some("CONTROLLER".into());
        c.validate().unwrap();
        assert_eq!(c.controller_protocol().unwrap(), SecurityProtocol::Ssl);
        assert!(c.quorum_tls().is_err(), "SSL needs the stores");
        c.inter_broker.controller_listener_names = Some("BAD".into());
        assert!(c.validate().is_err());
        c.inter_broker.controller_listener_names = Some("NOWHERE".into());
        assert!(c.validate().is_err());
    }
}
