//! What incremental fetch sessions (KIP-227) save: starts the broker binary twice with a
//! topic of `--partitions` partitions, once with sessions off
//! (max_incremental_fetch_session_cache_slots = 0: every fetch is a full one) and once on,
//! and runs one consumer assigned every partition for `--seconds` while a producer writes
//! to `--active` of them. The consumer speaks raw Fetch v12 as Kafka's Java consumer does
//! (librdkafka never asks for a session): a full fetch first, then, when the broker answered
//! a session id, incremental fetches naming only the partitions whose offset moved.
//! Prints, per run, the broker's CPU (/proc/<pid>/stat) as % of one core, and the
//! consumer's Fetch request and response bytes per second.
//!
//!   cargo build --release --bins --examples
//!   target/release/examples/fetch-sessions-cost --broker target/release/broker

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use broker::storage::batch::BatchHeader;
use broker::storage::batch_builder::build_batch;

const TOPIC: &str = "many";

/// Broker CPU and Fetch traffic of one consumer of many mostly idle partitions.
#[derive(clap::Parser)]
#[command(name = "fetch-sessions-cost")]
struct Args {
    /// The broker binary.
    #[arg(long, default_value = "target/release/broker")]
    broker: String,
    /// Partitions the consumer is assigned.
    #[arg(long, default_value_t = 1000)]
    partitions: i32,
    /// Partitions that receive records.
    #[arg(long, default_value_t = 10)]
    active: i32,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Pause of the producer between two rounds of one record per active partition.
    #[arg(long, default_value_t = 10)]
    produce_interval_ms: u64,
}

struct Figures {
    cpu_percent: f64,
    request_bytes_per_second: f64,
    response_bytes_per_second: f64,
    fetches_per_second: f64,
    records: u64,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    for (label, slots) in [("sessions off", 0), ("sessions on", 1000)] {
        let f = run(&args, slots);
        println!(
            "{label}: broker CPU {:.1}% of a core, {:.2} ms per fetch; Fetch requests {:.0} B/s, \
             responses {:.0} B/s, {:.0} fetches/s; {} records consumed",
            f.cpu_percent,
            10.0 * f.cpu_percent / f.fetches_per_second,
            f.request_bytes_per_second,
            f.response_bytes_per_second,
            f.fetches_per_second,
            f.records
        );
    }
}

struct Wire {
    stream: TcpStream,
    correlation: i32,
    sent: u64,
    received: u64,
}

impl Wire {
    fn connect(port: u16) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Wire {
            stream,
            correlation: 0,
            sent: 0,
            received: 0,
        }
    }

    fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("fetch-sessions-cost")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header encodes");
        req.encode(&mut body, version).expect("request encodes");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("request sent");
        self.sent += frame.len() as u64;
        let mut length = [0u8; 4];
        self.stream
            .read_exact(&mut length)
            .expect("response length");
        let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut response).expect("response");
        self.received += 4 + response.len() as u64;
        let mut buf = Bytes::from(response);
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        ResponseHeader::decode(&mut buf, header_version).expect("header decodes");
        R::Response::decode(&mut buf, version).expect("response decodes")
    }
}

fn run(args: &Args, slots: usize) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\
             max_incremental_fetch_session_cache_slots = {slots}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config written");
    let mut child = Command::new(&args.broker)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the broker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker not listening in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut admin = Wire::connect(port);
    let created = admin.call(
        5,
        &CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(args.partitions)
                .with_replication_factor(1)]),
    );
    assert_eq!(created.topics[0].error_code, 0, "topic created");

    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        let (active, interval) = (args.active, args.produce_interval_ms);
        std::thread::spawn(move || produce(port, active, interval, &stop))
    };
    let mut consumer = Consumer::new(port, args.partitions);
    // Warm up (the first full fetch, the topic's files) before measuring.
    let warm = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm {
        consumer.fetch();
    }
    let (sent, received, fetches) = (consumer.wire.sent, consumer.wire.received, consumer.fetches);
    let start_cpu = cpu_seconds(&child);
    let started = Instant::now();
    let window = Duration::from_secs(args.seconds);
    while started.elapsed() < window {
        consumer.fetch();
    }
    let cpu = cpu_seconds(&child) - start_cpu;
    let wall = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    producer.join().expect("producer thread");
    let _ = child.kill();
    let _ = child.wait();
    Figures {
        cpu_percent: 100.0 * cpu / wall,
        request_bytes_per_second: (consumer.wire.sent - sent) as f64 / wall,
        response_bytes_per_second: (consumer.wire.received - received) as f64 / wall,
        fetches_per_second: (consumer.fetches - fetches) as f64 / wall,
        records: consumer.records,
    }
}

/// One record per active partition, then a pause, until stopped.
fn produce(port: u16, active: i32, interval_ms: u64, stop: &AtomicBool) {
    let mut wire = Wire::connect(port);
    let batch = Bytes::from(build_batch(&[(Some(b"k"), Some(b"value"))], 0));
    while !stop.load(Ordering::SeqCst) {
        let partitions = (0..active)
            .map(|p| {
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch.clone()))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(partitions)]);
        wire.call(9, &req);
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
}

/// A consumer as Kafka's Java FetchSessionHandler is: full fetches until the broker answers
/// a session id, then incremental ones naming only the partitions whose offset moved.
struct Consumer {
    wire: Wire,
    offsets: HashMap<i32, i64>,
    moved: Vec<i32>,
    session: (i32, i32),
    fetches: u64,
    records: u64,
}

impl Consumer {
    fn new(port: u16, partitions: i32) -> Consumer {
        Consumer {
            wire: Wire::connect(port),
            offsets: (0..partitions).map(|p| (p, 0)).collect(),
            moved: Vec::new(),
            session: (0, 0),
            fetches: 0,
            records: 0,
        }
    }

    fn fetch(&mut self) {
        let (session_id, epoch) = self.session;
        let named: Vec<i32> = if session_id == 0 {
            let mut all: Vec<i32> = self.offsets.keys().copied().collect();
            all.sort_unstable();
            all
        } else {
            std::mem::take(&mut self.moved)
        };
        let partitions = named
            .iter()
            .map(|p| {
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(self.offsets[p])
                    .with_partition_max_bytes(1024 * 1024)
            })
            .collect::<Vec<_>>();
        let mut req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(50 * 1024 * 1024)
            .with_session_id(session_id)
            .with_session_epoch(epoch);
        if !partitions.is_empty() {
            req.topics = vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(partitions)];
        }
        let resp = self.wire.call(12, &req);
        self.fetches += 1;
        if resp.error_code != 0 {
            // The session is gone or out of step: start over with a full fetch.
            self.session = (0, 0);
            return;
        }
        self.session = if resp.session_id == 0 {
            (0, 0)
        } else {
            (resp.session_id, epoch.max(0) + 1)
        };
        for p in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let (next, count) = last_offset_and_count(records);
            self.records += count;
            self.offsets.insert(p.partition_index, next);
            self.moved.push(p.partition_index);
        }
    }
}

/// The offset after the last batch of `records` and how many records they hold.
fn last_offset_and_count(records: &Bytes) -> (i64, u64) {
    let mut at = 0;
    let (mut next, mut count) = (0, 0);
    while let Ok(header) = BatchHeader::parse(&records[at..]) {
        next = header.next_offset();
        count += header.records_count.max(0) as u64;
        at += header.total_size();
        if at >= records.len() {
            break;
        }
    }
    (next, count)
}

/// utime + stime of the process, in seconds (clock ticks of 100 Hz on Linux).
fn cpu_seconds(child: &Child) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).expect("stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
