//! The SCRAM server against RFC 7677's test vector, and a SHA-512 round trip with a
//! client written from RFC 5802.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::scram::*;

/// RFC 7677 section 3: user "user", password "pencil".
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_credential() -> ScramCredential {
    let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", salt, 4096)
}

#[test]
fn rfc7677_test_vector() {
    let first = ClientFirst::parse(CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(first.user, "user");
    let (exchange, server_first) =
        first.answer(ScramMechanism::Sha256, rfc_credential(), SERVER_NONCE);
    assert_eq!(String::from_utf8(server_first).unwrap(), SERVER_FIRST);
    let server_final = exchange.finish(CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(server_final).unwrap(), SERVER_FINAL);
}

#[test]
fn a_wrong_proof_nonce_or_binding_fails() {
    let exchange = || {
        ClientFirst::parse(CLIENT_FIRST.as_bytes())
            .unwrap()
            .answer(ScramMechanism::Sha256, rfc_credential(), SERVER_NONCE)
            .0
    };
    let wrong_proof = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
    assert_eq!(
        exchange().finish(wrong_proof.as_bytes()),
        Err(ScramError::InvalidCredentials)
    );
    let wrong_nonce = CLIENT_FINAL.replace("$k0,", "$k1,");
    assert_eq!(
        exchange().finish(wrong_nonce.as_bytes()),
        Err(ScramError::Nonce)
    );
    let wrong_binding = CLIENT_FINAL.replace("c=biws", "c=eSws");
    assert_eq!(
        exchange().finish(wrong_binding.as_bytes()),
        Err(ScramError::ChannelBindingData)
    );
    // Another password's credential refuses the RFC's proof.
    let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let other = ScramCredential::from_password(ScramMechanism::Sha256, b"pencils", salt, 4096);
    let (exchange, _) = ClientFirst::parse(CLIENT_FIRST.as_bytes()).unwrap().answer(
        ScramMechanism::Sha256,
        other,
        SERVER_NONCE,
    );
    assert_eq!(
        exchange.finish(CLIENT_FINAL.as_bytes()),
        Err(ScramError::InvalidCredentials)
    );
    assert!(exchange.finish(b"c=biws").is_err());
    assert!(exchange.finish(&[0xff, 0xfe]).is_err());
}

#[test]
fn client_first_messages_are_checked() {
    assert!(ClientFirst::parse(b"").is_err());
    assert!(ClientFirst::parse(b"n,,").is_err());
    assert!(ClientFirst::parse(b"n,,r=abc").is_err());
    assert!(ClientFirst::parse(b"n,,n=,r=abc").is_err());
    assert!(ClientFirst::parse(b"n,,n=user").is_err());
    assert_eq!(
        ClientFirst::parse(b"p=tls-unique,,n=user,r=abc").unwrap_err(),
        ScramError::ChannelBinding
    );
    assert_eq!(
        ClientFirst::parse(b"n,a=admin,n=user,r=abc").unwrap_err(),
        ScramError::AuthorizationId
    );
    assert_eq!(
        ClientFirst::parse(b"n,,n=user,r=abc,tokenauth=true").unwrap_err(),
        ScramError::Extensions
    );
    assert!(ClientFirst::parse(b"n,,n=us=4er,r=abc").is_err());
    let escaped = ClientFirst::parse(b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc").unwrap();
    assert_eq!(escaped.user, "a,b=c");
}

/// RFC 5802's client, for a round trip with SHA-512 (RFC 7677 has no vector for it).
fn client_final(
    mechanism: ScramMechanism,
    password: &[u8],
    client_first_bare: &str,
    server_first: &str,
    echo_prefix: &str,
) -> String {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha512};
    assert_eq!(mechanism, ScramMechanism::Sha512);
    let mut fields = server_first.split(',');
    let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
    let salt = BASE64
        .decode(fields.next().unwrap().strip_prefix("s=").unwrap())
        .unwrap();
    let iterations: u32 = fields.next().unwrap()[2..].parse().unwrap();
    let salted = pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, &salt, iterations);
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha512::digest(&client_key);
    let without_proof = format!("c=biws,r={echo_prefix}{nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    format!("{without_proof},p={}", BASE64.encode(proof))
}

#[test]
fn sha512_round_trip_with_a_random_nonce_and_salt() {
    let m = ScramMechanism::Sha512;
    let credential = ScramCredential::from_password(m, b"alice-secret", new_salt(), 4096);
    assert!(credential.matches_password(m, b"alice-secret"));
    assert!(!credential.matches_password(m, b"alice-secreT"));
    let nonce = server_nonce();
    assert_ne!(nonce, server_nonce(), "nonces are random");
    let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    let first = ClientFirst::parse(format!("n,,{bare}").as_bytes()).unwrap();
    let (exchange, server_first) = first.answer(m, credential, &nonce);
    let server_first = String::from_utf8(server_first).unwrap();
    let good = client_final(m, b"alice-secret", bare, &server_first, "");
    assert!(exchange.finish(good.as_bytes()).is_ok());
    let bad = client_final(m, b"wrong", bare, &server_first, "");
    assert_eq!(
        exchange.finish(bad.as_bytes()),
        Err(ScramError::InvalidCredentials)
    );
}

/// librdkafka 2.0.2 (kcat 1.7.1 on Debian) echoes its own nonce in front of the combined
/// one; that form is served, with the proof still checked, and no other prefix is.
#[test]
fn librdkafka_doubled_client_nonce_is_accepted_with_a_valid_proof_only() {
    let m = ScramMechanism::Sha512;
    let credential = ScramCredential::from_password(m, b"admin-secret", new_salt(), 4096);
    let cnonce = "U8k?qZtSEz=i[YlZlav0{ETG7Lr01}qL";
    let bare = format!("n=admin,r={cnonce}");
    let first = ClientFirst::parse(format!("n,,{bare}").as_bytes()).unwrap();
    let (exchange, server_first) = first.answer(m, credential, &server_nonce());
    let server_first = String::from_utf8(server_first).unwrap();
    let doubled = client_final(m, b"admin-secret", &bare, &server_first, cnonce);
    assert!(exchange.finish(doubled.as_bytes()).is_ok());
    let wrong = client_final(m, b"wrong", &bare, &server_first, cnonce);
    assert_eq!(
        exchange.finish(wrong.as_bytes()),
        Err(ScramError::InvalidCredentials)
    );
    let other_prefix = client_final(m, b"admin-secret", &bare, &server_first, "x");
    assert_eq!(
        exchange.finish(other_prefix.as_bytes()),
        Err(ScramError::Nonce)
    );
}

#[test]
fn mechanism_names_and_ids_are_kafkas() {
    assert_eq!(
        ScramMechanism::from_mechanism_name("SCRAM-SHA-512"),
        Some(ScramMechanism::Sha512)
    );
    assert_eq!(
        ScramMechanism::from_wire_id(1),
        Some(ScramMechanism::Sha256)
    );
    assert_eq!(ScramMechanism::from_wire_id(0), None);
    let c = ScramCredential::from_password(ScramMechanism::Sha256, b"x", vec![1], 4096);
    assert!(!format!("{c:?}").contains("stored_key"));
}
