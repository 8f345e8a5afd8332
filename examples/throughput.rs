//! A quick throughput check with librdkafka against a running broker: produce `--count`
//! records of `--size` bytes over `--partitions` partitions with `--acks`, then consume
//! them all from the beginning; prints msg/s and MB/s for both, counted from what was
//! acknowledged and what was read back (not from what was sent). Not the full benchmark
//! (issue: broker-bench), just figures to keep honest between changes.
//!
//!   target/release/broker --config config.toml &
//!   target/release/examples/throughput --bootstrap 127.0.0.1:9092 --count 1000000
//!
//! `--ssl-ca ca.pem` connects to an SSL listener instead (security.protocol=ssl), trusting
//! that CA, to compare TLS with plaintext. Each phase also prints the CPU seconds this
//! client used and, with `--broker-pid`, those the broker used (from /proc), since client
//! and broker share the cores on one machine (scripts/bench-tls.sh runs the comparison).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

struct Acked(Arc<AtomicU64>, Arc<AtomicU64>);
impl ClientContext for Acked {}
impl ProducerContext for Acked {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        } else {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produce and consume rates with librdkafka against a running broker.
#[derive(clap::Parser)]
#[command(name = "throughput")]
struct Args {
    /// The broker's address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Records to produce, then consume.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partitions of the topic created for the run.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// The producer's acks setting (0, 1 or all).
    #[arg(long, default_value = "1")]
    acks: String,
    /// Connect over TLS (an SSL listener), trusting the CA certificates in this PEM file.
    #[arg(long)]
    ssl_ca: Option<String>,
    /// The broker's process id, to print the CPU it used in each phase.
    #[arg(long)]
    broker_pid: Option<u32>,
}

/// CPU seconds (user + system) used so far by this process, all its threads.
fn own_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system) used so far by process `pid`, from /proc/PID/stat.
fn process_cpu(pid: u32) -> f64 {
    process_cpu_at(&format!("/proc/{pid}/stat"))
}

/// CPU seconds (user + system) in the stat file at `path` (a process's or a thread's).
fn process_cpu_at(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 11 and 12 after the name and state.
    // SAFETY: sysconf reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// CPU seconds used so far by each thread of this process, by thread id, with its name.
fn thread_cpu() -> std::collections::HashMap<String, (String, f64)> {
    let mut threads = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let Ok(tid_number) = tid.parse::<u32>() else {
            continue;
        };
        let cpu = process_cpu_at(&format!("/proc/self/task/{tid_number}/stat"));
        threads.insert(tid, (name.trim().to_string(), cpu));
    }
    threads
}

/// CPU seconds of this client, of its busiest thread (by id) and of the broker (when its
/// pid is known) at one moment.
struct CpuMark(
    f64,
    Option<f64>,
    std::collections::HashMap<String, (String, f64)>,
);

impl CpuMark {
    fn now(broker: Option<u32>) -> Self {
        CpuMark(own_cpu(), broker.map(process_cpu), thread_cpu())
    }

    /// The thread of this client that used the most CPU since `self`: name and seconds.
    fn busiest_thread(&self) -> (String, f64) {
        let now = thread_cpu();
        now.iter()
            .map(|(tid, (name, cpu))| {
                let before = self.2.get(tid).map_or(0.0, |(_, c)| *c);
                (name.clone(), cpu - before)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default()
    }

    /// "client X s (busiest thread NAME T s), broker Y s" since `self`.
    fn since(&self, broker: Option<u32>) -> String {
        let (thread, thread_secs) = self.busiest_thread();
        let now = CpuMark::now(broker);
        let client = format!(
            "CPU client {:.2} s (busiest thread {thread} {thread_secs:.2} s)",
            now.0 - self.0
        );
        match (self.1, now.1) {
            (Some(before), Some(after)) => format!("{client}, broker {:.2} s", after - before),
            _ => client,
        }
    }
}

/// A client config for the broker: its address, and TLS when `ssl_ca` is given.
fn client(bootstrap: &str, ssl_ca: Option<&str>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    if let Some(ca) = ssl_ca {
        config
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", ca);
    }
    config
}

fn main() {
    let Args {
        bootstrap,
        count,
        size,
        partitions,
        acks,
        ssl_ca,
        broker_pid,
    } = <Args as clap::Parser>::parse();
    let ssl_ca = ssl_ca.as_deref();
    let topic = format!("throughput-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = client(&bootstrap, ssl_ca).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(admin.create_topics(
        &[NewTopic::new(
            &topic,
            partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ))
    .unwrap();
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let producer: BaseProducer<Acked> = client(&bootstrap, ssl_ca)
        .set("acks", &acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("enable.idempotence", "false")
        .create_with_context(Acked(ok.clone(), failed.clone()))
        .unwrap();
    let payload = vec![b'x'; size];
    let cpu = CpuMark::now(broker_pid);
    let started = Instant::now();
    for i in 0..count {
        let mut record = BaseRecord::<[u8], [u8]>::to(&topic)
            .partition((i % partitions as u64) as i32)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let acked = ok.load(Ordering::Relaxed);
    println!(
        "produce acks={acks}{}: {acked} acknowledged, {} failed, {:.0} msg/s, {:.1} MB/s, {}",
        if ssl_ca.is_some() { " over TLS" } else { "" },
        failed.load(Ordering::Relaxed),
        acked as f64 / secs,
        (acked as f64 * size as f64) / secs / 1e6,
        cpu.since(broker_pid)
    );

    let consumer: BaseConsumer = client(&bootstrap, ssl_ca)
        .set("group.id", "throughput")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let cpu = CpuMark::now(broker_pid);
    let started = Instant::now();
    let mut read = 0u64;
    while read < acked && started.elapsed() < Duration::from_secs(300) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "consume: {read} read, {:.0} msg/s, {:.1} MB/s, {}",
        read as f64 / secs,
        (read as f64 * size as f64) / secs / 1e6,
        cpu.since(broker_pid)
    );
}
