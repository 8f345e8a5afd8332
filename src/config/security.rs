//! The security part of the configuration: listeners and their protocols, SASL
//! mechanisms and the authorizer.

use super::{Config, ConfigError};

impl Config {
    /// The authorizer `authorizer_class_name` enables, if any; `super_users` must parse.
    pub fn authorizer(&self) -> Result<Option<crate::security::acl::Authorizer>, ConfigError> {
        let super_users = crate::security::acl::parse_super_users(&self.super_users)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let class = self.authorizer_class_name.trim();
        if class.is_empty() {
            return Ok(None);
        }
        if !crate::security::acl::AUTHORIZER_CLASSES.contains(&class) {
            return Err(ConfigError::Invalid(format!(
                "authorizer_class_name {class:?} is not one this broker implements: use one of {:?}, or leave it empty for no authorizer",
                crate::security::acl::AUTHORIZER_CLASSES
            )));
        }
        Ok(Some(crate::security::acl::Authorizer {
            super_users,
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        }))
    }

    /// The enabled SASL mechanisms; an unknown or unsupported name is an error.
    pub fn sasl_mechanisms(
        &self,
    ) -> Result<Vec<crate::security::sasl::SaslMechanism>, ConfigError> {
        self.sasl_enabled_mechanisms
            .iter()
            .map(|name| {
                crate::security::sasl::SaslMechanism::parse(name.trim()).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "sasl_enabled_mechanisms: {name:?} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                    ))
                })
            })
            .collect()
    }

    /// Every listener, parsed and checked (`listeners`, or `listen` alone).
    pub fn listener_configs(
        &self,
    ) -> Result<Vec<crate::security::listeners::ListenerConfig>, ConfigError> {
        crate::security::listeners::parse(&crate::security::listeners::ListenerSettings {
            listeners: self.listeners.as_deref(),
            advertised_listeners: self.advertised_listeners.as_deref(),
            protocol_map: &self.listener_security_protocol_map,
            inter_broker_listener_name: self.inter_broker_listener_name.as_deref(),
            listen: self.listen,
            advertised_listener: self.advertised_listener.as_deref(),
        })
        .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}
