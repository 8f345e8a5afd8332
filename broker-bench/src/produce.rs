//! Producers at full speed, one client per thread: the `produce` workload, and the
//! machinery `consume` (to fill the topic) and `mixed` use. Only acknowledged messages
//! (a successful delivery report) count; failed ones count as errors.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::cli::{Acks, Global, Limit, ProduceArgs};
use crate::client::{Connection, ProducerSettings, FLUSH_TIMEOUT, REQUEST_TIMEOUT};
use crate::payload::{now_nanos, Payloads};
use crate::progress::{Sampler, Watch};
use crate::report::{merge, rfc3339, Report, RunOptions, Throughput};
use crate::stats::{Counter, Latencies, LatencySink, Percentiles};
use crate::topic::TopicInfo;
use crate::workers::{self, failures};

/// A send that keeps finding the producer queue full gives up after this long.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between tries while the queue is full: far less than the time the queue
/// (librdkafka's 100,000 messages by default) takes to drain, so the broker never waits
/// for the producer.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);

/// Counts delivery reports; the opaque of each message is its send time in nanoseconds
/// since `base`, for the send-to-acknowledgement latency.
pub struct DeliveryCounter {
    counter: Arc<Counter>,
    latency: Option<Arc<LatencySink>>,
    base: Instant,
}

impl DeliveryCounter {
    pub fn new(counter: Arc<Counter>, latency: Option<Arc<LatencySink>>) -> DeliveryCounter {
        DeliveryCounter {
            counter,
            latency,
            base: Instant::now(),
        }
    }

    /// The opaque to send a message with now.
    pub fn now(&self) -> usize {
        self.base.elapsed().as_nanos() as usize
    }
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        match result {
            Ok(m) => {
                self.counter.add(1, m.payload_len() as u64);
                if let Some(sink) = &self.latency {
                    let nanos = (self.now() as u64).saturating_sub(sent as u64);
                    sink.record_us(nanos / 1000);
                }
            }
            Err((e, _)) => self.counter.error(|| format!("delivery failed: {e}")),
        }
    }
}

pub type BenchProducer = BaseProducer<DeliveryCounter>;
pub type Record<'a> = BaseRecord<'a, (), [u8], usize>;

/// A producer that has already talked to the broker, so connecting is not measured.
pub fn connect(
    settings: &ProducerSettings,
    topic: &str,
    ctx: DeliveryCounter,
) -> Result<BenchProducer> {
    let producer: BenchProducer = settings
        .config()
        .create_with_context(ctx)
        .context("creating a producer")?;
    producer
        .client()
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("producer fetching metadata for {topic}"))?;
    Ok(producer)
}

/// Enqueues one message, waiting while librdkafka's queue is full. An error other than a
/// full queue (a message too large, say) is returned: every message would meet it.
///
/// While the queue is full it serves the delivery reports ready, then pauses
/// `QUEUE_FULL_PAUSE` before trying again. Not `poll` with a timeout: rust-rdkafka's
/// `BaseProducer::poll` loops until its deadline, passing the time left to librdkafka in
/// whole milliseconds, so under a millisecond it polls with 0 in a busy loop; a full
/// queue made every producer thread spin on the clock, taking a core from the brokers.
pub fn send(producer: &BenchProducer, mut record: Record<'_>) -> Result<()> {
    let give_up = Instant::now() + QUEUE_FULL_TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                if Instant::now() >= give_up {
                    bail!("the producer queue stayed full for {QUEUE_FULL_TIMEOUT:?}");
                }
                record = back;
                producer.poll(Duration::ZERO);
                std::thread::sleep(QUEUE_FULL_PAUSE);
            }
            Err((e, _)) => bail!("send failed: {e}"),
        }
    }
}

/// Waits (bounded) for every message to be acknowledged or to fail.
pub fn flush(producer: &BenchProducer) -> Result<()> {
    producer.flush(FLUSH_TIMEOUT).map_err(|e| {
        anyhow!(
            "flush did not finish within {FLUSH_TIMEOUT:?} ({e}); {} messages undelivered",
            producer.in_flight_count()
        )
    })
}

pub struct ProducePlan {
    pub topic: String,
    pub partitions: i32,
    pub settings: ProducerSettings,
    pub producers: u32,
    pub limit: Limit,
    pub message_size: usize,
    /// Put the send time in the payload and the record timestamp (end-to-end latency).
    pub stamp: bool,
    pub counter: Arc<Counter>,
    /// Send-to-acknowledgement latencies, if wanted.
    pub latencies: Option<Arc<Latencies>>,
}

pub struct ProduceOutcome {
    /// From the start signal until every producer had flushed.
    pub elapsed: Duration,
    /// Why producers stopped early, if any did.
    pub failures: Vec<String>,
}

/// Runs the producers: each connects, then all start together (`on_start` is called just
/// before), send until the limit, and flush. Errors before the start are returned; errors
/// after it are in the outcome.
pub fn run_producers(plan: Arc<ProducePlan>, on_start: impl FnOnce()) -> Result<ProduceOutcome> {
    let p = plan.clone();
    let mut workers = workers::spawn("producer", plan.producers, move |index, gate| {
        let sink = p.latencies.as_ref().map(|l| l.new_sink());
        let ctx = DeliveryCounter::new(p.counter.clone(), sink);
        let Some(producer) = gate.pass(connect(&p.settings, &p.topic, ctx))? else {
            return Ok(());
        };
        let sent = send_all(&p, &producer, index);
        let flushed = flush(&producer);
        sent.and(flushed)
    })?;
    workers.wait_ready()?;
    on_start();
    let start = Instant::now();
    workers.go();
    let results = workers.join();
    Ok(ProduceOutcome {
        elapsed: start.elapsed(),
        failures: failures(&results),
    })
}

/// Producer `index`'s part of a count split over `producers`.
pub fn share(total: u64, producers: u32, index: u32) -> u64 {
    let k = u64::from(producers.max(1));
    total / k + u64::from(u64::from(index) < total % k)
}

fn send_all(plan: &ProducePlan, producer: &BenchProducer, index: u32) -> Result<()> {
    let start = Instant::now();
    let (count, deadline) = match plan.limit {
        Limit::Count(n) => (Some(share(n, plan.producers, index)), None),
        Limit::Duration(d) => (None, Some(start + d)),
    };
    let mut payloads = Payloads::new(plan.message_size, now_nanos() ^ u64::from(index));
    let mut partition = (index % plan.partitions.max(1) as u32) as i32;
    let mut n = 0u64;
    loop {
        if count.is_some_and(|c| n >= c) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let opaque = producer.context().now();
        let record = if plan.stamp {
            let nanos = now_nanos();
            Record::with_opaque_to(&plan.topic, opaque)
                .payload(payloads.stamped(n, nanos))
                .timestamp((nanos / 1_000_000) as i64)
        } else {
            Record::with_opaque_to(&plan.topic, opaque).payload(payloads.plain(n))
        };
        send(producer, record.partition(partition)).inspect_err(|e| {
            plan.counter.error(|| format!("{e:#}"));
        })?;
        partition = (partition + 1) % plan.partitions;
        n += 1;
        if n.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }
}

/// The `produce` workload.
pub fn bench(global: &Global, topic: &TopicInfo, args: &ProduceArgs) -> Result<Report> {
    let limit = global.limit();
    let counter = Arc::new(Counter::default());
    let latencies = Arc::new(Latencies::default());
    let o = &args.producer;
    let settings = ProducerSettings {
        conn: Connection::new(global),
        acks: o.acks,
        linger_ms: o.linger_ms,
        batch_size: o.batch_size,
        idempotence: o.idempotence,
        compression: global.compression,
    };
    let plan = Arc::new(ProducePlan {
        topic: topic.name.clone(),
        partitions: topic.partitions,
        settings,
        producers: args.producers,
        limit,
        message_size: usize::try_from(global.message_size)?,
        stamp: false,
        counter: counter.clone(),
        latencies: Some(latencies.clone()),
    });
    let mut started = None;
    let outcome = run_producers(plan, || {
        let watch = Watch {
            main: counter.clone(),
            consumed: None,
            latencies: Some(latencies.clone()),
        };
        started = Some((
            SystemTime::now(),
            Sampler::start(watch, global.progress_secs),
        ));
    })?;
    let (started_at, sampler) = started.ok_or_else(|| anyhow!("the producers never started"))?;
    let timeline = sampler.finish();
    let mut options = RunOptions::new(global, topic, limit);
    options.acks = Some(o.acks);
    options.producers = Some(args.producers);
    options.linger_ms = Some(o.linger_ms);
    options.batch_size = Some(o.batch_size);
    options.idempotence = Some(o.idempotence);
    let error_messages = merge(counter.error_samples(), &outcome.failures);
    Ok(Report {
        workload: "produce",
        bootstrap: global.bootstrap.clone(),
        options,
        started_at: rfc3339(started_at),
        result: Throughput::new(counter.totals(), outcome.elapsed),
        complete: outcome.failures.is_empty(),
        error_messages,
        latency_kind: Some("produce: send to delivery report"),
        latency_us: Percentiles::of(&latencies.total()),
        fill: None,
        produced: None,
        consumed: None,
        timeline,
    })
}

/// Produces `count` messages with acks=1 (for `consume`); no progress lines, no latency.
pub fn fill(global: &Global, topic: &TopicInfo, count: u64) -> Result<(Throughput, Vec<String>)> {
    let counter = Arc::new(Counter::default());
    let plan = Arc::new(ProducePlan {
        topic: topic.name.clone(),
        partitions: topic.partitions,
        settings: ProducerSettings {
            conn: Connection::new(global),
            acks: Acks::One,
            linger_ms: 5,
            batch_size: 1_000_000,
            idempotence: false,
            compression: global.compression,
        },
        producers: 1,
        limit: Limit::Count(count),
        message_size: usize::try_from(global.message_size)?,
        stamp: false,
        counter: counter.clone(),
        latencies: None,
    });
    let outcome = run_producers(plan, || {})?;
    let errors = merge(counter.error_samples(), &outcome.failures);
    Ok((Throughput::new(counter.totals(), outcome.elapsed), errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (total, k) in [(10, 3), (20_000, 1), (2, 5), (0, 2), (1_000_001, 7)] {
            let parts: Vec<u64> = (0..k).map(|i| share(total, k, i)).collect();
            assert_eq!(parts.iter().sum::<u64>(), total, "{parts:?}");
            let (min, max) = (parts.iter().min(), parts.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{parts:?}");
        }
    }
}
