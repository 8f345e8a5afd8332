//! SSL listeners (rustls): librdkafka produces and consumes over TLS; a plaintext client
//! on the SSL port is closed and the broker serves on; a client that stalls its handshake
//! is closed at the deadline while others are served; ssl_client_auth = "required" refuses
//! a client without a certificate and serves one with; SASL_SSL is TLS, then SASL; changed
//! keystore files are reloaded for new connections without a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;

use crate::certs::TestCerts;
use crate::harness::*;

fn settings<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A broker with a PLAINTEXT listener and an SSL one; `extra` is appended to its config.
fn ssl_broker(certs: &TestCerts, extra: &str) -> (TestBroker, u16) {
    let ssl_port = free_port();
    let broker = TestBroker::start_with_port(|port| {
        format!("{}{extra}", certs.broker_config(port, ssl_port))
    });
    (broker, ssl_port)
}

/// Metadata through `bootstrap` with these client settings: the advertised port, or the
/// client's error.
fn metadata_port(bootstrap: &str, extra: &[(&str, &str)]) -> Result<u16, String> {
    let consumer = consumer(bootstrap, extra);
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .map(|m| m.brokers()[0].port() as u16)
        .map_err(|e| e.to_string())
}

/// Reads until the broker closes the socket; panics if it is still open after `limit`.
fn wait_closed(mut socket: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the broker did not close the socket within {limit:?}: {e}"),
        }
        assert!(
            started.elapsed() < limit,
            "the broker kept the socket open past {limit:?}"
        );
    }
}

/// Waits (bounded) for the broker's log to say `line`: it is written as the socket closes,
/// so a moment after the client sees the close.
fn assert_logged(broker: &TestBroker, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker.logs().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in:\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn librdkafka_produces_and_consumes_over_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let (broker, ssl_port) = ssl_broker(&certs, "");
    let bootstrap = format!("127.0.0.1:{ssl_port}");
    let client = certs.client_settings();
    let client = settings(&client);
    // The SSL listener advertises itself to clients that came in on it.
    assert_eq!(metadata_port(&bootstrap, &client), Ok(ssl_port));
    assert_eq!(metadata_port(&broker.bootstrap(), &[]), Ok(broker.port()));

    let (producer, deliveries) = producer(&bootstrap, &client);
    for i in 0..200u32 {
        let payload = format!("secret-{i}");
        send(
            &producer,
            BaseRecord::to("over-tls")
                .key(b"k".as_slice())
                .payload(payload.as_bytes()),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(std::sync::atomic::Ordering::SeqCst), 200);
    let records = consume(
        &consumer(&bootstrap, &client),
        "over-tls",
        1,
        200,
        Duration::from_secs(30),
    );
    let payloads: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(
        payloads,
        (0..200).map(|i| format!("secret-{i}")).collect::<Vec<_>>()
    );
}

#[test]
fn a_plaintext_client_on_the_ssl_port_is_closed_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let (broker, ssl_port) = ssl_broker(&certs, "");
    // An ApiVersions v0 request in the clear, where a TLS ClientHello belongs.
    let mut socket = TcpStream::connect(("127.0.0.1", ssl_port)).unwrap();
    socket
        .write_all(&[
            0, 0, 0, 14, 0, 18, 0, 0, 0, 0, 0, 1, 0, 4, b't', b'e', b's', b't',
        ])
        .unwrap();
    wait_closed(socket, Duration::from_secs(10));
    let client = certs.client_settings();
    assert_eq!(
        metadata_port(&format!("127.0.0.1:{ssl_port}"), &settings(&client)),
        Ok(ssl_port)
    );
    assert_logged(&broker, "TLS handshake failed");
}

#[test]
fn a_stalled_handshake_is_closed_at_the_deadline_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    // The deadline is the lesser of 10 s and connections_max_idle_ms.
    let (broker, ssl_port) = ssl_broker(&certs, "connections_max_idle_ms = 1500\n");
    let stalled = TcpStream::connect(("127.0.0.1", ssl_port)).unwrap();
    let opened = Instant::now();
    let client = certs.client_settings();
    assert_eq!(
        metadata_port(&format!("127.0.0.1:{ssl_port}"), &settings(&client)),
        Ok(ssl_port)
    );
    wait_closed(stalled, Duration::from_secs(10));
    assert!(
        opened.elapsed() >= Duration::from_millis(1400),
        "closed before the deadline"
    );
    assert_logged(&broker, "did not finish its TLS handshake in time");
}

#[test]
fn required_client_auth_refuses_a_client_without_a_certificate_and_serves_one_with() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let extra = format!(
        "ssl_client_auth = \"required\"\nssl_truststore_location = \"{}\"\n",
        certs.ca.display()
    );
    let (_broker, ssl_port) = ssl_broker(&certs, &extra);
    let bootstrap = format!("127.0.0.1:{ssl_port}");
    let anonymous = certs.client_settings();
    assert!(metadata_port(&bootstrap, &settings(&anonymous)).is_err());

    let mut with_cert = certs.client_settings();
    with_cert.push((
        "ssl.certificate.location",
        certs.client_cert.display().to_string(),
    ));
    with_cert.push(("ssl.key.location", certs.client_key.display().to_string()));
    assert_eq!(
        metadata_port(&bootstrap, &settings(&with_cert)),
        Ok(ssl_port)
    );
    let (producer, deliveries) = producer(&bootstrap, &settings(&with_cert));
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to("mtls").payload(b"v".as_slice()),
    );
    assert_eq!(deliveries.ok.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn requested_client_auth_serves_clients_with_and_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let extra = format!(
        "ssl_client_auth = \"requested\"\nssl_truststore_location = \"{}\"\n",
        certs.ca.display()
    );
    let (_broker, ssl_port) = ssl_broker(&certs, &extra);
    let bootstrap = format!("127.0.0.1:{ssl_port}");
    let anonymous = certs.client_settings();
    assert_eq!(
        metadata_port(&bootstrap, &settings(&anonymous)),
        Ok(ssl_port)
    );
    let mut with_cert = certs.client_settings();
    with_cert.push((
        "ssl.certificate.location",
        certs.client_cert.display().to_string(),
    ));
    with_cert.push(("ssl.key.location", certs.client_key.display().to_string()));
    assert_eq!(
        metadata_port(&bootstrap, &settings(&with_cert)),
        Ok(ssl_port)
    );
}

#[test]
fn librdkafka_authenticates_with_sasl_plain_over_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path());
    let sasl_port = free_port();
    let _broker = TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}\"\n\
             ssl_keystore_location = \"{}\"\n\
             connection_failed_authentication_delay_ms = 10\n\
             [sasl_plain_users]\n\
             alice = \"alice-secret\"\n",
            certs.broker_keystore.display()
        )
    });
    let bootstrap = format!("127.0.0.1:{sasl_port}");
    let login = |password: &str| {
        let mut s = certs.client_settings();
        s[0] = ("security.protocol", "sasl_ssl".to_string());
        s.push(("sasl.mechanisms", "PLAIN".to_string()));
        s.push(("sasl.username", "alice".to_string()));
        s.push(("sasl.password", password.to_string()));
        s
    };
    let good = login("alice-secret");
    assert_eq!(metadata_port(&bootstrap, &settings(&good)), Ok(sasl_port));
    let (producer, deliveries) = producer(&bootstrap, &settings(&good));
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to("sasl-ssl").payload(b"v".as_slice()),
    );
    assert_eq!(deliveries.ok.load(std::sync::atomic::Ordering::SeqCst), 1);
    let bad = login("wrong");
    assert!(metadata_port(&bootstrap, &settings(&bad)).is_err());
}

/// A TLS handshake with the broker at `port` by a rustls client that trusts only the CA in
/// `ca`: Ok when the broker's certificate chains to it.
fn handshake_trusting(port: u16, ca: &std::path::Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Polls (bounded) until a client trusting `ca` completes its handshake.
fn wait_served_with(port: u16, ca: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(err) = handshake_trusting(port, ca) {
        assert!(
            Instant::now() < deadline,
            "the broker still shows another certificate: {err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn changed_certificate_files_are_reloaded_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    let a = TestCerts::generate(&dir.path().join("a"));
    let b = TestCerts::generate(&dir.path().join("b"));
    let keystore = dir.path().join("keystore.pem");
    std::fs::copy(&a.broker_keystore, &keystore).unwrap();
    let ssl_port = free_port();
    let broker = TestBroker::start_with_port(|port| {
        format!(
            "listeners = \"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}\"\n\
             ssl_keystore_location = \"{}\"\n\
             ssl_reload_check_interval_ms = 50\n",
            keystore.display()
        )
    });
    handshake_trusting(ssl_port, &a.ca).expect("served with certificate A");
    assert!(handshake_trusting(ssl_port, &b.ca).is_err());
    // A connection made with A keeps working through the reloads.
    let a_settings = a.client_settings();
    let ssl = settings(&a_settings);
    let (producer, deliveries) = producer(&format!("127.0.0.1:{ssl_port}"), &ssl);
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to("reload").payload(b"1".as_slice()),
    );

    // B written in place: new connections get B, and A is no longer shown.
    std::fs::write(&keystore, std::fs::read(&b.broker_keystore).unwrap()).unwrap();
    wait_served_with(ssl_port, &b.ca);
    assert!(handshake_trusting(ssl_port, &a.ca).is_err());
    assert_logged(&broker, "Reloaded the TLS certificates and keys");

    // A file that is not a keystore: B stays, with one warning for the change.
    std::fs::write(&keystore, "not a certificate").unwrap();
    assert_logged(&broker, "keeping the one in use");
    handshake_trusting(ssl_port, &b.ca).expect("still served with B");

    // A again, swapped in by a rename as certificate tools do.
    let next = dir.path().join("keystore.pem.new");
    std::fs::copy(&a.broker_keystore, &next).unwrap();
    std::fs::rename(&next, &keystore).unwrap();
    wait_served_with(ssl_port, &a.ca);
    send_and_wait(
        &producer,
        &deliveries,
        BaseRecord::to("reload").payload(b"2".as_slice()),
    );
    let logs = broker.logs();
    assert_eq!(
        logs.matches("Reloaded the TLS certificates and keys")
            .count(),
        2
    );
    assert_eq!(
        logs.matches("keeping the one in use").count(),
        1,
        "one warning per change"
    );
}
