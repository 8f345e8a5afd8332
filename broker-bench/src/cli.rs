//! Command-line options: global options shared by every workload, then one subcommand per
//! workload with its own options. Global options may stand before or after the subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Drives any Kafka-compatible broker through librdkafka and measures it.
#[derive(Debug, Parser)]
#[command(name = "broker-bench", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Broker address(es), comma-separated host:port.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to use; created if missing. Default: a fresh `bench-<pid>-<millis>`.
    #[arg(long, global = true)]
    pub topic: Option<String>,
    /// Partitions of a topic the tool creates.
    #[arg(long, global = true, default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Replicas of each partition of a topic the tool creates.
    #[arg(long, global = true, default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=i16::MAX as i64))]
    pub replication_factor: i32,
    /// `min.insync.replicas` of a topic the tool creates (the broker's default when not given).
    #[arg(long, global = true,
          value_parser = clap::value_parser!(i32).range(1..=i16::MAX as i64))]
    pub min_insync_replicas: Option<i32>,
    /// Payload bytes per message.
    #[arg(long, global = true, default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub message_size: u64,
    /// Producer compression codec.
    #[arg(long, global = true, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Run for this many seconds (ignored when --count is given).
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: Option<u64>,
    /// Run for this many messages (wins over --duration).
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Write the result as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Draw msg/s (and latency p99 where measured) per second to this SVG file.
    #[arg(long, global = true)]
    pub svg: Option<PathBuf>,
    /// Print a progress line on stderr every N seconds (0: never).
    #[arg(long, global = true, default_value_t = 1)]
    pub progress_secs: u64,
    /// Extra librdkafka setting for every client, KEY=VALUE, applied last. Repeatable: give
    /// them all on the same side of the workload name.
    #[arg(long = "client-config", global = true, value_name = "KEY=VALUE",
          value_parser = parse_key_value)]
    pub client_config: Vec<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Producers at full speed; counts acknowledged messages and send-to-ack latency.
    Produce(ProduceArgs),
    /// Fills the topic if needed, then consumers read everything present at start.
    Consume(ConsumeArgs),
    /// One producer at a fixed rate, one consumer tailing: end-to-end latency.
    Latency(LatencyArgs),
    /// Producers at full speed and consumers tailing at the same time.
    Mixed(MixedArgs),
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Produce(_) => "produce",
            Workload::Consume(_) => "consume",
            Workload::Latency(_) => "latency",
            Workload::Mixed(_) => "mixed",
        }
    }
}

/// Producer settings shared by `produce` and `mixed`.
#[derive(Debug, Clone, Args)]
pub struct ProducerOpts {
    /// Acknowledgements the producer asks for.
    #[arg(long, value_enum, default_value_t = Acks::One)]
    pub acks: Acks,
    /// librdkafka `linger.ms`.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// librdkafka `batch.size` in bytes.
    #[arg(long, default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=2_147_483_647))]
    pub batch_size: u64,
    /// Turn on `enable.idempotence` (off by default).
    #[arg(long)]
    pub idempotence: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub producer: ProducerOpts,
    /// Concurrent producer clients, one thread each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub producers: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    /// Concurrent consumer clients; the partitions are split among them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub consumers: u32,
}

#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    /// Messages per second, paced by schedule.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: u64,
    /// Acknowledgements the producer asks for.
    #[arg(long, value_enum, default_value_t = Acks::One)]
    pub acks: Acks,
    /// librdkafka `linger.ms` of the producer (0: send each message at once).
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    #[command(flatten)]
    pub producer: ProducerOpts,
    /// Concurrent producer clients, one thread each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub producers: u32,
    /// Concurrent consumer clients tailing the topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub consumers: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type`.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    Zero,
    #[value(name = "1")]
    #[serde(rename = "1")]
    One,
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// The value of librdkafka's `acks`.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

/// When a workload stops: after a number of messages or after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Duration(Duration),
}

/// What a run does when neither --count nor --duration is given.
pub const DEFAULT_DURATION_SECS: u64 = 10;
/// The fill target of `consume` when --count is not given.
pub const DEFAULT_CONSUME_COUNT: u64 = 1_000_000;

/// What a topic the tool creates looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub partitions: i32,
    pub replication_factor: i32,
    pub min_insync_replicas: Option<i32>,
}

impl TopicSpec {
    /// The topic configs CreateTopics sends.
    pub fn configs(&self) -> Vec<(&'static str, String)> {
        self.min_insync_replicas
            .map(|n| ("min.insync.replicas", n.to_string()))
            .into_iter()
            .collect()
    }
}

impl Global {
    pub fn topic_spec(&self) -> TopicSpec {
        TopicSpec {
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
        }
    }

    /// --count wins over --duration; neither means [`DEFAULT_DURATION_SECS`].
    pub fn limit(&self) -> Limit {
        match (self.count, self.duration) {
            (Some(n), _) => Limit::Count(n),
            (None, Some(s)) => Limit::Duration(Duration::from_secs(s)),
            (None, None) => Limit::Duration(Duration::from_secs(DEFAULT_DURATION_SECS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("broker-bench").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let cli = parse(&["produce"]).expect("parses");
        let g = &cli.global;
        assert_eq!(g.bootstrap, "127.0.0.1:9092");
        assert_eq!(g.topic, None);
        assert_eq!(g.partitions, 3);
        assert_eq!(g.replication_factor, 1);
        assert_eq!(g.min_insync_replicas, None);
        assert_eq!(g.message_size, 100);
        assert_eq!(g.compression, Compression::None);
        assert_eq!(g.progress_secs, 1);
        assert_eq!(g.limit(), Limit::Duration(Duration::from_secs(10)));
        let Workload::Produce(p) = cli.workload else {
            panic!("not produce")
        };
        assert_eq!(p.producers, 1);
        assert_eq!(p.producer.acks, Acks::One);
        assert_eq!(p.producer.linger_ms, 5);
        assert_eq!(p.producer.batch_size, 1_000_000);
        assert!(!p.producer.idempotence);
    }

    #[test]
    fn global_options_before_or_after_the_subcommand() {
        let before = parse(&["--bootstrap", "h:1", "--count", "5", "consume"]).expect("parses");
        let after = parse(&["consume", "--bootstrap", "h:1", "--count", "5"]).expect("parses");
        for cli in [before, after] {
            assert_eq!(cli.global.bootstrap, "h:1");
            assert_eq!(cli.global.limit(), Limit::Count(5));
            assert_eq!(cli.workload.name(), "consume");
        }
    }

    #[test]
    fn replicated_topic_on_a_cluster() {
        let cli = parse(&[
            "produce",
            "--bootstrap",
            "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194",
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "2",
        ])
        .expect("parses");
        let g = &cli.global;
        // librdkafka takes the list as it is (bootstrap.servers).
        assert_eq!(g.bootstrap, "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194");
        assert_eq!(g.replication_factor, 3);
        assert_eq!(g.min_insync_replicas, Some(2));
        let spec = g.topic_spec();
        assert_eq!(spec.replication_factor, 3);
        assert_eq!(
            spec.configs(),
            vec![("min.insync.replicas", "2".to_string())]
        );
        assert!(parse(&["produce"])
            .expect("parses")
            .global
            .topic_spec()
            .configs()
            .is_empty());
    }

    #[test]
    fn count_wins_over_duration() {
        let cli = parse(&["produce", "--duration", "7", "--count", "9"]).expect("parses");
        assert_eq!(cli.global.limit(), Limit::Count(9));
        let cli = parse(&["produce", "--duration", "7"]).expect("parses");
        assert_eq!(cli.global.limit(), Limit::Duration(Duration::from_secs(7)));
    }

    #[test]
    fn produce_options() {
        let cli = parse(&[
            "produce",
            "--acks",
            "all",
            "--producers",
            "4",
            "--linger-ms",
            "0",
            "--batch-size",
            "16384",
            "--idempotence",
            "--compression",
            "zstd",
            "--json",
            "r.json",
            "--svg",
            "r.svg",
        ])
        .expect("parses");
        assert_eq!(cli.global.compression, Compression::Zstd);
        assert_eq!(cli.global.json, Some(PathBuf::from("r.json")));
        assert_eq!(cli.global.svg, Some(PathBuf::from("r.svg")));
        let Workload::Produce(p) = cli.workload else {
            panic!("not produce")
        };
        assert_eq!(p.producer.acks, Acks::All);
        assert_eq!(p.producers, 4);
        assert_eq!(p.producer.linger_ms, 0);
        assert_eq!(p.producer.batch_size, 16384);
        assert!(p.producer.idempotence);
    }

    #[test]
    fn latency_and_mixed_options() {
        let cli = parse(&["latency", "--rate", "500", "--acks", "0"]).expect("parses");
        let Workload::Latency(l) = cli.workload else {
            panic!("not latency")
        };
        assert_eq!((l.rate, l.acks, l.linger_ms), (500, Acks::Zero, 0));
        let cli = parse(&["mixed", "--producers", "2", "--consumers", "3"]).expect("parses");
        let Workload::Mixed(m) = cli.workload else {
            panic!("not mixed")
        };
        assert_eq!((m.producers, m.consumers), (2, 3));
    }

    #[test]
    fn client_config_pairs() {
        let want = vec![
            ("fetch.wait.max.ms".to_string(), "10".to_string()),
            ("debug".to_string(), String::new()),
        ];
        let (a, b) = ("fetch.wait.max.ms=10", "debug=");
        for args in [
            &["--client-config", a, "--client-config", b, "produce"][..],
            &["produce", "--client-config", a, "--client-config", b],
        ] {
            let cli = parse(args).expect("parses");
            assert_eq!(cli.global.client_config, want);
        }
        assert!(parse(&["produce", "--client-config", "novalue"]).is_err());
        assert!(parse(&["produce", "--client-config", "=x"]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["produce", "--acks", "2"][..],
            &["produce", "--compression", "brotli"],
            &["produce", "--producers", "0"],
            &["produce", "--partitions", "0"],
            &["produce", "--replication-factor", "0"],
            &["produce", "--replication-factor", "40000"],
            &["produce", "--min-insync-replicas", "0"],
            &["produce", "--count", "0"],
            &["produce", "--message-size", "x"],
            &["latency", "--rate", "0"],
            &["consume", "--consumers", "-1"],
            &["nonsense"],
            &[],
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
