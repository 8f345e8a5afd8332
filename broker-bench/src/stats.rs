//! What the workers count while they run: messages, bytes and errors (atomics any thread
//! bumps), and latencies (HDR histograms in microseconds, one sink per worker thread so
//! workers do not contend; the sampler takes each second's values out of them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How many distinct error texts a counter keeps for the report.
const ERROR_SAMPLES: usize = 10;

#[derive(Debug, Default)]
pub struct Counter {
    msgs: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    samples: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl Counter {
    pub fn add(&self, msgs: u64, bytes: u64) {
        self.msgs.fetch_add(msgs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one error; keeps its text if it is one of the first distinct ones.
    pub fn error(&self, text: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = lock(&self.samples);
        if samples.len() < ERROR_SAMPLES {
            let text = text();
            if !samples.contains(&text) {
                samples.push(text);
            }
        }
    }

    pub fn msgs(&self) -> u64 {
        self.msgs.load(Ordering::Relaxed)
    }

    pub fn totals(&self) -> Totals {
        Totals {
            msgs: self.msgs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    pub fn error_samples(&self) -> Vec<String> {
        lock(&self.samples).clone()
    }
}

/// A poisoned lock only means another worker panicked; the counts are still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// 1 µs to one hour at 3 significant digits; larger values are recorded as one hour.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

#[derive(Debug)]
struct SinkHistograms {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

/// One worker's latencies.
#[derive(Debug)]
pub struct LatencySink {
    hist: Mutex<SinkHistograms>,
}

impl LatencySink {
    pub fn record_us(&self, us: u64) {
        let mut h = lock(&self.hist);
        h.total.saturating_record(us);
        h.interval.saturating_record(us);
    }
}

/// Every worker's latencies, for the timeline (per interval) and the result (in total).
#[derive(Debug, Default)]
pub struct Latencies {
    sinks: Mutex<Vec<Arc<LatencySink>>>,
}

impl Latencies {
    pub fn new_sink(&self) -> Arc<LatencySink> {
        let sink = Arc::new(LatencySink {
            hist: Mutex::new(SinkHistograms {
                total: new_histogram(),
                interval: new_histogram(),
            }),
        });
        lock(&self.sinks).push(sink.clone());
        sink
    }

    /// The values recorded since the last call, merged over all workers.
    pub fn take_interval(&self) -> Histogram<u64> {
        let mut merged = new_histogram();
        for sink in lock(&self.sinks).iter() {
            let mut h = lock(&sink.hist);
            // Same bounds on both sides, so adding cannot fail.
            let _ = merged.add(&h.interval);
            h.interval.reset();
        }
        merged
    }

    /// Every value recorded, merged over all workers.
    pub fn total(&self) -> Histogram<u64> {
        let mut merged = new_histogram();
        for sink in lock(&self.sinks).iter() {
            let _ = merged.add(&lock(&sink.hist).total);
        }
        merged
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    /// None when nothing was recorded.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        Some(Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within HDR's 3 significant digits.
    fn close(got: u64, want: u64) -> bool {
        got.abs_diff(want) * 1000 <= want.max(1)
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = new_histogram();
        for us in 1..=10_000 {
            h.record(us).expect("in range");
        }
        let p = Percentiles::of(&h).expect("not empty");
        assert!(close(p.p50, 5_000), "{p:?}");
        assert!(close(p.p90, 9_000), "{p:?}");
        assert!(close(p.p99, 9_900), "{p:?}");
        assert!(close(p.p999, 9_990), "{p:?}");
        assert!(close(p.max, 10_000), "{p:?}");
    }

    #[test]
    fn percentiles_see_the_tail() {
        let mut h = new_histogram();
        for _ in 0..990 {
            h.record(100).expect("in range");
        }
        for _ in 0..10 {
            h.record(50_000).expect("in range");
        }
        let p = Percentiles::of(&h).expect("not empty");
        assert!(close(p.p50, 100) && close(p.p90, 100), "{p:?}");
        assert!(close(p.p99, 100), "99% are 100 µs: {p:?}");
        assert!(close(p.p999, 50_000) && close(p.max, 50_000), "{p:?}");
    }

    #[test]
    fn no_percentiles_of_nothing() {
        assert_eq!(Percentiles::of(&new_histogram()), None);
    }

    #[test]
    fn intervals_are_taken_out_totals_stay() {
        let all = Latencies::default();
        let (a, b) = (all.new_sink(), all.new_sink());
        a.record_us(10);
        b.record_us(20);
        assert_eq!(all.take_interval().len(), 2);
        assert_eq!(all.take_interval().len(), 0);
        b.record_us(u64::MAX);
        let total = all.total();
        assert_eq!(total.len(), 3);
        assert!(total.max() >= 3_600_000_000, "saturated at the top bound");
    }

    #[test]
    fn counter_keeps_a_few_distinct_errors() {
        let c = Counter::default();
        c.add(3, 300);
        for i in 0..50 {
            c.error(|| format!("e{}", i % 20));
        }
        c.error(|| "e0".to_string());
        assert_eq!(
            c.totals(),
            Totals {
                msgs: 3,
                bytes: 300,
                errors: 51
            }
        );
        assert_eq!(c.error_samples().len(), ERROR_SAMPLES);
    }
}
