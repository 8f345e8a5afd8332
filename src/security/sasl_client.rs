//! The client side of SASL/PLAIN and SCRAM (RFC 5802, RFC 7677), as Kafka's
//! `ScramSaslClient` speaks it, for the broker's own connections to other brokers: the
//! tokens only; `cluster::broker_client` carries them in SaslAuthenticate requests.
//!
//! The server's messages come off the network, so they are checked before use: its nonce
//! must extend ours, its iteration count must lie within Kafka's bounds for a credential
//! (which also bounds the PBKDF2 work a hostile server can ask for), and its signature must
//! prove it knows the credential before the login counts.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::jaas::Password;
use super::scram::{server_nonce, ScramError, ScramMechanism};

/// SASL/PLAIN's one token: no authorization id, the user, the password.
pub fn plain_token(user: &str, password: &Password) -> Vec<u8> {
    format!("\0{user}\0{}", password.value()).into_bytes()
}

/// A SCRAM exchange before the server's first message.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: Password,
    client_nonce: String,
    client_first_bare: String,
}

/// What is left once the client's final message is sent: the server signature to expect.
pub struct ScramClientFinal {
    server_signature: Vec<u8>,
}

impl ScramClient {
    /// Starts an exchange for `user`; the client's first message is the second value.
    pub fn start(mechanism: ScramMechanism, user: &str, password: Password) -> (Self, Vec<u8>) {
        let client_nonce = server_nonce();
        let client_first_bare = format!("n={},r={client_nonce}", encode_saslname(user));
        let first = format!("n,,{client_first_bare}").into_bytes();
        let client = ScramClient {
            mechanism,
            password,
            client_nonce,
            client_first_bare,
        };
        (client, first)
    }

    /// The client's final message for the server's first one.
    pub fn answer(self, server_first: &[u8]) -> Result<(ScramClientFinal, Vec<u8>), ScramError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attribute in text.split(',') {
            match attribute.split_once('=') {
                Some(("r", r)) => nonce = Some(r),
                Some(("s", s)) => salt = Some(s),
                Some(("i", i)) => iterations = Some(i),
                Some(("m", _)) => return Err(ScramError::Extensions),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = BASE64
            .decode(salt.ok_or(ScramError::Malformed("no salt"))?)
            .map_err(|_| ScramError::Malformed("bad base64 in s="))?;
        let iterations: i32 = iterations
            .and_then(|i| i.parse().ok())
            .ok_or(ScramError::Malformed("no iteration count"))?;
        if !(ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS).contains(&iterations)
        {
            return Err(ScramError::Malformed("iteration count out of bounds"));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.value().as_bytes(), &salt, iterations as u32);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_key = m.hmac(&salted, b"Client Key");
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        let final_state = ScramClientFinal {
            server_signature: m.hmac(&server_key, auth_message.as_bytes()),
        };
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((final_state, message.into_bytes()))
    }
}

impl ScramClientFinal {
    /// Checks the server's final message: it must prove the server holds the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let signature = text
            .strip_prefix("v=")
            .ok_or(ScramError::InvalidCredentials)?;
        let signature = BASE64
            .decode(signature)
            .map_err(|_| ScramError::Malformed("bad base64 in v="))?;
        if bool::from(signature.ct_eq(&self.server_signature)) {
            Ok(())
        } else {
            Err(ScramError::InvalidCredentials)
        }
    }
}

/// RFC 5802 saslname: a comma is `=2C`, an equals sign `=3D`.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ClientFirst, ScramCredential};

    fn exchange(mechanism: ScramMechanism, password: &str) -> Result<(), ScramError> {
        let credential =
            ScramCredential::from_password(mechanism, b"right", b"salt".to_vec(), 4096);
        let (client, first) = ScramClient::start(mechanism, "bro,ker", Password::new(password));
        let parsed = ClientFirst::parse(&first).unwrap();
        assert_eq!(parsed.user, "bro,ker");
        let (server, server_first) = parsed.answer(mechanism, credential, &server_nonce());
        let (client, client_final) = client.answer(&server_first)?;
        let server_final = server.finish(&client_final)?;
        client.verify(&server_final)
    }

    #[test]
    fn logs_in_against_the_brokers_own_server_side() {
        for m in ScramMechanism::ALL {
            assert_eq!(exchange(m, "right"), Ok(()));
            assert_eq!(
                exchange(m, "wrong"),
                Err(ScramError::InvalidCredentials),
                "{m}"
            );
        }
    }

    #[test]
    fn refuses_a_server_that_does_not_play_by_the_rules() {
        let m = ScramMechanism::Sha256;
        let start = || ScramClient::start(m, "u", Password::new("p"));
        let (client, _) = start();
        let nonce = client.client_nonce.clone();
        let (client2, _) = start();
        let (client3, _) = start();
        let (client4, _) = start();
        // Too many iterations: a hostile server asking for unbounded PBKDF2 work.
        let greedy = format!("r={nonce}x,s=c2FsdA==,i=100000000");
        assert!(matches!(
            client.answer(greedy.as_bytes()),
            Err(ScramError::Malformed(_))
        ));
        // A nonce that does not extend ours.
        assert!(matches!(
            client2.answer(b"r=other,s=c2FsdA==,i=4096"),
            Err(ScramError::Nonce)
        ));
        assert!(matches!(
            client3.answer(b"m=ext,r=x,s=c2FsdA==,i=4096"),
            Err(ScramError::Extensions)
        ));
        // A server signature that proves nothing.
        let server_first = format!("r={}y,s=c2FsdA==,i=4096", client4.client_nonce);
        let (done, _) = client4.answer(server_first.as_bytes()).unwrap();
        assert_eq!(done.verify(b"v=AAAA"), Err(ScramError::InvalidCredentials));
        assert_eq!(
            done.verify(b"e=invalid-proof"),
            Err(ScramError::InvalidCredentials)
        );
        assert_eq!(plain_token("u", &Password::new("p")), b"\0u\0p".to_vec());
    }
}
