//! Soak: a real broker with `SOAK_CONNECTIONS` (default 2,000) connections at once, most of
//! them hostile (idle, slowloris partial frames, garbage frames, huge length prefixes),
//! beside normal clients that produce and fetch over raw Kafka frames and time every
//! request. Normal requests keep being answered with p99 under 100 ms, the broker stays
//! up, and its peak RSS (VmHWM) stays under `RSS_BOUND_KB` (256 MiB; measured: 51 MiB).
//!
//! CI runs it for `SOAK_SECS` = 15 s (the whole test stays well under 2 minutes); the long
//! run: `SOAK_SECS=600 cargo test --release --test it soak_hostile -- --nocapture`.
//! The test raises its own RLIMIT_NOFILE soft limit to the hard one (it holds every
//! client socket); the broker raises its own at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use broker::storage::batch_builder::build_batch;

use crate::harness::*;

/// Peak resident memory the broker may reach (debug build, 2,000 connections).
const RSS_BOUND_KB: u64 = 256 * 1024;
const P99_BOUND: Duration = Duration::from_millis(100);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raise_own_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

pub(crate) fn frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("soak")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut out = BytesMut::new();
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out.to_vec()
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn produce_frame(correlation_id: i32, partition: i32) -> Vec<u8> {
    let value = format!("soak-{correlation_id}");
    let batch = Bytes::from(build_batch(&[(Some(b"k"), Some(value.as_bytes()))], 1_000));
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name("soak"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    frame(ApiKey::Produce, 9, correlation_id, &req)
}

fn fetch_frame(correlation_id: i32, partition: i32, offset: i64) -> Vec<u8> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name("soak"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(256 * 1024)])]);
    frame(ApiKey::Fetch, 11, correlation_id, &req)
}

/// Sends one request and reads its whole response; the round trip.
fn round_trip(socket: &mut TcpStream, request: &[u8]) -> std::io::Result<Duration> {
    let started = Instant::now();
    socket.write_all(request)?;
    let mut size = [0u8; 4];
    socket.read_exact(&mut size)?;
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    socket.read_exact(&mut body)?;
    Ok(started.elapsed())
}

fn connect(port: u16) -> Option<TcpStream> {
    let socket = TcpStream::connect(("127.0.0.1", port)).ok()?;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    socket
        .set_write_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    Some(socket)
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn soak_hostile_clients_beside_normal_ones() {
    let secs = env_or("SOAK_SECS", 15);
    let connections = env_or("SOAK_CONNECTIONS", 2_000) as usize;
    let own_limit = raise_own_nofile();
    assert!(
        own_limit as usize > connections + 200,
        "this test needs an open-file hard limit above {} (have {own_limit})",
        connections + 200
    );
    let mut broker = TestBroker::start("connections_max_idle_ms = 600000");
    let port = broker.port();
    create_topic(&broker.bootstrap(), "soak", 4);
    let pid = broker.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let normal_clients = 6usize;
    let churners = 40usize; // garbage and huge-prefix clients, reconnecting in a loop
    let slowloris = connections / 8;
    let idle = connections.saturating_sub(normal_clients + churners + slowloris);

    // Idle: connected, silent.
    let mut held: Vec<TcpStream> = (0..idle).filter_map(|_| connect(port)).collect();
    assert_eq!(held.len(), idle, "every idle connection was accepted");
    // Slowloris: a length prefix and a few bytes of a request, then one byte a second.
    let mut slow: Vec<TcpStream> = (0..slowloris).filter_map(|_| connect(port)).collect();
    for s in &mut slow {
        let _ = s.write_all(&produce_frame(1, 0)[..6]);
    }
    let slow_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for s in &mut slow {
                    let _ = s.write_all(b"x");
                }
                n += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            (slow.len(), n)
        })
    };
    // Churners: garbage frames and huge length prefixes, each answered by a close.
    let closed_by_broker = Arc::new(AtomicU64::new(0));
    let churn: Vec<_> = (0..churners)
        .map(|i| {
            let stop = stop.clone();
            let closed = closed_by_broker.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
                while !stop.load(Ordering::SeqCst) {
                    let Some(mut s) = connect(port) else { continue };
                    let bytes: Vec<u8> = match i % 4 {
                        // A length prefix far over max_request_bytes.
                        0 => i32::MAX.to_be_bytes().to_vec(),
                        // A negative length.
                        1 => (-7i32).to_be_bytes().to_vec(),
                        // Just under max_request_bytes, then only a few bytes of it.
                        2 => {
                            let mut b = (100 * 1024 * 1024 - 16i32).to_be_bytes().to_vec();
                            b.extend_from_slice(&[0u8; 64]);
                            b
                        }
                        // A whole frame of random bytes.
                        _ => {
                            let mut b = 64i32.to_be_bytes().to_vec();
                            for _ in 0..64 {
                                seed ^= seed << 13;
                                seed ^= seed >> 7;
                                seed ^= seed << 17;
                                b.push(seed as u8);
                            }
                            b
                        }
                    };
                    let _ = s.write_all(&bytes);
                    if i % 4 == 2 {
                        // Holds its partial 100 MB frame a while, then gives up.
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                    let mut buf = [0u8; 64];
                    if let Ok(0) | Err(_) = s.read(&mut buf) {
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();

    // Normal clients: producers and fetchers timing every request.
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let normal: Vec<_> = (0..normal_clients)
        .map(|i| {
            let latencies = latencies.clone();
            let failures = failures.clone();
            std::thread::spawn(move || {
                let mut socket = connect(port).expect("normal client connects");
                let partition = (i % 4) as i32;
                let mut correlation = 0i32;
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    correlation += 1;
                    let request = if i % 2 == 0 {
                        produce_frame(correlation, partition)
                    } else {
                        fetch_frame(correlation, partition, 0)
                    };
                    match round_trip(&mut socket, &request) {
                        Ok(took) => mine.push(took),
                        Err(_) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            socket = connect(port).expect("normal client reconnects");
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in normal {
        t.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for t in churn {
        t.join().unwrap();
    }
    let (slow_count, slow_rounds) = slow_thread.join().unwrap();

    let alive = TcpStream::connect(("127.0.0.1", port)).is_ok();
    let hwm = vm_hwm_kb(pid).expect("broker still running: /proc/<pid>/status");
    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    assert!(!all.is_empty(), "normal clients were served");
    let p = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    println!(
        "soak {secs} s: {} connections ({idle} idle, {slow_count} slowloris x {slow_rounds} bytes, {churners} churning: {} closed by the broker, {normal_clients} normal): {} normal requests, p50 {:?}, p99 {:?}, max {:?}, {} failures; broker peak RSS {} MiB",
        idle + slow_count + churners + normal_clients,
        closed_by_broker.load(Ordering::SeqCst),
        all.len(),
        p(0.50),
        p(0.99),
        all[all.len() - 1],
        failures.load(Ordering::SeqCst),
        hwm / 1024,
    );
    assert!(alive, "the broker stayed up:\n{}", broker.logs());
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "normal requests all answered"
    );
    assert!(
        p(0.99) < P99_BOUND,
        "p99 of normal requests {:?} is over {P99_BOUND:?}",
        p(0.99)
    );
    assert!(
        hwm < RSS_BOUND_KB,
        "broker peak RSS {} MiB is over {} MiB",
        hwm / 1024,
        RSS_BOUND_KB / 1024
    );
    drop(held.drain(..));
    assert_eq!(broker.sigterm().code(), Some(0));
}
