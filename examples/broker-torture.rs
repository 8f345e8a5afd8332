//! broker-torture: a crash loop against a real broker process.
//!
//! Each cycle starts the broker, runs several acks=all producers (librdkafka; every other
//! one with enable.idempotence=true) for a random while, kills the broker with SIGKILL at
//! a random moment, restarts it, and reads the whole topic back: every acknowledged record
//! must be at the offset it was acknowledged at, offsets contiguous from 0. It prints per
//! cycle the records acknowledged, lost (must be 0), duplicated (retries of requests whose
//! answer the kill cut off; must be 0 for the idempotent producers) and the time until the
//! restarted broker served Metadata again; it exits 1 on any loss or idempotent duplicate.
//!
//! cargo build --release --bins --examples
//! target/release/examples/broker-torture --cycles 100

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const TOPIC: &str = "torture";
const PARTITIONS: i32 = 3;

/// A crash loop against a real broker process: every acknowledged record must survive.
#[derive(clap::Parser)]
#[command(name = "broker-torture")]
struct Args {
    /// Kill-and-restart cycles to run.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
    /// Concurrent acks=all producers per cycle (every other one idempotent).
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// The broker binary; by default the one built beside this example.
    #[arg(long)]
    broker: Option<PathBuf>,
    /// Seed for the random run lengths and kill moments; by default the clock.
    #[arg(long)]
    seed: Option<u64>,
}

struct Run {
    cycles: usize,
    producers: usize,
    broker: PathBuf,
    seed: u64,
}

fn args() -> Run {
    let args = <Args as clap::Parser>::parse();
    Run {
        cycles: args.cycles,
        producers: args.producers,
        broker: args.broker.unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| Some(p.parent()?.parent()?.join("broker")))
                .unwrap_or_else(|| PathBuf::from("target/release/broker"))
        }),
        seed: args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        }),
    }
}

/// splitmix64, seeded from --seed so a run can be repeated.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Acknowledged records: payload -> (partition, offset).
type Acked = Arc<Mutex<HashMap<String, (i32, i64)>>>;

struct Acks(Acked);
impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if let Ok(mut acked) = self.0.lock() {
                acked.insert(payload, (m.partition(), m.offset()));
            }
        }
    }
}

struct Broker {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts the broker; returns how long until it answered Metadata.
    fn start(&mut self) -> Duration {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let started = Instant::now();
        self.child = Some(
            Command::new(&self.bin)
                .arg("--config")
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("broker starts"),
        );
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "broker not serving after 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{}", self.port))
            .create()
            .expect("client");
        client
            .fetch_metadata(None, Duration::from_secs(30))
            .expect("metadata after restart");
        started.elapsed()
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn main() {
    let args = args();
    assert!(
        args.broker.exists(),
        "no broker binary at {}: build it first",
        args.broker.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ndefault_partitions = {PARTITIONS}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut broker = Broker {
        bin: args.broker.clone(),
        config,
        log: dir.path().join("broker.log"),
        port,
        child: None,
    };
    let bootstrap = format!("127.0.0.1:{port}");
    println!(
        "broker-torture: {} cycles, {} producers, seed {}",
        args.cycles, args.producers, args.seed
    );
    let mut rng = Rng(args.seed);
    let acked: Acked = Arc::new(Mutex::new(HashMap::new()));
    let mut serve_times = Vec::new();
    let mut total_lost = 0usize;
    let mut duplicated = (0usize, 0usize);
    broker.start();
    for cycle in 1..=args.cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..args.producers)
            .map(|id| {
                let (stop, acked, bootstrap) = (stop.clone(), acked.clone(), bootstrap.clone());
                std::thread::spawn(move || {
                    let producer: BaseProducer<Acks> = ClientConfig::new()
                        .set("bootstrap.servers", &bootstrap)
                        .set(
                            "enable.idempotence",
                            if id % 2 == 0 { "true" } else { "false" },
                        )
                        .set("acks", "all")
                        .set("linger.ms", "2")
                        .set("message.timeout.ms", "4000")
                        .create_with_context(Acks(acked))
                        .expect("producer");
                    let mut seq = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let kind = if id % 2 == 0 { "i" } else { "p" };
                        let payload = format!("c{cycle}-{kind}{id}-{seq}");
                        let record = BaseRecord::<[u8], [u8]>::to(TOPIC)
                            .partition((seq % PARTITIONS as u64) as i32)
                            .payload(payload.as_bytes());
                        if producer.send(record).is_ok() {
                            seq += 1;
                        }
                        producer.poll(Duration::from_micros(200));
                    }
                    // Whatever is still in flight is acknowledged or fails within the timeout.
                    let _ = producer.flush(Duration::from_secs(10));
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200 + rng.below(1300)));
        broker.kill9();
        stop.store(true, Ordering::SeqCst);
        for p in producers {
            let _ = p.join();
        }
        let serve = broker.start();
        serve_times.push(serve);
        let (lost, dups, total) = verify(&bootstrap, &acked);
        total_lost += lost;
        duplicated = dups;
        println!(
            "cycle {cycle}: acknowledged {}, read back {total}, lost {lost}, duplicated {} (idempotent {}), serving again after {} ms",
            acked.lock().unwrap().len(),
            dups.0,
            dups.1,
            serve.as_millis()
        );
    }
    let acknowledged = acked.lock().unwrap().len();
    serve_times.sort();
    let max = serve_times.last().copied().unwrap_or_default();
    let p50 = serve_times
        .get(serve_times.len() / 2)
        .copied()
        .unwrap_or_default();
    println!(
        "summary: cycles {}, records acknowledged {acknowledged}, lost {total_lost}, duplicated {} (idempotent producers {}), serving again p50 {} ms max {} ms",
        args.cycles,
        duplicated.0,
        duplicated.1,
        p50.as_millis(),
        max.as_millis()
    );
    if total_lost > 0 {
        eprintln!(
            "acknowledged records were lost; broker log: {}",
            broker.log.display()
        );
        std::mem::forget(dir);
        std::process::exit(1);
    }
}

/// Reads the whole topic: (lost, (duplicated, of which by idempotent producers), read).
fn verify(bootstrap: &str, acked: &Acked) -> (usize, (usize, usize), usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "torture-verify")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
            .expect("watermarks");
        ends.push(high);
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let expected: i64 = ends.iter().sum();
    let mut at: HashMap<(i32, i64), String> = HashMap::new();
    let mut next = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    while (at.len() as i64) < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let p = m.partition() as usize;
            assert_eq!(m.offset(), next[p], "offsets contiguous in partition {p}");
            next[p] += 1;
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            at.insert((m.partition(), m.offset()), payload);
        }
    }
    let acked = acked.lock().unwrap();
    let lost = acked
        .iter()
        .filter(|(payload, place)| at.get(place) != Some(payload))
        .count();
    let mut seen: HashMap<&String, usize> = HashMap::new();
    for payload in at.values() {
        *seen.entry(payload).or_default() += 1;
    }
    let dups = seen.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    let idempotent_dups = seen
        .iter()
        .filter(|(payload, n)| **n > 1 && payload.contains("-i"))
        .map(|(_, n)| n - 1)
        .sum();
    (lost, (dups, idempotent_dups), at.len())
}
