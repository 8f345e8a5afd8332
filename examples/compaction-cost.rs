//! What compaction costs: a compacted partition log on real files (`FileStorage`) filled
//! with keyed records, then one cleaning pass over its closed segments, timed. Prints the
//! cleaner's read rate (MB/s of segments read), what it wrote, and the swap time.
//!
//!   cargo run --release --example compaction-cost -- [MiB] [keys] [value bytes] [cold]
//!
//! Defaults: 512 MiB of 1 KiB values over 100,000 keys in 64 MiB segments. The segments
//! were just written, so they are read from the page cache (the cleaner's CPU rate)
//! unless `cold` is given, which drops the page cache first (needs root).

use std::sync::Arc;
use std::time::Instant;

use broker::storage::batch_builder::build_batch;
use broker::storage::cleaner::CleanerLimits;
use broker::storage::{CompactionConfig, FileStorage, LogConfig, PartitionLog, Storage};

/// One timed cleaning pass over a compacted partition log on real files.
#[derive(clap::Parser)]
#[command(name = "compaction-cost")]
struct Args {
    /// MiB of records written before the pass.
    #[arg(default_value_t = 512)]
    mib: u64,
    /// Distinct keys.
    #[arg(default_value_t = 100_000)]
    keys: u64,
    /// Bytes per value.
    #[arg(default_value_t = 1024)]
    value_bytes: usize,
    /// Write `cold` to drop the page cache before the pass (needs root).
    #[arg(value_parser = ["cold"])]
    cold: Option<String>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let cold = args.cold.is_some();
    let (mib, keys, value_len) = (args.mib, args.keys, args.value_bytes);
    let dir = tempfile::tempdir().expect("temp dir");
    let storage: Arc<dyn Storage> = Arc::new(FileStorage);
    let config = LogConfig {
        compaction: Some(CompactionConfig {
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.0,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }),
        delete: false,
        ..LogConfig::keep_all(64 << 20, 4096, 1 << 20)
    };
    let (mut log, _) =
        PartitionLog::open(storage.clone(), dir.path().join("c-0"), config).expect("open the log");

    let value = vec![b'v'; value_len];
    let per_batch = 16;
    let target = mib << 20;
    let mut written = 0u64;
    let mut record = 0u64;
    let t = Instant::now();
    while written < target {
        let names: Vec<String> = (0..per_batch)
            .map(|i| format!("key-{:09}", (record + i) % keys))
            .collect();
        let records: Vec<_> = names
            .iter()
            .map(|k| (Some(k.as_bytes()), Some(value.as_slice())))
            .collect();
        let mut batch = build_batch(&records, 1_700_000_000_000 + record as i64);
        written += batch.len() as u64;
        record += per_batch;
        log.append(&mut batch).expect("append");
    }
    log.flush().expect("flush");
    println!(
        "filled {:.0} MiB ({record} records over {keys} keys) in {:.1} s",
        written as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    if cold {
        std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop the page cache (root)");
        println!("dropped the page cache");
    }
    let high_watermark = log.log_end_offset();
    let job = log
        .clean_plan(
            i64::MAX / 2,
            high_watermark,
            CleanerLimits {
                map_bytes: 128 << 20,
                io_bytes_per_second: 0,
            },
        )
        .expect("a pass is due");
    let t = Instant::now();
    let outcome = job.run(storage.as_ref()).expect("cleaning pass");
    let pass = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stats = log.install_cleaned(&outcome).expect("swap");
    let swap = t.elapsed().as_secs_f64();
    println!(
        "cleaned {} segments: read {:.0} MB in {:.2} s = {:.0} MB/s, \
         {:.1} MB kept, {} records removed; swap {:.1} ms",
        stats.segments,
        outcome.bytes_read as f64 / 1e6,
        pass,
        outcome.bytes_read as f64 / 1e6 / pass,
        stats.bytes_after as f64 / 1e6,
        outcome.records_removed,
        swap * 1e3
    );
}
