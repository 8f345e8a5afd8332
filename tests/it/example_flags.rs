//! The example programs parse their flags with clap: `--help` prints usage and exits 0, and
//! an unknown flag is a usage error (exit 2), never a panic with a backtrace.
//!
//! `cargo test` builds the examples beside the test binaries (target/<profile>/examples),
//! which is where these tests find them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const EXAMPLES: &[&str] = &[
    "broker-torture",
    "compaction-cost",
    "fetch-sessions-cost",
    "fuzz",
    "retention-timers",
    "seam-cost",
    "throughput",
];

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/it-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test` (which builds the examples) or `cargo build --examples`",
        path.display()
    );
    path
}

/// Runs the example, killing it if it has not exited within 20 s (a flag that was not
/// understood could otherwise start a benchmark).
fn run(name: &str, arg: &str) -> Output {
    let mut child = Command::new(example(name))
        .arg(arg)
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the example");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} {arg} was still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn every_example_prints_usage_for_help() {
    for name in EXAMPLES {
        let out = run(name, "--help");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name} --help: {stderr}");
        assert!(
            stdout.contains(&format!("Usage: {name}")),
            "{name} --help printed: {stdout}"
        );
        assert!(!stderr.contains("panicked"), "{name} --help: {stderr}");
    }
}

#[test]
fn every_example_refuses_an_unknown_flag_with_a_usage_error() {
    for name in EXAMPLES {
        let out = run(name, "--no-such-flag");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name} --no-such-flag: {stderr}"
        );
        assert!(
            stderr.contains("unexpected argument"),
            "{name} --no-such-flag: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}
