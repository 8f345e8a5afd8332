//! The rate a quota is measured by: Kafka's `Rate` over a `SampledStat` of
//! `quota_window_num` windows of `quota_window_size_seconds` each, and the throttle time
//! Kafka's `QuotaUtils` derives from it.
//!
//! A value is added to the current window (a new one starts once the current is a window
//! old; windows older than all of them together are dropped). The rate is the windows'
//! sum over the time they span, counted as at least `num - 1` whole windows, so a client
//! that just started is not judged on a few milliseconds. Over the quota, the client is
//! throttled for as long as it takes the rate to come back to the quota:
//! `(rate - quota) / quota * span`, at most one window (Kafka's bound).

use std::time::Duration;

use tokio::time::Instant;

/// How the windows are cut (Kafka's `quota.window.num`, `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindows {
    pub num: usize,
    pub size: Duration,
}

impl QuotaWindows {
    /// The most a client may take in one quota window span before it is throttled
    /// (Kafka's `getMaxValueInQuotaWindow`): what Fetch sizes are capped to.
    pub fn max_value_in_window(&self, quota: f64) -> f64 {
        quota * (self.num.saturating_sub(1)) as f64 * self.size.as_secs_f64()
    }

    /// The longest one throttle lasts (Kafka bounds it by the window size).
    pub fn max_throttle(&self) -> Duration {
        self.size
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    value: f64,
}

/// One quota's rate: the sampled windows of one user and/or client id.
#[derive(Debug, Clone)]
pub struct Rate {
    windows: QuotaWindows,
    samples: Vec<Sample>,
}

impl Rate {
    pub fn new(windows: QuotaWindows) -> Self {
        Self {
            windows,
            samples: Vec::with_capacity(windows.num),
        }
    }

    /// Adds `value` at `now`.
    pub fn record(&mut self, value: f64, now: Instant) {
        self.purge(now);
        match self.samples.last_mut() {
            Some(last) if now.saturating_duration_since(last.start) < self.windows.size => {
                last.value += value;
            }
            _ => {
                if self.samples.len() == self.windows.num.max(1) {
                    self.samples.remove(0);
                }
                self.samples.push(Sample { start: now, value });
            }
        }
    }

    /// Takes back a value recorded at `now` (a throttled Fetch answers no records).
    pub fn unrecord(&mut self, value: f64, now: Instant) {
        self.record(-value, now);
    }

    /// Whether no window holds anything any more (the rate can be forgotten).
    pub fn idle(&mut self, now: Instant) -> bool {
        self.purge(now);
        self.samples.is_empty()
    }

    /// The rate per second at `now`.
    pub fn measure(&mut self, now: Instant) -> f64 {
        self.purge(now);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / self.span(now).as_secs_f64()
    }

    /// How long a client over `quota` is throttled at `now` (zero when within it).
    pub fn throttle(&mut self, quota: f64, now: Instant) -> Duration {
        let rate = self.measure(now);
        if rate <= quota || quota <= 0.0 {
            return Duration::ZERO;
        }
        let secs = (rate - quota) / quota * self.span(now).as_secs_f64();
        Duration::from_secs_f64(secs.min(self.windows.max_throttle().as_secs_f64()))
    }

    /// Kafka's `Rate.windowSize`: from the oldest window's start to now, at least
    /// `num - 1` whole windows.
    fn span(&self, now: Instant) -> Duration {
        let size = self.windows.size;
        let elapsed = self
            .samples
            .first()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s.start));
        let full = (elapsed.as_nanos() / size.as_nanos().max(1)) as u32;
        let min_full = self.windows.num.saturating_sub(1) as u32;
        let span = if full < min_full {
            elapsed + size * (min_full - full)
        } else {
            elapsed
        };
        span.max(Duration::from_millis(1))
    }

    /// Drops windows that started more than `num` windows ago.
    fn purge(&mut self, now: Instant) {
        let horizon = self.windows.size * self.windows.num as u32;
        self.samples
            .retain(|s| now.saturating_duration_since(s.start) < horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: QuotaWindows = QuotaWindows {
        num: 11,
        size: Duration::from_secs(1),
    };

    #[test]
    fn a_fresh_rate_is_measured_over_num_minus_one_windows() {
        let now = Instant::now();
        let mut rate = Rate::new(KAFKA);
        rate.record(1000.0, now);
        // 1000 over the 10 windows a new client is given.
        assert!((rate.measure(now) - 100.0).abs() < 0.01);
        let later = now + Duration::from_millis(500);
        assert!((rate.measure(later) - 1000.0 / 10.5).abs() < 0.01);
    }

    #[test]
    fn the_steady_rate_is_the_recorded_rate() {
        let start = Instant::now();
        let mut rate = Rate::new(KAFKA);
        // 50 per 100 ms for 30 s: 500 per second.
        for step in 0..300u32 {
            rate.record(50.0, start + Duration::from_millis(100) * step);
        }
        let now = start + Duration::from_millis(29_950);
        let measured = rate.measure(now);
        assert!((measured - 500.0).abs() < 25.0, "{measured}");
    }

    #[test]
    fn old_windows_drop_out() {
        let start = Instant::now();
        let mut rate = Rate::new(KAFKA);
        rate.record(1e6, start);
        assert!(!rate.idle(start + Duration::from_secs(10)));
        assert!(rate.idle(start + Duration::from_secs(11)));
        assert_eq!(rate.measure(start + Duration::from_secs(12)), 0.0);
    }

    #[test]
    fn throttle_brings_the_rate_back_to_the_quota_bounded_by_a_window() {
        let now = Instant::now();
        let mut rate = Rate::new(KAFKA);
        rate.record(1000.0, now);
        assert_eq!(rate.throttle(100.0, now), Duration::ZERO);
        rate.record(100.0, now);
        // 1100 over 10 s is 110/s: 10% over, so 10% of the 10 s span.
        let throttle = rate.throttle(100.0, now);
        assert!((throttle.as_secs_f64() - 1.0).abs() < 0.01, "{throttle:?}");
        rate.record(10_000.0, now);
        assert_eq!(rate.throttle(100.0, now), KAFKA.max_throttle());
        let small = QuotaWindows {
            num: 11,
            size: Duration::from_secs(10),
        };
        let mut rate = Rate::new(small);
        rate.record(1050.0, now);
        // 1050 over 100 s against 10/s: 5% over, 5 s.
        let throttle = rate.throttle(10.0, now);
        assert!((throttle.as_secs_f64() - 5.0).abs() < 0.01, "{throttle:?}");
    }

    #[test]
    fn unrecord_takes_a_value_back() {
        let now = Instant::now();
        let mut rate = Rate::new(KAFKA);
        rate.record(500.0, now);
        rate.unrecord(500.0, now);
        assert_eq!(rate.measure(now), 0.0);
    }

    #[test]
    fn the_fetch_cap_is_the_quota_over_num_minus_one_windows() {
        assert_eq!(KAFKA.max_value_in_window(100.0), 1000.0);
    }
}
