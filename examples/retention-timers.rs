//! What the partitions' retention timers cost an idle broker: starts the broker binary
//! twice with a topic of `--partitions` partitions (one record in each), once with the
//! retention check every hour (the baseline: no check falls in the window) and once every
//! `--interval-ms`, and reads the process's CPU time (/proc/<pid>/stat) over `--seconds`
//! of idling. Prints CPU % of one core for both and the cost per partition check.
//!
//!   cargo build --release --bins --examples
//!   target/release/examples/retention-timers --broker target/release/broker

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

struct Run {
    cpu_seconds: f64,
    wall_seconds: f64,
}

/// CPU an idle broker spends on its partitions' retention checks.
#[derive(clap::Parser)]
#[command(name = "retention-timers")]
struct Args {
    /// The broker binary.
    #[arg(long, default_value = "target/release/broker")]
    broker: String,
    /// Partitions of the idle topic.
    #[arg(long, default_value_t = 1000)]
    partitions: i32,
    /// Retention check interval of the measured run.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Idle seconds measured per run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

fn main() {
    let Args {
        broker,
        partitions,
        interval_ms,
        seconds,
    } = <Args as clap::Parser>::parse();
    let baseline = run(&broker, partitions, 3_600_000, seconds);
    let timed = run(&broker, partitions, interval_ms, seconds);
    let checks = partitions as f64 * timed.wall_seconds * 1000.0 / interval_ms as f64;
    let extra = (timed.cpu_seconds
        - baseline.cpu_seconds * timed.wall_seconds / baseline.wall_seconds)
        .max(0.0);
    println!(
        "{partitions} idle partitions: baseline {:.2}% of a core; checking every {interval_ms} ms \
         {:.2}% of a core; {:.1} us of CPU per partition check ({checks:.0} checks)",
        100.0 * baseline.cpu_seconds / baseline.wall_seconds,
        100.0 * timed.cpu_seconds / timed.wall_seconds,
        extra * 1e6 / checks
    );
    println!(
        "at Kafka's default interval (300 s) that is {:.4}% of a core",
        100.0 * extra / timed.wall_seconds * interval_ms as f64 / 300_000.0
    );
}

fn run(broker: &str, partitions: i32, interval_ms: u64, seconds: u64) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[log]\nretention_check_interval_ms = {interval_ms}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(broker)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the broker");
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&bootstrap).is_err() {
        assert!(Instant::now() < deadline, "broker not listening in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    rt.block_on(admin.create_topics(
        &[NewTopic::new(
            "idle",
            partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ))
    .unwrap()[0]
        .clone()
        .expect("topic created");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    rt.block_on(async {
        let sends: Vec<_> = (0..partitions)
            .map(|p| {
                producer.send(
                    FutureRecord::<(), _>::to("idle").partition(p).payload("x"),
                    Duration::from_secs(30),
                )
            })
            .collect();
        for send in sends {
            send.await.expect("delivered");
        }
    });
    drop(producer);
    drop(admin);
    let start_cpu = cpu_seconds(&child);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds)); // the measured idle window
    let cpu = cpu_seconds(&child) - start_cpu;
    let wall = started.elapsed().as_secs_f64();
    stop(&mut child);
    Run {
        cpu_seconds: cpu,
        wall_seconds: wall,
    }
}

/// utime + stime of the process, in seconds (clock ticks of 100 Hz on Linux).
fn cpu_seconds(child: &Child) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).expect("stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
