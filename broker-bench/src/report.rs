//! The result of a run: printed for a person, written as JSON for a program.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{Acks, Compression, Global, Limit};
use crate::progress::TimelinePoint;
use crate::stats::{Percentiles, Totals};
use crate::topic::TopicInfo;

/// Megabytes are decimal: 1 MB = 1,000,000 bytes.
pub const MB: f64 = 1_000_000.0;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub bootstrap: String,
    #[serde(flatten)]
    pub options: RunOptions,
    /// UTC, RFC 3339, when the measured phase started.
    pub started_at: String,
    #[serde(flatten)]
    pub result: Throughput,
    /// False when the run stopped early (no progress for 30 s, a flush that did not
    /// finish, a send the client refused): the figures cover what happened before.
    pub complete: bool,
    /// The first distinct error texts.
    pub error_messages: Vec<String>,
    /// What `latency_us` measures, when it is measured.
    pub latency_kind: Option<&'static str>,
    pub latency_us: Option<Percentiles>,
    /// `consume`: the messages produced first so there is something to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<Throughput>,
    /// `latency`: what the producer had acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produced: Option<Throughput>,
    /// `mixed`: what the consumers read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed: Option<Throughput>,
    pub timeline: Vec<TimelinePoint>,
}

/// The options a run used. Workload options a workload does not have are left out.
#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    pub topic: String,
    pub topic_created: bool,
    pub partitions: i32,
    pub message_size: u64,
    pub compression: Compression,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_limit_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks: Option<Acks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linger_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotence: Option<bool>,
}

impl RunOptions {
    /// The global options; the workload fills in its own.
    pub fn new(global: &Global, topic: &TopicInfo, limit: Limit) -> RunOptions {
        let (count, duration_limit_secs) = match limit {
            Limit::Count(n) => (Some(n), None),
            Limit::Duration(d) => (None, Some(d.as_secs())),
        };
        RunOptions {
            topic: topic.name.clone(),
            topic_created: topic.created,
            partitions: topic.partitions,
            message_size: global.message_size,
            compression: global.compression,
            count,
            duration_limit_secs,
            acks: None,
            producers: None,
            consumers: None,
            rate: None,
            linger_ms: None,
            batch_size: None,
            idempotence: None,
        }
    }
}

/// Messages and bytes over a phase. Bytes are payload bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    pub duration_secs: f64,
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    pub errors: u64,
}

impl Throughput {
    pub fn new(totals: Totals, elapsed: Duration) -> Throughput {
        let secs = elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        Throughput {
            duration_secs: round3(secs),
            messages: totals.msgs,
            bytes: totals.bytes,
            msgs_per_sec: round3(per_sec(totals.msgs)),
            mb_per_sec: round3(per_sec(totals.bytes) / MB),
            errors: totals.errors,
        }
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} messages, {} bytes in {:.3} s: {:.0} msg/s, {:.3} MB/s, {} errors",
            self.messages,
            self.bytes,
            self.duration_secs,
            self.msgs_per_sec,
            self.mb_per_sec,
            self.errors
        )
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Report {
    /// The human summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let o = &self.options;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== broker-bench {} against {} (topic {}{}, {} partitions, {}-byte messages, compression {})",
            self.workload,
            self.bootstrap,
            o.topic,
            if o.topic_created { ", created" } else { "" },
            o.partitions,
            o.message_size,
            o.compression.as_config(),
        );
        let mut knobs = Vec::new();
        if let Some(a) = o.acks {
            knobs.push(format!("acks {}", a.as_config()));
        }
        for (name, v) in [("producers", o.producers), ("consumers", o.consumers)] {
            if let Some(v) = v {
                knobs.push(format!("{name} {v}"));
            }
        }
        if let Some(r) = o.rate {
            knobs.push(format!("rate {r} msg/s"));
        }
        if let Some(l) = o.linger_ms {
            knobs.push(format!("linger.ms {l}"));
        }
        if let Some(b) = o.batch_size {
            knobs.push(format!("batch.size {b}"));
        }
        if let Some(i) = o.idempotence {
            knobs.push(format!("idempotence {i}"));
        }
        if !knobs.is_empty() {
            let _ = writeln!(s, "   {}", knobs.join(", "));
        }
        if let Some(fill) = &self.fill {
            let _ = writeln!(s, "{}", fill.line("fill (produced first, acks=1)"));
        }
        let r = &self.result;
        let what = match self.workload {
            "produce" | "mixed" => "acknowledged",
            "consume" => "read",
            _ => "received end to end",
        };
        let _ = writeln!(s, "started:     {}", self.started_at);
        let _ = writeln!(s, "duration:    {:.3} s", r.duration_secs);
        let _ = writeln!(s, "messages:    {} {what}", r.messages);
        let _ = writeln!(
            s,
            "throughput:  {:.0} msg/s, {:.3} MB/s (payload bytes; 1 MB = 1,000,000 bytes)",
            r.msgs_per_sec, r.mb_per_sec
        );
        let _ = writeln!(s, "errors:      {}", r.errors);
        for (label, side) in [("produced", &self.produced), ("consumed", &self.consumed)] {
            if let Some(t) = side {
                let _ = writeln!(s, "{}", t.line(label));
            }
        }
        match (&self.latency_us, self.latency_kind) {
            (Some(p), kind) => {
                let _ = writeln!(s, "latency ({}):", kind.unwrap_or("measured"));
                for (name, us) in [
                    ("p50", p.p50),
                    ("p90", p.p90),
                    ("p99", p.p99),
                    ("p99.9", p.p999),
                    ("max", p.max),
                ] {
                    let _ = writeln!(
                        s,
                        "   {name:>5}: {us:>10} µs = {:>10.3} ms",
                        us as f64 / 1000.0
                    );
                }
            }
            (None, Some(kind)) => {
                let _ = writeln!(s, "latency ({kind}): nothing measured");
            }
            (None, None) => {}
        }
        for e in &self.error_messages {
            let _ = writeln!(s, "error: {e}");
        }
        if !self.complete {
            let _ = writeln!(
                s,
                "INCOMPLETE: the run stopped early (see the errors); the figures cover what happened before"
            );
        }
        s
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the result")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// `first` followed by the texts of `more` it does not already have.
pub fn merge(mut first: Vec<String>, more: &[String]) -> Vec<String> {
    for m in more {
        if !first.contains(m) {
            first.push(m.clone());
        }
    }
    first
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g. 2024-05-01T12:00:00.250Z.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn sample() -> Report {
        let cli =
            Cli::try_parse_from(["broker-bench", "produce", "--count", "1000"]).expect("parses");
        let topic = TopicInfo {
            name: "t".into(),
            partitions: 3,
            created: true,
        };
        let mut options = RunOptions::new(&cli.global, &topic, cli.global.limit());
        options.acks = Some(Acks::All);
        options.producers = Some(2);
        let totals = Totals {
            msgs: 1000,
            bytes: 100_000,
            errors: 0,
        };
        Report {
            workload: "produce",
            bootstrap: cli.global.bootstrap.clone(),
            options,
            started_at: rfc3339(UNIX_EPOCH),
            result: Throughput::new(totals, Duration::from_millis(500)),
            complete: true,
            error_messages: vec![],
            latency_kind: Some("produce"),
            latency_us: Some(Percentiles {
                p50: 1,
                p90: 2,
                p99: 3,
                p999: 4,
                max: 5,
            }),
            fill: None,
            produced: None,
            consumed: None,
            timeline: vec![TimelinePoint {
                t: 0.5,
                msgs: 1000,
                msgs_per_sec: 2000.0,
                p99_us: Some(3),
                consumed_msgs_per_sec: None,
            }],
        }
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(sample()).expect("serializes");
        for key in [
            "workload",
            "bootstrap",
            "topic",
            "partitions",
            "message_size",
            "compression",
            "count",
            "acks",
            "producers",
            "started_at",
            "duration_secs",
            "messages",
            "bytes",
            "msgs_per_sec",
            "mb_per_sec",
            "errors",
            "latency_us",
            "timeline",
        ] {
            assert!(v.get(key).is_some(), "no {key} in {v}");
        }
        for absent in [
            "consumers",
            "rate",
            "fill",
            "consumed",
            "duration_limit_secs",
        ] {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
        assert_eq!(v["workload"], "produce");
        assert_eq!(v["acks"], "all");
        assert_eq!(v["compression"], "none");
        assert_eq!(v["messages"], 1000);
        assert_eq!(v["msgs_per_sec"], 2000.0);
        assert_eq!(v["mb_per_sec"], 0.2);
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][key].is_u64(), "latency_us.{key}");
        }
        let point = &v["timeline"][0];
        for key in ["t", "msgs", "msgs_per_sec", "p99_us"] {
            assert!(point.get(key).is_some(), "no timeline {key}");
        }
    }

    #[test]
    fn latency_is_null_when_not_measured() {
        let mut r = sample();
        r.latency_us = None;
        r.latency_kind = None;
        let v = serde_json::to_value(&r).expect("serializes");
        assert!(v["latency_us"].is_null());
        assert!(!r.summary().contains("latency"));
    }

    #[test]
    fn summary_states_the_units() {
        let s = sample().summary();
        assert!(s.contains("2000 msg/s"), "{s}");
        assert!(s.contains("0.200 MB/s"), "{s}");
        assert!(s.contains("1 MB = 1,000,000 bytes"), "{s}");
        assert!(s.contains("p99.9"), "{s}");
    }

    #[test]
    fn throughput_of_nothing_is_zero() {
        let t = Throughput::new(Totals::default(), Duration::ZERO);
        assert_eq!((t.msgs_per_sec, t.mb_per_sec), (0.0, 0.0));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}
