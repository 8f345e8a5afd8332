//! The broker's own SASL login for its connections to other brokers, written as Kafka's
//! `sasl.jaas.config` writes it:
//!
//! `org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="secret";`
//!
//! (`PlainLoginModule` for PLAIN). Only the login module, the `required` flag and the
//! `username` and `password` options are read; the password is kept in a `Password`, whose
//! Debug and Display hide it, as Kafka's `Password` type does.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::sasl::SaslMechanism;

const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// A secret from the configuration: never shown in logs or Debug output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Who the broker logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasLogin {
    pub username: String,
    pub password: Password,
}

/// Why a JAAS text was refused. The texts never quote the configuration: it holds a
/// password.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JaasError {
    #[error("expected `<LoginModule> required username=\"...\" password=\"...\";`")]
    Format,
    #[error("the login module must be {expected} for {mechanism}")]
    Module {
        expected: &'static str,
        mechanism: &'static str,
    },
    #[error("the option {0} is missing")]
    Missing(&'static str),
}

/// Parses one login module entry for `mechanism`.
pub fn parse(text: &str, mechanism: SaslMechanism) -> Result<JaasLogin, JaasError> {
    let expected = match mechanism {
        SaslMechanism::Plain => PLAIN_MODULE,
        SaslMechanism::Scram(_) => SCRAM_MODULE,
    };
    let text = text.trim();
    let body = text.strip_suffix(';').ok_or(JaasError::Format)?.trim_end();
    let (module, rest) = body
        .split_once(char::is_whitespace)
        .ok_or(JaasError::Format)?;
    if module != expected {
        return Err(JaasError::Module {
            expected,
            mechanism: mechanism.name(),
        });
    }
    let rest = rest.trim_start();
    let flag_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if !rest[..flag_end].eq_ignore_ascii_case("required") {
        return Err(JaasError::Format);
    }
    let (mut username, mut password) = (None, None);
    for (key, value) in options(&rest[flag_end..])? {
        match key {
            "username" => username = Some(value),
            "password" => password = Some(value),
            _ => {}
        }
    }
    Ok(JaasLogin {
        username: username.ok_or(JaasError::Missing("username"))?,
        password: Password(password.ok_or(JaasError::Missing("password"))?),
    })
}

/// `key="value"` pairs separated by white space; `\"` and `\\` escape inside the quotes.
fn options(mut rest: &str) -> Result<Vec<(&str, String)>, JaasError> {
    let mut pairs = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(pairs);
        }
        let (key, after) = rest.split_once('=').ok_or(JaasError::Format)?;
        let key = key.trim();
        let after = after.trim_start();
        let quoted = after.strip_prefix('"').ok_or(JaasError::Format)?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => value.push(chars.next().ok_or(JaasError::Format)?.1),
                Some((at, '"')) => break at,
                Some((_, c)) => value.push(c),
                None => return Err(JaasError::Format),
            }
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(JaasError::Format);
        }
        pairs.push((key, value));
        rest = &quoted[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::ScramMechanism;

    const SCRAM: SaslMechanism = SaslMechanism::Scram(ScramMechanism::Sha512);

    #[test]
    fn reads_kafkas_login_module_entries() {
        let login = parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \n username=\"broker\" password=\"se\\\"cret\";",
            SCRAM,
        )
        .unwrap();
        assert_eq!(login.username, "broker");
        assert_eq!(login.password.value(), "se\"cret");
        let plain = parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"b\" password=\"p\";",
            SaslMechanism::Plain,
        )
        .unwrap();
        assert_eq!(plain.username, "b");
    }

    #[test]
    fn refuses_what_it_cannot_read_and_hides_the_password() {
        let good = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"b\" password=\"topsecret\";";
        assert!(matches!(
            parse(good, SaslMechanism::Plain),
            Err(JaasError::Module { .. })
        ));
        assert_eq!(parse(&good.replace(';', ""), SCRAM), Err(JaasError::Format));
        assert_eq!(
            parse(&good.replace("required", "optional"), SCRAM),
            Err(JaasError::Format)
        );
        assert_eq!(
            parse(&good.replace(" password=\"topsecret\"", ""), SCRAM),
            Err(JaasError::Missing("password"))
        );
        assert_eq!(
            parse(&good.replace("\"topsecret\"", "\"open"), SCRAM),
            Err(JaasError::Format)
        );
        let login = parse(good, SCRAM).unwrap();
        let shown = format!("{login:?} {}", login.password);
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
