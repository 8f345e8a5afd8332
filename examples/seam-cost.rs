//! What the storage seam costs: the same positioned writes and reads of 1 KiB blocks,
//! once straight through `std::fs::File` and once through `Arc<dyn LogFile>` from
//! `FileStorage` (the path every partition log takes), alternating rounds so both see the
//! same page cache. Prints MB/s for each and the ratio.
//!
//!   cargo run --release --example seam-cost

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use broker::storage::{FileStorage, LogFile, Storage};

const BLOCK: usize = 1024;
const BLOCKS: usize = 200_000;
const ROUNDS: usize = 5;

/// What the storage seam costs against plain `std::fs::File` calls. Takes no arguments.
#[derive(clap::Parser)]
#[command(name = "seam-cost")]
struct Args {}

fn main() {
    let Args {} = <Args as clap::Parser>::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let block = vec![0x5au8; BLOCK];
    let mut read_buf = vec![0u8; BLOCK];
    let plain_path = dir.path().join("plain");
    let plain = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&plain_path)
        .expect("file");
    let seam: Arc<dyn LogFile> = FileStorage
        .open(&dir.path().join("seam"), true)
        .expect("file");
    let mut plain_secs = (0.0, 0.0);
    let mut seam_secs = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..BLOCKS {
            plain.write_all_at(&block, (i * BLOCK) as u64).unwrap();
        }
        plain_secs.0 += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..BLOCKS {
            seam.write_at(&block, (i * BLOCK) as u64).unwrap();
        }
        seam_secs.0 += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..BLOCKS {
            plain
                .read_exact_at(&mut read_buf, (i * BLOCK) as u64)
                .unwrap();
        }
        plain_secs.1 += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..BLOCKS {
            seam.read_exact_at(&mut read_buf, (i * BLOCK) as u64)
                .unwrap();
        }
        seam_secs.1 += t.elapsed().as_secs_f64();
    }
    let mb = (BLOCK * BLOCKS * ROUNDS) as f64 / 1e6;
    println!("{ROUNDS} rounds of {BLOCKS} positioned 1 KiB writes and reads");
    println!(
        "write: std::fs::File {:.0} MB/s, FileStorage seam {:.0} MB/s, seam/plain {:.3}",
        mb / plain_secs.0,
        mb / seam_secs.0,
        plain_secs.0 / seam_secs.0
    );
    println!(
        "read:  std::fs::File {:.0} MB/s, FileStorage seam {:.0} MB/s, seam/plain {:.3}",
        mb / plain_secs.1,
        mb / seam_secs.1,
        plain_secs.1 / seam_secs.1
    );
}
