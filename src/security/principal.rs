//! Kafka's principal: a type and a name, written `Type:name` (`User:alice`).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a principal is written Type:name, not {0:?}")]
pub struct PrincipalParseError(pub String);

impl KafkaPrincipal {
    /// The only principal type Kafka's built-in authentication produces.
    pub const USER_TYPE: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: Self::USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    /// What an unauthenticated (PLAINTEXT, or SSL without a client certificate)
    /// connection is, as Kafka names it.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// `Type:name`, split at the first colon (a name may hold colons).
    pub fn parse(text: &str) -> Result<Self, PrincipalParseError> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Self {
                principal_type: kind.to_string(),
                name: name.to_string(),
            }),
            _ => Err(PrincipalParseError(text.to_string())),
        }
    }
}

impl Default for KafkaPrincipal {
    fn default() -> Self {
        Self::anonymous()
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_type_and_name() {
        let p = KafkaPrincipal::parse("User:CN=a,O=b:c").unwrap();
        assert_eq!(p.principal_type, "User");
        assert_eq!(p.name, "CN=a,O=b:c");
        assert_eq!(p.to_string(), "User:CN=a,O=b:c");
        assert!(KafkaPrincipal::parse("alice").is_err());
        assert!(KafkaPrincipal::parse(":alice").is_err());
        assert_eq!(KafkaPrincipal::default().to_string(), "User:ANONYMOUS");
    }
}
