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
//! that CA, to compare TLS with plaintext.

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
        "produce acks={acks}{}: {acked} acknowledged, {} failed, {:.0} msg/s, {:.1} MB/s",
        if ssl_ca.is_some() { " over TLS" } else { "" },
        failed.load(Ordering::Relaxed),
        acked as f64 / secs,
        (acked as f64 * size as f64) / secs / 1e6
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
    let started = Instant::now();
    let mut read = 0u64;
    while read < acked && started.elapsed() < Duration::from_secs(300) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "consume: {read} read, {:.0} msg/s, {:.1} MB/s",
        read as f64 / secs,
        (read as f64 * size as f64) / secs / 1e6
    );
}
