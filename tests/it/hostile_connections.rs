//! Connection floods against a real broker process with a low open-file limit: excess
//! connections are closed at once, running out of descriptors makes the accept loop back
//! off with one warn line per episode, and normal clients are served once the flood goes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A Metadata v1 request for every topic, framed.
fn metadata_request(correlation_id: i32) -> Vec<u8> {
    let mut body = 3i16.to_be_bytes().to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    body.extend_from_slice(&(-1i32).to_be_bytes()); // null topics: all
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    Closed,
}

/// Connects from `local_ip` (any 127.x.y.z works on Linux), sends a Metadata request and
/// says whether it was answered or the connection closed; the socket is kept when served.
fn connect_from(local_ip: [u8; 4], port: u16) -> (Outcome, Option<std::net::TcpStream>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((local_ip, 0)))
            .expect("bind a loopback address");
        socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("connect")
            .into_std()
            .unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    ask(stream)
}

fn ask(mut stream: TcpStream) -> (Outcome, Option<TcpStream>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if stream.write_all(&metadata_request(1)).is_err() {
        return (Outcome::Closed, None);
    }
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            stream.read_exact(&mut body).expect("whole response");
            (Outcome::Served, Some(stream))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            panic!("neither answered nor closed within 10 s")
        }
        Err(_) => (Outcome::Closed, None),
    }
}

/// Polls until a fresh connection is answered (bounded).
fn served_within(port: u16, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            if ask(stream).0 == Outcome::Served {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn warn_lines(logs: &str, containing: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains("WARN") && l.contains(containing))
        .count()
}

#[test]
fn connections_over_the_limits_are_closed_at_once() {
    let mut broker = TestBroker::start_with_nofile(
        "max_connections = 10\nmax_connections_per_ip = 5",
        Some(256),
    );
    let port = broker.port();
    let mut kept = Vec::new();
    // One at a time, so the broker sees them in this order.
    for (ip, expected) in [
        ([127, 0, 0, 1], [Outcome::Served; 5].as_slice()),
        ([127, 0, 0, 1], [Outcome::Closed; 3].as_slice()),
        ([127, 0, 0, 2], [Outcome::Served; 5].as_slice()),
        ([127, 0, 0, 2], [Outcome::Closed; 2].as_slice()),
        ([127, 0, 0, 3], [Outcome::Closed; 2].as_slice()),
    ] {
        for (i, want) in expected.iter().enumerate() {
            let (got, stream) = connect_from(ip, port);
            assert_eq!(
                &got,
                want,
                "connection {i} of this group from {ip:?}:\n{}",
                broker.logs()
            );
            kept.extend(stream);
        }
    }
    // The idle clients go; a new one is admitted once the broker has seen them go.
    drop(kept);
    assert!(
        served_within(port, Duration::from_secs(10)),
        "a client is served once the idle connections closed:\n{}",
        broker.logs()
    );
    let logs = broker.logs();
    let warns = warn_lines(&logs, "connection limit");
    assert!(
        (1..=3).contains(&warns),
        "one warn line per episode of refusals, got {warns}:\n{logs}"
    );
    assert!(logs.contains("Raised the open file limit") || logs.contains("Open file limit"));
    assert_eq!(broker.sigterm().code(), Some(0));
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    // 64 descriptors, and a connection cap above what they allow: accept hits EMFILE.
    let mut broker = TestBroker::start_with_nofile("max_connections = 100000", Some(64));
    let port = broker.port();
    let mut flood = Vec::new();
    for _ in 0..120 {
        flood.push(TcpStream::connect(("127.0.0.1", port)).expect("the kernel completes it"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker.logs().contains("accept") {
        assert!(
            Instant::now() < deadline,
            "accept never failed with 64 descriptors:\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The episode lasts a second (the stimulus, not a wait for an event).
    std::thread::sleep(Duration::from_secs(1));
    drop(flood);
    assert!(
        served_within(port, Duration::from_secs(15)),
        "a client is served once the flood is gone:\n{}",
        broker.logs()
    );
    let logs = broker.logs();
    let warns = warn_lines(&logs, "accept");
    assert!(
        warns <= 2,
        "accept failures are logged once per episode, got {warns} warn lines:\n{logs}"
    );
    assert!(logs.contains("Accepting connections again"), "{logs}");
    assert_eq!(broker.sigterm().code(), Some(0));
}
