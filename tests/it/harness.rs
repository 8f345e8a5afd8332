//! A real broker process for client tests: a free port on 127.0.0.1, a temporary data
//! directory, stderr captured to a file, and kill -9 / SIGTERM / restart. Every wait is
//! bounded and polls a real condition (the port accepting connections, the process exiting).

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct TestBroker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    starts: usize,
    /// RLIMIT_NOFILE (soft and hard) the broker process starts with; None: inherited.
    nofile: Option<u64>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Every broker's address, comma-separated: a client's `bootstrap.servers` for a cluster.
pub fn bootstrap_all(brokers: &[TestBroker]) -> String {
    let addresses: Vec<String> = brokers.iter().map(TestBroker::bootstrap).collect();
    addresses.join(",")
}

impl TestBroker {
    /// Starts a broker; `extra` is appended to its config.toml (TOML lines).
    pub fn start(extra: &str) -> TestBroker {
        Self::start_with_nofile(extra, None)
    }

    /// Starts a broker whose config lines are made knowing the port the harness waits on
    /// (for `listeners`, which must name it).
    pub fn start_with_port(extra: impl FnOnce(u16) -> String) -> TestBroker {
        let port = free_port();
        Self::start_on(port, &extra(port), None)
    }

    /// A broker configured as `start_with_port` would, not started yet: the test prepares
    /// its data directory offline (`broker user add`) and then calls `restart`.
    pub fn configured_with_port(extra: impl FnOnce(u16) -> String) -> TestBroker {
        let port = free_port();
        Self::configure(port, &extra(port), None)
    }

    /// Its config.toml (for the offline commands, `broker --config PATH user add`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Starts a broker whose open-file limit, soft and hard, is `nofile` (through
    /// util-linux `prlimit`), as on a host with a low limit.
    pub fn start_with_nofile(extra: &str, nofile: Option<u64>) -> TestBroker {
        Self::start_on(free_port(), extra, nofile)
    }

    fn start_on(port: u16, extra: &str, nofile: Option<u64>) -> TestBroker {
        let mut broker = Self::configure(port, extra, nofile);
        broker.spawn();
        broker
    }

    fn configure(port: u16, extra: &str, nofile: Option<u64>) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{extra}\n",
            data.display()
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("config written");
        TestBroker {
            dir,
            port,
            child: None,
            starts: 0,
            nofile,
        }
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.dir.path().join(format!("broker-{}.log", self.starts)))
            .expect("log file");
        let mut command = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_broker"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_broker")),
        };
        let child = command
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            // BROKER_TEST_LOG sets the brokers' log filter when a test needs more detail.
            .env(
                "RUST_LOG",
                std::env::var("BROKER_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("broker starts");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("broker exited at start with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "broker not accepting connections after {READY_TIMEOUT:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker process's id (to read its /proc/<pid>/status).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the broker wrote to stderr, over all its starts.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("broker-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "broker did not exit within 30 s of SIGTERM:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        self.spawn();
    }

    /// The running broker's peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Counts delivery reports, so a test knows exactly how many sends the broker acknowledged.
#[derive(Default)]
pub struct Deliveries {
    pub ok: AtomicUsize,
    pub failed: AtomicUsize,
    pub first_error: Mutex<Option<String>>,
    /// (partition, offset) of each acknowledged send, in delivery order.
    pub acked: Mutex<Vec<(i32, i64)>>,
}

/// The producer context that feeds `Deliveries`.
pub struct Counting(pub Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let this = &self.0;
        match result {
            Ok(m) => {
                this.ok.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut acked) = this.acked.lock() {
                    acked.push((m.partition(), m.offset()));
                }
            }
            Err((e, _)) => {
                this.failed.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut first) = this.first_error.lock() {
                    first.get_or_insert(e.to_string());
                }
            }
        }
    }
}

pub type CountingProducer = BaseProducer<Counting>;

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> (CountingProducer, Arc<Deliveries>) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let deliveries = Arc::new(Deliveries::default());
    let producer = config
        .create_with_context(Counting(deliveries.clone()))
        .expect("producer");
    (producer, deliveries)
}

/// Enqueues one record, waiting (bounded) while librdkafka's queue is full.
/// An idempotent acks=all producer that waits up to a minute for each record, as the
/// cluster tests use across leader changes.
pub fn idempotent_producer(bootstrap: &str) -> (CountingProducer, Arc<Deliveries>) {
    producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
            ("linger.ms", "5"),
        ],
    )
}

pub fn send(producer: &CountingProducer, record: BaseRecord<'_, [u8], [u8]>) {
    if let Err(e) = try_send(producer, record) {
        panic!("send failed: {e}");
    }
}

/// `send`, answering librdkafka's refusal to enqueue (other than a full queue) instead of
/// panicking: it refuses at once what its metadata already says is refused (a topic the
/// principal may not write, for one).
pub fn try_send(
    producer: &CountingProducer,
    record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), rdkafka::error::KafkaError> {
    let mut record = record;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                assert!(Instant::now() < deadline, "producer queue stayed full");
                producer.poll(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

pub fn flush(producer: &CountingProducer) {
    producer
        .flush(Duration::from_secs(60))
        .expect("every message delivered or failed within 60 s");
}

/// Sends one record and waits (bounded) for its delivery report, polling the producer's
/// events directly (the crate's `flush` sleeps in 100 ms steps, which would be measured).
pub fn send_and_wait(
    producer: &CountingProducer,
    deliveries: &Deliveries,
    record: BaseRecord<'_, [u8], [u8]>,
) {
    if let Err(e) = try_send_and_wait(producer, deliveries, record) {
        panic!("send failed: {e}");
    }
}

/// `send_and_wait`, answering a refusal to enqueue (see `try_send`) instead of panicking.
pub fn try_send_and_wait(
    producer: &CountingProducer,
    deliveries: &Deliveries,
    record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), rdkafka::error::KafkaError> {
    let before = deliveries.ok.load(Ordering::SeqCst) + deliveries.failed.load(Ordering::SeqCst);
    try_send(producer, record)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries.ok.load(Ordering::SeqCst) + deliveries.failed.load(Ordering::SeqCst) == before
    {
        assert!(Instant::now() < deadline, "no delivery report within 30 s");
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tests-without-group-coordination")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("consumer")
}

impl Consumed {
    /// Everything of a message the tests compare.
    pub fn of(m: &impl Message) -> Consumed {
        Consumed {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| k.to_vec()),
            payload: m.payload().map(|p| p.to_vec()),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: m.timestamp().to_millis(),
        }
    }
}

/// One consumed record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// Reads partitions `0..partitions` of `topic` from the beginning until `expected` records
/// arrived or `timeout` passed; returns what arrived, for exact assertions.
pub fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition added");
    }
    consumer.assign(&tpl).expect("assigned");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(m)) => out.push(Consumed::of(&m)),
        }
    }
    // Anything more than expected would be a duplicate: give it a short chance to show.
    if out.len() == expected {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
            out.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: None,
                payload: m.payload().map(|p| p.to_vec()),
                headers: Vec::new(),
                timestamp: None,
            });
        }
    }
    out
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .expect("create_topics answered");
    for r in results {
        r.expect("topic created");
    }
}

/// Sum of high watermarks over partitions `0..partitions`.
pub fn end_offsets(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Vec<i64> {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Checks per-partition offsets are contiguous from 0 and returns payloads as strings.
pub fn assert_contiguous(records: &[Consumed], partitions: i32) {
    for p in 0..partitions {
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: offsets contiguous from 0, in order"
        );
    }
}
