//! Test certificates made with rcgen into a temp dir: a CA, a broker certificate for
//! 127.0.0.1 and localhost, and a client certificate (subject O=acme,OU=eng,CN=client),
//! all signed by the CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct TestCerts {
    /// The CA certificate (what clients trust, and the broker's truststore).
    pub ca: PathBuf,
    /// The broker's certificate chain and private key in one PEM file.
    pub broker_keystore: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCerts {
    pub fn generate(dir: &Path) -> TestCerts {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "broker test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

        let broker_key = KeyPair::generate().expect("broker key");
        let mut broker_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        broker_params
            .distinguished_name
            .push(DnType::CommonName, "broker");
        // Client too: brokers show it to each other (the quorum's TLS asks for it).
        broker_params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let broker = broker_params
            .signed_by(&broker_key, &ca, &ca_key)
            .expect("broker certificate");

        let client_key = KeyPair::generate().expect("client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Without rcgen's default CN, so the subject's order is the one pushed here.
        client_params.distinguished_name = DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::OrganizationName, "acme");
        client_params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "eng");
        client_params
            .distinguished_name
            .push(DnType::CommonName, "client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &ca, &ca_key)
            .expect("client certificate");

        let certs = TestCerts {
            ca: dir.join("ca.pem"),
            broker_keystore: dir.join("broker.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        };
        std::fs::write(&certs.ca, ca.pem()).unwrap();
        std::fs::write(
            &certs.broker_keystore,
            format!("{}{}{}", broker.pem(), ca.pem(), broker_key.serialize_pem()),
        )
        .unwrap();
        std::fs::write(&certs.client_cert, client.pem()).unwrap();
        std::fs::write(&certs.client_key, client_key.serialize_pem()).unwrap();
        certs
    }

    /// config.toml lines: a PLAINTEXT listener on `port` (the harness waits on it) and an
    /// SSL listener on `ssl_port`, with this broker keystore.
    pub fn broker_config(&self, port: u16, ssl_port: u16) -> String {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}\"\n\
             ssl_keystore_location = \"{}\"\n",
            self.broker_keystore.display()
        )
    }

    /// librdkafka settings of an SSL client that trusts the test CA.
    pub fn client_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "ssl".to_string()),
            ("ssl.ca.location", self.ca.display().to_string()),
        ]
    }
}
