//! SASL/PLAIN (RFC 4616): one message `[authzid] NUL authcid NUL passwd`. As in Kafka's
//! `PlainSaslServer`, the authorization id, if given, must be the user; the password is
//! checked against `sasl_plain_users` (compared in constant time) or else against the
//! user's SCRAM credential. The principal is `User:<authcid>`.

use subtle::ConstantTimeEq;

/// Why a PLAIN message was refused; the text never holds the password.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PlainError {
    #[error("invalid SASL/PLAIN message: {0}")]
    Malformed(&'static str),
    #[error("Authentication failed: authorization id must be the user name")]
    AuthorizationId,
}

/// A parsed PLAIN message.
pub struct PlainMessage {
    pub user: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PlainMessage {
    pub fn parse(message: &[u8]) -> Result<Self, PlainError> {
        let mut parts = message.split(|b| *b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PlainError::Malformed(
                "expected authzid NUL user NUL password",
            ));
        };
        let user = std::str::from_utf8(user)
            .map_err(|_| PlainError::Malformed("user name is not UTF-8"))?;
        if user.is_empty() {
            return Err(PlainError::Malformed("empty user name"));
        }
        if password.is_empty() {
            return Err(PlainError::Malformed("empty password"));
        }
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err(PlainError::AuthorizationId);
        }
        Ok(PlainMessage {
            user: user.to_string(),
            password: password.to_vec(),
        })
    }
}

/// Constant-time equality of a configured password and the one a client sent (the time
/// taken does not depend on where they differ; only on their lengths).
pub fn password_matches(expected: &str, given: &[u8]) -> bool {
    expected.as_bytes().ct_eq(given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc4616_messages() {
        let m = PlainMessage::parse(b"\0alice\0secret").unwrap();
        assert_eq!(
            (m.user.as_str(), m.password.as_slice()),
            ("alice", &b"secret"[..])
        );
        assert!(PlainMessage::parse(b"alice\0alice\0secret").is_ok());
        assert_eq!(
            PlainMessage::parse(b"admin\0alice\0secret").unwrap_err(),
            PlainError::AuthorizationId
        );
        assert!(PlainMessage::parse(b"\0alice").is_err());
        assert!(PlainMessage::parse(b"\0\0secret").is_err());
        assert!(PlainMessage::parse(b"\0alice\0").is_err());
        assert!(PlainMessage::parse(b"\0a\0b\0c").is_err());
        assert!(!format!("{m:?}").contains("secret"));
        assert!(password_matches("secret", b"secret"));
        assert!(!password_matches("secret", b"secreT"));
        assert!(!password_matches("secret", b"secret2"));
    }
}
