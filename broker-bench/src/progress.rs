//! A sampler thread for the measured phase: once a second it records a timeline point
//! (messages so far, msg/s over that second, latency p99 of that second) and every
//! `--progress-secs` seconds it prints one progress line on stderr.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{Counter, Latencies, Percentiles};

const TICK: Duration = Duration::from_secs(1);

/// One second of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the measured phase started, at the end of this interval.
    pub t: f64,
    /// Messages counted so far.
    pub msgs: u64,
    /// Messages counted in this interval, per second.
    pub msgs_per_sec: f64,
    /// Latency p99 of the messages recorded in this interval, where latency is measured.
    pub p99_us: Option<u64>,
    /// `mixed` only: messages the consumers read in this interval, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_msgs_per_sec: Option<f64>,
}

/// What the sampler watches.
pub struct Watch {
    /// The run's main count (acknowledged for producers, read for consumers).
    pub main: Arc<Counter>,
    /// A second count shown beside it (what `mixed` consumers read).
    pub consumed: Option<Arc<Counter>>,
    pub latencies: Option<Arc<Latencies>>,
}

pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<TimelinePoint>>,
}

impl Sampler {
    /// Starts sampling now; `progress_secs` 0 prints nothing.
    pub fn start(watch: Watch, progress_secs: u64) -> Sampler {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || sample(&watch, progress_secs, &stopped));
        Sampler { stop, thread }
    }

    /// Stops sampling (recording the last partial second) and returns the timeline.
    pub fn finish(self) -> Vec<TimelinePoint> {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

#[derive(Clone, Copy)]
struct Last {
    at: Instant,
    msgs: u64,
    bytes: u64,
    consumed: u64,
}

fn sample(watch: &Watch, progress_secs: u64, stopped: &mpsc::Receiver<()>) -> Vec<TimelinePoint> {
    let start = Instant::now();
    let consumed = || watch.consumed.as_ref().map_or(0, |c| c.msgs());
    let mut timeline = Vec::new();
    let mut last = Last {
        at: start,
        msgs: 0,
        bytes: 0,
        consumed: 0,
    };
    let mut last_print = last;
    for tick in 1u64.. {
        // The schedule, not the time the last sample took, decides the next sample.
        let due = start + TICK * u32::try_from(tick).unwrap_or(u32::MAX);
        let finished = match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let now = Instant::now();
        let totals = watch.main.totals();
        let dt = now.duration_since(last.at).as_secs_f64();
        // The last partial interval only if it is long enough to say something.
        if !finished || dt >= 0.2 {
            let p99 = watch
                .latencies
                .as_ref()
                .and_then(|l| Percentiles::of(&l.take_interval()))
                .map(|p| p.p99);
            let cons = consumed();
            timeline.push(TimelinePoint {
                t: round_ms(now.duration_since(start).as_secs_f64()),
                msgs: totals.msgs,
                msgs_per_sec: round_ms((totals.msgs - last.msgs) as f64 / dt),
                p99_us: p99,
                consumed_msgs_per_sec: watch
                    .consumed
                    .as_ref()
                    .map(|_| round_ms((cons - last.consumed) as f64 / dt)),
            });
            last = Last {
                at: now,
                msgs: totals.msgs,
                bytes: totals.bytes,
                consumed: cons,
            };
        }
        if finished {
            return timeline;
        }
        if progress_secs > 0 && tick % progress_secs == 0 {
            let p99 = timeline.last().and_then(|p| p.p99_us);
            eprintln!("{}", progress_line(&last_print, &last, start, p99, watch));
            last_print = last;
        }
    }
    timeline
}

fn progress_line(
    from: &Last,
    to: &Last,
    start: Instant,
    p99: Option<u64>,
    watch: &Watch,
) -> String {
    let dt = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
    let mut line = format!(
        "[{:>7.1}s] {} msgs | {:.0} msg/s | {:.2} MB/s",
        to.at.duration_since(start).as_secs_f64(),
        to.msgs,
        (to.msgs - from.msgs) as f64 / dt,
        (to.bytes - from.bytes) as f64 / dt / 1e6,
    );
    if watch.consumed.is_some() {
        line += &format!(
            " | consumed {} ({:.0} msg/s)",
            to.consumed,
            (to.consumed - from.consumed) as f64 / dt
        );
    }
    if let Some(p99) = p99 {
        line += &format!(" | p99 (last 1 s) {:.3} ms", p99 as f64 / 1000.0);
    }
    line
}

/// Rounded to three decimals (milliseconds, for seconds).
fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishing_at_once_records_nothing_partial() {
        let main = Arc::new(Counter::default());
        main.add(5, 500);
        let sampler = Sampler::start(
            Watch {
                main,
                consumed: None,
                latencies: None,
            },
            0,
        );
        // Stopped well inside the first 0.2 s: no point for so short an interval.
        let timeline = sampler.finish();
        assert!(timeline.len() <= 1, "{timeline:?}");
    }
}
