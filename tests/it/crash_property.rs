//! Seeded crash tests of the partition log over the fault-injecting storage: random
//! appends (sizes, codecs, several producers), flushes, and a crash at a random moment
//! (a power cut, possibly in the middle of a torn write). After recovery every batch that
//! a flush had covered is there byte for byte, offsets are contiguous, nothing appears
//! twice, and the indexes agree with the log. A failure prints its seed;
//! `CRASH_SEED=<seed> cargo test --test it crash_property` replays exactly that case.

use std::path::PathBuf;
use std::sync::Arc;

use broker::storage::batch::{split_batches, BatchHeader};
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;
use broker::storage::{LogConfig, PartitionLog, Storage};

/// splitmix64: small, deterministic, good enough to drive a test.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A batch from one of several producers, with a codec id in its attributes (the log
/// never decompresses, so the bytes only have to be a valid, CRC-correct batch).
fn random_batch(rng: &mut Rng, producer: i64, sequence: i32) -> Vec<u8> {
    let count = 1 + rng.below(8) as usize;
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| vec![(i as u8).wrapping_add(sequence as u8); rng.below(900) as usize])
        .collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let mut batch = build_batch(&records, 1_000_000 + rng.below(1000) as i64);
    let codec = rng.below(5) as i16;
    batch[21..23].copy_from_slice(&codec.to_be_bytes());
    batch[43..51].copy_from_slice(&producer.to_be_bytes());
    batch[51..53].copy_from_slice(&0i16.to_be_bytes());
    batch[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn config(rng: &mut Rng) -> LogConfig {
    LogConfig::keep_all(2_000 + rng.below(20_000), 1 + rng.below(4_000), 1 << 20)
}

/// Everything in the log, as (header, bytes) in offset order.
fn read_all(log: &PartitionLog) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let read = log.read(next, end, 1 << 16, true).expect("read");
        assert!(read.batches > 0, "no progress reading at {next}");
        for (h, range) in split_batches(&read.records, usize::MAX).expect("whole batches") {
            out.push((h, read.records[range].to_vec()));
            next = h.next_offset();
        }
    }
    out
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = PathBuf::from("/data/t-0");
    let cfg = config(&mut rng);
    // The batches a flush covered, by base offset: these must survive every crash.
    let mut promised: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut sequences = [0i32; 3];
    for cycle in 0..4 {
        let (mut log, _) = PartitionLog::open(storage.clone(), dir.clone(), cfg.clone())
            .unwrap_or_else(|e| panic!("seed {seed} cycle {cycle}: open failed: {e}"));
        check(seed, cycle, &log, &promised);
        let mut written: Vec<(i64, Vec<u8>)> = Vec::new();
        let ops = 1 + rng.below(60);
        for _ in 0..ops {
            match rng.below(10) {
                0..=6 => {
                    let producer = rng.below(3) as usize;
                    let mut batch =
                        random_batch(&mut rng, producer as i64 + 1, sequences[producer]);
                    sequences[producer] += 1;
                    if let Ok(info) = log.append(&mut batch) {
                        written.push((info.base_offset, batch));
                    }
                }
                7..=8 => {
                    if let Some(job) = log.begin_flush() {
                        let result = job.run();
                        if log.complete_flush(job.up_to, result).is_ok() {
                            let flushed = log.flushed_offset();
                            promised.extend(written.iter().filter(|(o, _)| *o < flushed).cloned());
                            written.retain(|(o, _)| *o >= flushed);
                        }
                    }
                }
                _ => sim.torn_write_after(rng.below(400)),
            }
        }
        drop(log);
        sim.clear_faults();
        sim.power_cut();
    }
    let (log, _) = PartitionLog::open(storage, dir, cfg).expect("final open");
    check(seed, 99, &log, &promised);
}

fn check(seed: u64, cycle: u64, log: &PartitionLog, promised: &[(i64, Vec<u8>)]) {
    let all = read_all(log);
    let mut next = log.log_start_offset();
    for (h, _) in &all {
        assert_eq!(
            h.base_offset, next,
            "seed {seed} cycle {cycle}: offsets not contiguous"
        );
        next = h.next_offset();
    }
    assert_eq!(next, log.log_end_offset(), "seed {seed} cycle {cycle}");
    for (offset, bytes) in promised {
        let found = all.iter().find(|(h, _)| h.base_offset == *offset);
        assert_eq!(
            found.map(|(_, b)| b),
            Some(bytes),
            "seed {seed} cycle {cycle}: flushed batch at offset {offset} lost or changed"
        );
    }
    let problems = log.verify_indexes();
    assert!(
        problems.is_empty(),
        "seed {seed} cycle {cycle}: {problems:?}"
    );
}

#[test]
fn crash_anywhere_keeps_every_flushed_batch() {
    if let Ok(seed) = std::env::var("CRASH_SEED") {
        run(seed.parse().expect("CRASH_SEED is a number"));
        return;
    }
    let cases: u64 = std::env::var("CRASH_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    for seed in 0..cases {
        run(seed);
    }
}
