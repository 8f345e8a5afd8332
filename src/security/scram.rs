//! SCRAM-SHA-256 and SCRAM-SHA-512, the server side (RFC 5802, RFC 7677), as Kafka's
//! `ScramSaslServer` speaks it: no channel binding, the authorization id (if any) must be
//! the user, and an unknown user fails at the client's first message.
//!
//! The exchange is two round trips:
//! 1. client-first `n,,n=user,r=cnonce` -> server-first `r=cnonce+snonce,s=salt,i=iterations`
//! 2. client-final `c=biws,r=nonce,p=proof` -> server-final `v=server signature`
//!
//! A credential is the salt, the iteration count and two keys derived from the salted
//! password (`StoredKey = H(HMAC(SaltedPassword, "Client Key"))`, `ServerKey =
//! HMAC(SaltedPassword, "Server Key")`); the password itself is never kept. The hashes, HMAC
//! and PBKDF2 are RustCrypto's; proofs are compared in constant time.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The SCRAM mechanisms Kafka knows, with the ids its admin protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];
    /// Kafka's bounds on a credential's iteration count (`ScramMechanism.minIterations`,
    /// and the most AlterUserScramCredentials accepts).
    pub const MIN_ITERATIONS: i32 = 4096;
    pub const MAX_ITERATIONS: i32 = 16384;

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.mechanism_name() == name)
    }

    /// The id in DescribeUserScramCredentials and AlterUserScramCredentials (0 is UNKNOWN).
    pub fn wire_id(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn from_wire_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.wire_id() == id)
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length, so new_from_slice cannot fail.
        match self {
            Self::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mechanism_name())
    }
}

/// What the broker keeps of a SCRAM password. Debug leaves the keys out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential a salted password gives (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential of a password (for tests and the offline tool).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Self {
        let salted = mechanism.salted_password(password, &salt, iterations.max(1) as u32);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// Whether `password` is this credential's password (SASL/PLAIN against the SCRAM
    /// store), compared in constant time.
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        if self.iterations < 1 {
            return false;
        }
        let other = Self::from_password(mechanism, password, self.salt.clone(), self.iterations);
        other.stored_key.ct_eq(&self.stored_key).into()
    }
}

/// Why an exchange failed. Each is answered SASL_AUTHENTICATION_FAILED; the text never
/// holds a secret.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("invalid SCRAM client message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("authorization id must be the user name")]
    AuthorizationId,
    #[error("SCRAM extensions are not supported")]
    Extensions,
    #[error("invalid nonce")]
    Nonce,
    #[error("invalid channel binding data")]
    ChannelBindingData,
    #[error("Invalid user credentials")]
    InvalidCredentials,
}

/// The client's first message, parsed: who it claims to be and its nonce.
#[derive(Debug, Clone)]
pub struct ClientFirst {
    pub user: String,
    gs2_header: String,
    bare: String,
    client_nonce: String,
}

impl ClientFirst {
    pub fn parse(message: &[u8]) -> Result<Self, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().unwrap_or_default();
        let authzid = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
        let bare = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("bad channel binding flag")),
        }
        let mut user = None;
        let mut nonce = None;
        for (i, attribute) in bare.split(',').enumerate() {
            match (i, attribute.split_once('=')) {
                (0, Some(("n", name))) => user = Some(decode_saslname(name)?),
                (1, Some(("r", r))) if !r.is_empty() => nonce = Some(r.to_string()),
                (0 | 1, _) => return Err(ScramError::Malformed("expected n= then r=")),
                _ => return Err(ScramError::Extensions),
            }
        }
        let user = user.ok_or(ScramError::Malformed("no user name"))?;
        let client_nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
        if user.is_empty() {
            return Err(ScramError::Malformed("empty user name"));
        }
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if decode_saslname(authzid)? != user {
                return Err(ScramError::AuthorizationId);
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed("bad authorization id"));
        }
        Ok(ClientFirst {
            user,
            gs2_header: format!("{flag},{authzid},"),
            bare: bare.to_string(),
            client_nonce,
        })
    }

    /// The server's first message for this user's credential, and the state the client's
    /// final message is checked against. `server_nonce` must come from a CSPRNG.
    pub fn answer(
        self,
        mechanism: ScramMechanism,
        credential: ScramCredential,
        server_nonce: &str,
    ) -> (ScramExchange, Vec<u8>) {
        let nonce = format!("{}{}", self.client_nonce, server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = ScramExchange {
            mechanism,
            credential,
            gs2_header: self.gs2_header,
            client_nonce_len: self.client_nonce.len(),
            nonce,
            auth_prefix: format!("{},{server_first}", self.bare),
        };
        (exchange, server_first.into_bytes())
    }
}

/// A fresh server nonce: 24 bytes from the thread's CSPRNG (ChaCha, seeded by the OS),
/// in base64.
pub fn server_nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    BASE64.encode(bytes)
}

/// A fresh salt for a credential made on the broker.
pub fn new_salt() -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The exchange after the server's first message.
pub struct ScramExchange {
    mechanism: ScramMechanism,
    credential: ScramCredential,
    gs2_header: String,
    nonce: String,
    /// The client's nonce is `nonce`'s first `client_nonce_len` bytes. That nonce again in
    /// front of `nonce` is accepted too: librdkafka 2.0.2 (Debian's, under kcat 1.7.1) echoes
    /// its own nonce twice, and Kafka's ScramSaslServer accepted it with an `endsWith` check.
    /// Only this form is accepted besides the exact one.
    client_nonce_len: usize,
    /// client-first-bare "," server-first: the start of the AuthMessage.
    auth_prefix: String,
}

impl ScramExchange {
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Checks the client's final message; on success, the server's final message.
    pub fn finish(&self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected c="))?;
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r="))?;
        if attributes.next().is_some() {
            return Err(ScramError::Extensions);
        }
        let binding = BASE64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("bad base64 in c="))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingData);
        }
        // The proof below is computed over the nonce as sent, so accepting the doubled
        // form lets no one in without the password.
        let doubled = nonce
            .strip_suffix(self.nonce.as_str())
            .is_some_and(|prefix| Some(prefix) == self.nonce.get(..self.client_nonce_len));
        if nonce != self.nonce && !doubled {
            return Err(ScramError::Nonce);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("bad base64 in p="))?;
        let auth_message = format!("{},{without_proof}", self.auth_prefix);
        let m = self.mechanism;
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !bool::from(m.hash(&client_key).ct_eq(&self.credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

/// RFC 5802 saslname: `=2C` is a comma, `=3D` an equals sign, any other `=` is an error.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in a name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}
