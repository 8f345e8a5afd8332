//! transactional.id.expiration.ms on a real broker process over raw frames: 10,000
//! transactional ids (InitProducerId each) leave 10,000 files under `__transactions/`;
//! restarted with a short expiration, the broker loads them and then removes every one,
//! memory (ListTransactions) and files back to the baseline. Figures are printed
//! (`-- --nocapture`): counts, bytes, files, RSS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::harness::TestBroker;
use super::soak_hostile::frame;

const IDS: usize = 10_000;
const THREADS: usize = 4;

fn round_trip(socket: &mut TcpStream, request: &[u8]) -> Bytes {
    socket.write_all(request).expect("request written");
    let mut size = [0u8; 4];
    socket.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    socket.read_exact(&mut body).expect("response body");
    Bytes::from(body)
}

fn connect(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket
}

fn init_producer_id(socket: &mut TcpStream, id: &str) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut body = round_trip(socket, &frame(ApiKey::InitProducerId, 4, 1, &req));
    ResponseHeader::decode(&mut body, ApiKey::InitProducerId.response_header_version(4)).unwrap();
    InitProducerIdResponse::decode(&mut body, 4).unwrap()
}

/// Transactional ids the coordinator holds in memory (ListTransactions lists them all).
fn listed(port: u16) -> usize {
    let mut socket = connect(port);
    let req = ListTransactionsRequest::default();
    let mut body = round_trip(&mut socket, &frame(ApiKey::ListTransactions, 0, 2, &req));
    ResponseHeader::decode(
        &mut body,
        ApiKey::ListTransactions.response_header_version(0),
    )
    .unwrap();
    let r = ListTransactionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, 0);
    r.transaction_states.len()
}

/// (files, bytes) under `__transactions`.
fn store(data: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(data.join("__transactions")) else {
        return (0, 0);
    };
    entries.flatten().fold((0, 0), |(n, bytes), e| {
        (n + 1, bytes + e.metadata().map_or(0, |m| m.len()))
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn ten_thousand_transactional_ids_expire_back_to_the_baseline() {
    let mut broker = TestBroker::start("");
    let port = broker.port();
    let data = broker.data_dir();
    let baseline = (listed(port), store(&data), rss_kib(broker.pid()));
    assert_eq!((baseline.0, baseline.1 .0), (0, 0));

    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let mut socket = connect(port);
                for i in (t..IDS).step_by(THREADS) {
                    let r = init_producer_id(&mut socket, &format!("expiring-{i}"));
                    assert_eq!(r.error_code, 0, "InitProducerId expiring-{i}");
                }
            });
        }
    });
    let created_in = started.elapsed();
    let full = (listed(port), store(&data), rss_kib(broker.pid()));
    assert_eq!(full.0, IDS);
    assert_eq!(full.1 .0, IDS);

    // The same broker, restarted with a short expiration: it loads the 10,000 ids, then
    // its cleanup timer removes them.
    assert!(broker.sigterm().success());
    let config = data.parent().unwrap().join("config.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(
        "transactional_id_expiration_ms = 1\ntransaction_remove_expired_transaction_cleanup_interval_ms = 500\n",
    );
    std::fs::write(&config, toml).unwrap();
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (ids, (files, _)) = (listed(port), store(&data));
        if ids == 0 && files == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 120 s: {ids} ids in memory, {files} files"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = (listed(port), store(&data), rss_kib(broker.pid()));
    let restarted_peak = broker.peak_rss_kib();
    assert!(
        broker.logs().contains("transactional_ids=10000"),
        "the restart loaded every id"
    );
    println!(
        "{IDS} InitProducerIds in {created_in:?}. ids in memory / (files, bytes) / RSS KiB: \
         baseline {baseline:?}; with the ids {full:?}; after the restart and expiry {after:?} \
         (peak RSS of the restarted broker {restarted_peak} KiB; the allocator keeps freed pages)"
    );
    assert_eq!((after.0, after.1), (baseline.0, baseline.1));
}
