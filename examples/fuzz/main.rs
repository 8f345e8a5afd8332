//! A seeded mutation fuzzer for the broker's byte-facing code (cargo-fuzz needs a nightly
//! toolchain, which this project's machines do not have).
//!
//! Targets:
//! - `frame`: a request frame body through the header check, the version gate, the codec
//!   and the real dispatch (a broker over the simulated disk), then the response encoder.
//! - `batch`: the record batch parser and checks, then an append to a partition log.
//! - `recovery`: arbitrary bytes as a segment file, then log recovery, a full read, the
//!   index check and `broker check`.
//! - `sasl`: what one client writes to a SASL_PLAINTEXT listener (see `sasl.rs`): no
//!   panic anywhere, and nothing but ApiVersions and SASL served before authentication.
//!
//! The corpus also holds the hostile shapes of `hostile` (repeated partitions with huge
//! limits, invalid acks, nested compression, giant config values and offset metadata).
//!
//! Inputs are the corpus files in `fuzz/corpus/<target>/` and mutations of them (bit
//! flips, byte stores, interesting integers, insertions, deletions, splices). A panic is a
//! failure: the input is written to `fuzz/crashes/` and the seed printed. No hang: every
//! input must finish within a bound.
//!
//!   cargo run --release --example fuzz -- --target all --seconds 60
//!   cargo run --example fuzz -- --target all --execs 2000     (CI)
//!   cargo run --example fuzz -- --write-corpus                 (regenerate the seeds)

mod corpus;
mod hostile;
mod sasl;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::protocol::{dispatch, frame, versions, BrokerContext};
use broker::storage::batch::split_batches;
use broker::storage::sim::SimStorage;
use broker::storage::{LogConfig, PartitionLog, Storage};

/// No allocation beyond the configured limits: the largest request frame is 100 MiB, so
/// any single allocation above 128 MiB while fuzzing is a finding. It is refused (the
/// process then stops with the allocator's message, which fails the run) and recorded.
struct Bounded;

const ALLOCATION_LIMIT: usize = 128 * 1024 * 1024;
static LARGEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, std::sync::atomic::Ordering::Relaxed);
        if new_size > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[i64] = &[
    0,
    1,
    -1,
    2,
    7,
    8,
    127,
    128,
    255,
    256,
    32767,
    -32768,
    65535,
    0x7fff_ffff,
    -0x8000_0000,
    0x7fff_ffff_ffff_ffff,
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1usize, 2, 4, 8][rng.below(4)];
                let at = rng.below(len);
                let bytes = value.to_be_bytes();
                for (k, b) in bytes[8 - width..].iter().enumerate() {
                    if at + k < len {
                        input[at + k] = *b;
                    }
                }
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, fill);
            }
            4 if len > 1 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                input.drain(at..at + n);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let at = rng.below(len + 1);
                    input.truncate(at);
                    input.extend_from_slice(&other[from..]);
                }
            }
            _ if len > 0 => input.truncate(rng.below(len)),
            _ => input.push(rng.next() as u8),
        }
    }
}

/// Recomputes the CRC of every batch whose length fits, so mutations of the header reach
/// the code behind the CRC check.
fn fix_crcs(input: &mut [u8]) {
    let mut pos = 0usize;
    while pos + 61 <= input.len() {
        let length = i32::from_be_bytes([
            input[pos + 8],
            input[pos + 9],
            input[pos + 10],
            input[pos + 11],
        ]);
        let end = pos + 12 + length.max(0) as usize;
        if length < 49 || end > input.len() {
            return;
        }
        let crc = crc32c::crc32c(&input[pos + 21..end]);
        input[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

// ---- targets ----

struct FrameTarget {
    runtime: tokio::runtime::Runtime,
    ctx: BrokerContext,
    /// Inputs that decoded and were dispatched (the rest were refused earlier, as bad
    /// frames are: that path is exercised too).
    dispatched: std::cell::Cell<u64>,
}

impl FrameTarget {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: "/data".into(),
            ..Config::default()
        };
        let broker = runtime
            .block_on(Broker::start(config.clone(), Arc::new(SimStorage::new())))
            .expect("broker");
        let ctx = broker.context();
        std::mem::forget(broker); // lives for the whole run
        FrameTarget {
            runtime,
            ctx,
            dispatched: std::cell::Cell::new(0),
        }
    }

    fn run(&self, input: &[u8]) {
        let Ok(prefix) = frame::peek_prefix(input) else {
            return;
        };
        let Ok(api) = ApiKey::try_from(prefix.api_key) else {
            return;
        };
        if !versions::is_supported(api, prefix.api_version) {
            return;
        }
        let Ok((_, mut request)) =
            frame::decode_request(api, prefix.api_version, Bytes::copy_from_slice(input))
        else {
            return;
        };
        // Topic changes of arbitrary size are decoded only: dispatching them would create
        // up to 100,000 partitions per input, which is slow by design, not a bug.
        if matches!(
            request,
            RequestKind::CreateTopics(_)
                | RequestKind::CreatePartitions(_)
                | RequestKind::DeleteTopics(_)
        ) {
            return;
        }
        // A long poll may wait as long as the client asked; the fuzzer asks for none.
        if let RequestKind::Fetch(fetch) = &mut request {
            fetch.max_wait_ms = 0;
        }
        let version = prefix.api_version;
        self.dispatched.set(self.dispatched.get() + 1);
        let ctx = self.ctx.clone();
        self.runtime.block_on(async move {
            let prepared = tokio::time::timeout(
                Duration::from_secs(5),
                dispatch::prepare(&ctx, version, request, &Default::default()),
            )
            .await
            .expect("prepare finishes (no hang)");
            let Some(prepared) = prepared else { return };
            let response = tokio::time::timeout(Duration::from_secs(5), prepared.response)
                .await
                .expect("the response finishes (no hang)");
            frame::encode_response(api, version, prefix.correlation_id, &response)
                .expect("every response the broker builds encodes");
        });
    }
}

fn batch_target(input: &[u8]) {
    if let Ok(batches) = split_batches(input, 1 << 20) {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let config = LogConfig::keep_all(4096, 64, 1 << 20);
        let (mut log, _) = PartitionLog::open(storage, "/b/t-0".into(), config).unwrap();
        for (_, range) in batches {
            let mut bytes = input[range].to_vec();
            log.append(&mut bytes).expect("a checked batch appends");
        }
        let end = log.log_end_offset();
        log.read(0, end, usize::MAX, true).expect("reads back");
    }
}

fn recovery_target(input: &[u8]) {
    let sim = SimStorage::new();
    let dir = PathBuf::from("/data/t-0");
    sim.create_dir_all(&dir).unwrap();
    sim.set_file_contents(&dir.join("00000000000000000000.log"), input.to_vec());
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let config = LogConfig::keep_all(1 << 20, 128, 1 << 20);
    let report =
        broker::check::check(storage.clone(), Path::new("/data"), false).expect("check reads");
    let (log, recovered) =
        PartitionLog::open(storage.clone(), dir, config).expect("recovery opens any bytes");
    assert_eq!(
        report.batches, recovered.batches,
        "check and recovery agree on whole batches"
    );
    let end = log.log_end_offset();
    let mut next = 0;
    while next < end {
        let read = log
            .read(next, end, 1 << 16, true)
            .expect("recovered data reads");
        let batches = split_batches(&read.records, usize::MAX).expect("whole batches");
        next = batches
            .last()
            .map(|(h, _)| h.next_offset())
            .expect("progress");
    }
    assert!(log.verify_indexes().is_empty());
    drop(log);
    let after = broker::check::check(storage, Path::new("/data"), false).expect("check reads");
    assert!(
        after.problems.is_empty(),
        "recovered log checks clean: {:?}",
        after.problems
    );
}

/// A seeded mutation fuzzer over the broker's frame decoding, batch validation, log
/// recovery and SASL exchange.
#[derive(clap::Parser)]
#[command(name = "fuzz")]
struct Args {
    /// What to fuzz.
    #[arg(long, default_value = "all", value_parser = ["all", "frame", "batch", "recovery", "sasl"])]
    target: String,
    /// Stop after this many executions per target.
    #[arg(long)]
    execs: Option<u64>,
    /// Stop after this many seconds per target.
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of the mutations; the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Regenerate the seed corpus and exit.
    #[arg(long)]
    write_corpus: bool,
}

fn main() {
    let Args {
        target,
        execs,
        seconds,
        seed,
        write_corpus: rewrite,
    } = <Args as clap::Parser>::parse();
    if rewrite {
        return corpus::write_corpus();
    }
    let targets: Vec<&str> = match target.as_str() {
        "all" => vec!["frame", "batch", "recovery", "sasl"],
        t => vec![t],
    };
    // Panics are the findings: keep the default hook quiet, report them ourselves. The
    // count catches those of the broker's own tasks and actors too (the sasl target).
    static PANICS: AtomicU64 = AtomicU64::new(0);
    std::panic::set_hook(Box::new(|_| {
        PANICS.fetch_add(1, Ordering::SeqCst);
    }));
    let mut failed = false;
    for t in targets {
        let corpus = load_corpus(t);
        assert!(
            !corpus.is_empty(),
            "no corpus for {t}: run with --write-corpus"
        );
        let frame_target = (t == "frame").then(FrameTarget::new);
        let sasl_target = (t == "sasl").then(|| sasl::SaslTarget::new(&PANICS));
        let run = |input: &[u8]| match t {
            "frame" => frame_target.as_ref().unwrap().run(input),
            "sasl" => sasl_target.as_ref().unwrap().run(input),
            "batch" => batch_target(input),
            "recovery" => recovery_target(input),
            other => panic!("unknown target {other}"),
        };
        let mut rng = Rng(seed);
        let started = Instant::now();
        let mut count = 0u64;
        let limit_execs = execs.unwrap_or(if seconds.is_some() { u64::MAX } else { 2000 });
        // Each sasl input is a TCP connection, about 20 times the cost of the others: it
        // runs a tenth of --execs (all of them with --target sasl).
        let limit_execs = if t == "sasl" && target == "all" {
            limit_execs / 10
        } else {
            limit_execs
        };
        let limit_time = Duration::from_secs(seconds.unwrap_or(u64::MAX / 4));
        while count < limit_execs && started.elapsed() < limit_time {
            let mut input = corpus[rng.below(corpus.len())].clone();
            if count >= corpus.len() as u64 {
                mutate(&mut rng, &mut input, &corpus);
                if t != "frame" && t != "sasl" && rng.below(2) == 0 {
                    fix_crcs(&mut input);
                }
            }
            let begun = Instant::now();
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| run(&input))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("fuzz/crashes")
                    .join(t);
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("seed-{seed}-exec-{count}.bin"));
                let _ = std::fs::write(&file, &input);
                println!(
                    "{t}: PANIC at execution {count} (seed {seed}): {why}; input saved to {}",
                    file.display()
                );
                failed = true;
                break;
            }
            assert!(
                begun.elapsed() < Duration::from_secs(10),
                "{t}: one input took {:?}",
                begun.elapsed()
            );
            count += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let dispatched = frame_target
            .as_ref()
            .map(|f| format!(", {} decoded and dispatched", f.dispatched.get()))
            .or_else(|| {
                let s = sasl_target.as_ref()?;
                Some(format!(
                    ", {} with requests of other APIs before authentication",
                    s.early_requests.get()
                ))
            })
            .unwrap_or_default();
        println!(
            "{t}: {count} executions in {elapsed:.1} s ({:.0}/s){dispatched}, largest allocation so far {} KiB, seed {seed}",
            count as f64 / elapsed.max(1e-9),
            LARGEST.load(std::sync::atomic::Ordering::Relaxed) / 1024
        );
    }
    if failed {
        std::process::exit(1);
    }
}
