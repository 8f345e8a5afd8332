//! What `compression.type` costs when it differs from the producer's codec: one batch of
//! JSON-like records recompressed from each codec to each other one, as the broker does
//! before an append (`storage::recompression::recompress_batch`, on one thread). Prints,
//! per batch size and codec pair, the rate in MB/s of uncompressed records and the CPU
//! time per MB, as a Markdown table for docs/PERFORMANCE.md.
//!
//!   cargo run --release --example recompression-cost -- [--mib 64] [--record-bytes 1024]
//!
//! MB is 10^6 bytes of records as the producer wrote them (before compression), so the
//! figures compare across codecs. Each pair runs until `--mib` MiB went through it.

use std::time::{Duration, Instant};

use clap::Parser;

use broker::storage::batch::validate_batch;
use broker::storage::batch_builder::build_batch;
use broker::storage::recompression::{recompress_batch, GZIP, LZ4, SNAPPY, UNCOMPRESSED, ZSTD};

#[derive(Parser)]
#[command(about = "Times recompression between every pair of Kafka codecs")]
struct Args {
    /// MiB of uncompressed records to push through each codec pair.
    #[arg(long, default_value_t = 64)]
    mib: u64,
    /// Bytes per record value (JSON-like text).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Batch sizes in bytes (uncompressed), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [16 * 1024, 1024 * 1024])]
    batch_bytes: Vec<usize>,
}

const CODECS: [(u8, &str); 5] = [
    (UNCOMPRESSED, "uncompressed"),
    (GZIP, "gzip"),
    (SNAPPY, "snappy"),
    (LZ4, "lz4"),
    (ZSTD, "zstd"),
];

/// A JSON-like event of about `len` bytes: repeated field names, varying ids, a few
/// words from a small vocabulary, as application logs and events look (compresses
/// roughly 4-8x, like real ones).
fn record(i: u64, len: usize, seed: &mut u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "checkout", "login", "search", "payment", "cart", "error", "retry", "mobile", "web",
        "eu-west", "us-east", "premium", "basic", "click", "view", "timeout",
    ];
    let mut next = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    };
    let mut s = format!(
        "{{\"event_id\":{i},\"user_id\":{},\"session\":\"{:016x}\",\"ts\":{},\"fields\":[",
        next() % 1_000_000,
        next(),
        1_700_000_000_000u64 + i * 17
    );
    while s.len() + 40 < len {
        let w = WORDS[(next() % 16) as usize];
        s.push_str(&format!("{{\"k\":\"{w}\",\"v\":{}}},", next() % 10_000));
    }
    s.push_str("{}]}");
    s.into_bytes()
}

fn main() {
    let args = Args::parse();
    let profile = if cfg!(debug_assertions) {
        "debug (not for the record)"
    } else {
        "release"
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "recompression cost, {profile} build, {cpu}, {cores} cores, {} B records, {} MiB per pair\n",
        args.record_bytes, args.mib
    );
    println!("| batch | from | to | MB/s | ms per MB | stored / uncompressed |");
    println!("|---|---|---|---|---|---|");
    let mut seed = 42u64;
    for &batch_bytes in &args.batch_bytes {
        let values: Vec<Vec<u8>> = (0..(batch_bytes / args.record_bytes).max(1) as u64)
            .map(|i| record(i, args.record_bytes, &mut seed))
            .collect();
        let keys: Vec<String> = (0..values.len()).map(|i| format!("user-{i}")).collect();
        let records: Vec<_> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice())))
            .collect();
        let plain = build_batch(&records, 1_700_000_000_000);
        let max = plain.len() * 2 + 4096;
        let plain_header = validate_batch(&plain).expect("a built batch is valid");
        for (from, from_name) in CODECS {
            let source = if from == UNCOMPRESSED {
                plain.clone()
            } else {
                recompress_batch(&plain, &plain_header, from, max).expect("compresses")
            };
            let header = validate_batch(&source).expect("a recompressed batch is valid");
            for (to, to_name) in CODECS {
                if to == from {
                    continue;
                }
                let target = args.mib << 20;
                let mut done = 0u64;
                let mut elapsed = Duration::ZERO;
                let mut stored = 0usize;
                while done < target {
                    let t = Instant::now();
                    let out = recompress_batch(&source, &header, to, max).expect("recompresses");
                    elapsed += t.elapsed();
                    stored = out.len();
                    done += plain.len() as u64;
                }
                let mb = done as f64 / 1e6;
                let secs = elapsed.as_secs_f64();
                println!(
                    "| {} KiB | {from_name} | {to_name} | {:.0} | {:.2} | {:.2} |",
                    batch_bytes / 1024,
                    mb / secs,
                    secs * 1000.0 / mb,
                    stored as f64 / plain.len() as f64
                );
            }
        }
    }
}
