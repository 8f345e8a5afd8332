//! The `latency` workload: one producer sends at a fixed rate, paced by a schedule (message
//! n is due at start + n / rate, whatever the sends before it cost), each message carrying
//! its send time; one consumer tails the topic and measures end-to-end latency.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::Producer;

use crate::cli::{Global, LatencyArgs, Limit};
use crate::client::{Connection, ProducerSettings};
use crate::payload::{now_nanos, Payloads, STAMP_LEN};
use crate::produce::{self, BenchProducer, DeliveryCounter, Record};
use crate::progress::{Sampler, Watch};
use crate::report::{merge, rfc3339, Report, RunOptions, Throughput};
use crate::stats::{Counter, Percentiles, Totals};
use crate::tail;
use crate::topic::{self, TopicInfo};
use crate::workers::failures;

pub const LATENCY_KIND: &str = "end to end: send time in the payload to receive time";

/// When each message of a fixed-rate stream is due.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    rate: u64,
}

impl Pacer {
    /// `rate` messages per second from `start` (a rate of 0 is taken as 1).
    pub fn new(start: Instant, rate: u64) -> Pacer {
        Pacer {
            start,
            rate: rate.max(1),
        }
    }

    /// The instant message `n` (from 0) is due: computed from the start, so lateness of one
    /// send never shifts the ones after it.
    pub fn due(&self, n: u64) -> Instant {
        let nanos = u128::from(n) * 1_000_000_000 / u128::from(self.rate);
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How long to wait at `now` before sending message `n`: zero once it is due.
    pub fn wait(&self, n: u64, now: Instant) -> Duration {
        self.due(n).saturating_duration_since(now)
    }

    /// How many messages fall due within `d` of the start.
    pub fn count_within(&self, d: Duration) -> u64 {
        let n = (d.as_nanos() * u128::from(self.rate)).div_ceil(1_000_000_000);
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

/// Waits until `due`, serving delivery reports meanwhile.
fn wait_until(producer: &BenchProducer, pacer: &Pacer, n: u64) {
    loop {
        let left = pacer.wait(n, Instant::now());
        if left.is_zero() {
            return;
        }
        if left > Duration::from_millis(2) {
            producer.poll(left - Duration::from_millis(1));
        } else {
            std::thread::sleep(left);
        }
    }
}

pub fn check_message_size(global: &Global) -> Result<usize> {
    let size = usize::try_from(global.message_size)?;
    if size < STAMP_LEN {
        return Err(anyhow!(
            "--message-size must be at least {STAMP_LEN}: the payload carries the send time"
        ));
    }
    Ok(size)
}

pub fn bench(global: &Global, topic: &TopicInfo, args: &LatencyArgs) -> Result<Report> {
    let size = check_message_size(global)?;
    let limit = global.limit();
    let conn = Connection::new(global);
    let probe: BaseConsumer = conn.consumer().create().context("creating a consumer")?;
    let marks = topic::watermarks(&probe, topic)?;
    let mut tailers = tail::start(&conn, topic, &marks, 1)?;
    let settings = ProducerSettings {
        conn: conn.clone(),
        acks: args.acks,
        linger_ms: args.linger_ms,
        batch_size: 1_000_000,
        idempotence: false,
        compression: global.compression,
    };
    let produced = Arc::new(Counter::default());
    let producer = produce::connect(
        &settings,
        &topic.name,
        DeliveryCounter::new(produced.clone(), None),
    )?;
    tailers.workers.go();
    let started_at = SystemTime::now();
    let sampler = Sampler::start(
        Watch {
            main: tailers.counter.clone(),
            consumed: None,
            latencies: Some(tailers.latencies.clone()),
        },
        global.progress_secs,
    );
    let start = Instant::now();
    let pacer = Pacer::new(start, args.rate);
    let total = match limit {
        Limit::Count(n) => n,
        Limit::Duration(d) => pacer.count_within(d),
    };
    let mut payloads = Payloads::new(size, now_nanos());
    let mut failed = Vec::new();
    for n in 0..total {
        wait_until(&producer, &pacer, n);
        let nanos = now_nanos();
        let record = Record::with_opaque_to(&topic.name, producer.context().now())
            .payload(payloads.stamped(n, nanos))
            .timestamp((nanos / 1_000_000) as i64)
            .partition((n % topic.partitions as u64) as i32);
        if let Err(e) = produce::send(&producer, record) {
            produced.error(|| format!("{e:#}"));
            failed.push(format!("{e:#}"));
            break;
        }
        producer.poll(Duration::ZERO);
    }
    if let Err(e) = produce::flush(&producer) {
        failed.push(format!("{e:#}"));
    }
    let produce_elapsed = start.elapsed();
    let acked = produced.totals();
    tailers.target.set(acked.msgs);
    let results = tailers.workers.join();
    let elapsed = start.elapsed();
    let timeline = sampler.finish();
    failed = merge(failed, &failures(&results));
    let received = tailers.counter.totals();
    let mut options = RunOptions::new(global, topic, limit);
    options.acks = Some(args.acks);
    options.rate = Some(args.rate);
    options.linger_ms = Some(args.linger_ms);
    let error_messages = merge(
        merge(produced.error_samples(), &tailers.counter.error_samples()),
        &failed,
    );
    Ok(Report {
        workload: "latency",
        bootstrap: global.bootstrap.clone(),
        options,
        started_at: rfc3339(started_at),
        result: Throughput::new(
            Totals {
                errors: received.errors + acked.errors,
                ..received
            },
            elapsed,
        ),
        complete: failed.is_empty(),
        error_messages,
        latency_kind: Some(LATENCY_KIND),
        latency_us: Percentiles::of(&tailers.latencies.total()),
        fill: None,
        produced: Some(Throughput::new(acked, produce_elapsed)),
        consumed: None,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_computed_from_the_start() {
        let start = Instant::now();
        let p = Pacer::new(start, 1000);
        assert_eq!(p.due(0), start);
        assert_eq!(p.due(1), start + Duration::from_millis(1));
        assert_eq!(p.due(1000), start + Duration::from_secs(1));
        assert_eq!(p.due(2500), start + Duration::from_millis(2500));
    }

    #[test]
    fn schedule_does_not_drift_at_awkward_rates() {
        let start = Instant::now();
        let p = Pacer::new(start, 3);
        assert_eq!(p.due(1), start + Duration::from_nanos(333_333_333));
        assert_eq!(p.due(2), start + Duration::from_nanos(666_666_666));
        // Exact after 3 and after 3 million: no accumulated rounding.
        assert_eq!(p.due(3), start + Duration::from_secs(1));
        assert_eq!(p.due(3_000_000), start + Duration::from_secs(1_000_000));
        let p = Pacer::new(start, 7);
        let gaps: Vec<u128> = (0..7)
            .map(|n| (p.due(n + 1) - p.due(n)).as_nanos())
            .collect();
        assert!(
            gaps.iter().all(|g| (142_857_142..=142_857_143).contains(g)),
            "{gaps:?}"
        );
    }

    #[test]
    fn waits_are_until_the_due_instant_and_none_when_late() {
        let start = Instant::now();
        let p = Pacer::new(start, 100);
        // Message 5 is due at 50 ms.
        assert_eq!(p.wait(5, start), Duration::from_millis(50));
        assert_eq!(
            p.wait(5, start + Duration::from_millis(20)),
            Duration::from_millis(30)
        );
        assert_eq!(p.wait(5, start + Duration::from_millis(50)), Duration::ZERO);
        // Late: send at once; the next one keeps its own slot.
        assert_eq!(p.wait(5, start + Duration::from_millis(75)), Duration::ZERO);
        assert_eq!(p.wait(6, start + Duration::from_millis(75)), Duration::ZERO);
        assert_eq!(
            p.wait(8, start + Duration::from_millis(75)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn messages_within_a_duration() {
        let p = Pacer::new(Instant::now(), 500);
        assert_eq!(p.count_within(Duration::from_secs(3)), 1500);
        assert_eq!(p.count_within(Duration::from_millis(1)), 1);
        assert_eq!(
            Pacer::new(Instant::now(), 0).count_within(Duration::from_secs(2)),
            2
        );
    }
}
