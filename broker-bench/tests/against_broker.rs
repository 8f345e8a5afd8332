//! The bench binary against the project's own broker: produce, consume and latency runs,
//! their JSON results and the SVG. Builds nothing: the broker binary must already exist
//! (`cargo build --bins` at the workspace root, or BROKER_BIN). Every wait is bounded.

use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BROKER_READY: Duration = Duration::from_secs(30);
const BROKER_STOP: Duration = Duration::from_secs(20);
const BENCH_RUN: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);

fn broker_bin() -> PathBuf {
    match std::env::var_os("BROKER_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/broker"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `child` until it exits or `limit` passes.
fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

struct Broker {
    child: Child,
    log: PathBuf,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Broker {
        let bin = broker_bin();
        assert!(
            bin.is_file(),
            "no broker binary at {}: run `cargo build --bins` at the workspace root first \
             (or point BROKER_BIN at one)",
            bin.display()
        );
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n",
                dir.join("data").display()
            ),
        )
        .expect("config written");
        let log = dir.join("broker.log");
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut broker = Broker { child, log };
        let deadline = Instant::now() + BROKER_READY;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("broker exited at start with {status}:\n{}", broker.logs());
            }
            assert!(
                Instant::now() < deadline,
                "broker not listening within {BROKER_READY:?}:\n{}",
                broker.logs()
            );
            std::thread::sleep(POLL);
        }
        broker
    }

    fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM through `kill`, then a bounded wait; SIGKILL if it does not go.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = wait_for_exit(&mut self.child, BROKER_STOP);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = wait_for_exit(&mut self.child, BROKER_STOP);
        }
        status
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the bench binary with `args` in `dir`; panics with its output unless it succeeds.
fn bench(dir: &Path, name: &str, args: &[&str]) -> String {
    let (out, err) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_broker-bench"))
        .args(args)
        .current_dir(dir)
        .stdout(File::create(&out).expect("stdout file"))
        .stderr(File::create(&err).expect("stderr file"))
        .spawn()
        .expect("bench starts");
    let status = wait_for_exit(&mut child, BENCH_RUN);
    if status.is_none() {
        let _ = child.kill();
        let _ = wait_for_exit(&mut child, BROKER_STOP);
    }
    let stdout = fs::read_to_string(&out).unwrap_or_default();
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    match status {
        Some(s) if s.success() => stdout,
        Some(s) => panic!("broker-bench {args:?} exited with {s}\n{stdout}\n{stderr}"),
        None => {
            panic!("broker-bench {args:?} still running after {BENCH_RUN:?}\n{stdout}\n{stderr}")
        }
    }
}

fn json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn produce_consume_and_latency_against_the_broker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port);
    let bootstrap = format!("127.0.0.1:{port}");
    let at = |name: &str| dir.path().join(name).display().to_string();

    let summary = bench(
        dir.path(),
        "produce",
        &[
            "--bootstrap",
            &bootstrap,
            "produce",
            "--count",
            "20000",
            "--acks",
            "1",
            "--json",
            &at("out.json"),
            "--svg",
            &at("out.svg"),
        ],
    );
    assert!(
        summary.contains("msg/s") && summary.contains("MB/s"),
        "{summary}"
    );
    let produce = json(&dir.path().join("out.json"));
    assert_eq!(produce["workload"], "produce");
    assert_eq!(produce["messages"], 20000, "{produce}");
    assert_eq!(produce["bytes"], 20000 * 100, "{produce}");
    assert_eq!(produce["errors"], 0, "{produce}");
    assert_eq!(produce["complete"], true, "{produce}");
    assert!(produce["latency_us"]["p99"].as_u64().is_some(), "{produce}");
    assert!(produce["timeline"].is_array(), "{produce}");
    let svg = fs::read_to_string(dir.path().join("out.svg")).expect("svg written");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "not an SVG: {}",
        &svg[..svg.len().min(200)]
    );

    bench(
        dir.path(),
        "consume",
        &[
            "--bootstrap",
            &bootstrap,
            "consume",
            "--count",
            "20000",
            "--json",
            &at("consume.json"),
        ],
    );
    let consume = json(&dir.path().join("consume.json"));
    assert_eq!(consume["workload"], "consume");
    assert_eq!(consume["fill"]["messages"], 20000, "{consume}");
    assert_eq!(consume["messages"], 20000, "{consume}");
    assert_eq!(consume["errors"], 0, "{consume}");
    assert!(consume["latency_us"].is_null(), "{consume}");

    bench(
        dir.path(),
        "latency",
        &[
            "--bootstrap",
            &bootstrap,
            "latency",
            "--rate",
            "500",
            "--duration",
            "3",
            "--json",
            &at("latency.json"),
        ],
    );
    let latency = json(&dir.path().join("latency.json"));
    assert_eq!(latency["workload"], "latency");
    assert_eq!(latency["produced"]["messages"], 1500, "{latency}");
    assert_eq!(latency["messages"], 1500, "{latency}");
    assert_eq!(latency["errors"], 0, "{latency}");
    let p = &latency["latency_us"];
    let (p50, max) = (p["p50"].as_u64(), p["max"].as_u64());
    assert!(
        p50.zip(max).is_some_and(|(a, b)| a <= b),
        "latency percentiles: {p}"
    );

    let status = broker.stop();
    assert!(
        status.is_some(),
        "the broker did not stop within {BROKER_STOP:?} of SIGTERM:\n{}",
        broker.logs()
    );
}
