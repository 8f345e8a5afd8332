//! The log cleaner of a compacted topic: one pass over a partition's closed segments,
//! keeping at least the latest record of every key (Kafka's LogCleaner, simplified).
//!
//! Runs on a blocking thread, never on the partition actor: it reads the segments through
//! their own file handles and writes `<base>.log.cleaned` files beside them, fsynced. The
//! partition actor then swaps them in (`log::compaction`). Memory is bounded: the map from
//! key to latest offset holds at most `max_map_bytes`, and the dirty range ends at the
//! last segment it could map whole (the rest waits for the next pass). Files are read a
//! batch at a time.
//!
//! Kept whole: control and transactional batches, and each producer's last batch (so
//! idempotent producer state survives). A record is dropped when a later record of its key
//! is in the mapped range, or when it is a tombstone older than `delete.retention.ms`.
//! Batches keep their base offset, last offset delta, timestamps, producer fields and
//! codec; records keep their offsets, timestamps and headers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{validate_batch, BatchHeader, HEADER_SIZE};
use super::batch_records::{parse_records, rebuild};
use super::decompression::records_body;
use super::io::{LogFile, Storage};
use super::segment::file_name;
use super::StorageError;
use tracing::warn;

/// Per-entry overhead counted against the map's budget, beside the key bytes.
const ENTRY_OVERHEAD: usize = 64;

/// What one pass may use: memory for its key map and disk bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerLimits {
    /// Bytes of keys (plus a fixed overhead per key) the map may hold.
    pub map_bytes: usize,
    /// Bytes read plus written per second (0: no limit), as Kafka's
    /// log.cleaner.io.max.bytes.per.second.
    pub io_bytes_per_second: u64,
}

/// Keeps a pass at or under its I/O rate by sleeping on its own (blocking) thread once it
/// is ahead of the rate.
struct Throttle {
    limit: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(limit: u64) -> Throttle {
        Throttle {
            limit,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn note(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if self.limit == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.limit as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// One closed segment given to the cleaner.
#[derive(Debug, Clone)]
pub struct CleanInput {
    pub base_offset: i64,
    pub size: u64,
    pub next_offset: i64,
    /// Bytes of its offset and time indexes.
    pub index_bytes: u64,
    pub file: Arc<dyn LogFile>,
}

/// Kafka's default segment.index.bytes: a merged segment's indexes stay within it.
pub const MAX_INDEX_BYTES: u64 = 10 * 1024 * 1024;

/// Kafka's groupSegmentsBySize: consecutive segments share one cleaned segment while
/// their sizes add up to at most `max_bytes` (segment.bytes), their indexes to at most
/// `max_index_bytes`, and their offsets stay within i32::MAX of the first one's base
/// (the offset index holds offsets relative to it). Sizes before cleaning count, so a
/// group's output always fits.
pub fn group_by_size(
    inputs: &[&CleanInput],
    max_bytes: u64,
    max_index_bytes: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < inputs.len() {
        let first = inputs[start];
        let (mut bytes, mut index) = (first.size, first.index_bytes);
        let mut end = start + 1;
        while let Some(next) = inputs.get(end) {
            let span = next.next_offset - 1 - first.base_offset;
            if bytes + next.size > max_bytes
                || index + next.index_bytes > max_index_bytes
                || span > i32::MAX as i64
            {
                break;
            }
            bytes += next.size;
            index += next.index_bytes;
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

#[derive(Debug)]
pub struct CleanJob {
    pub dir: PathBuf,
    /// The closed segments that may be rewritten, in offset order.
    pub segments: Vec<CleanInput>,
    /// Offsets from here on have not been mapped by an earlier pass.
    pub dirty_from: i64,
    /// A batch expanding past this is kept whole, never decompressed further.
    pub max_records_bytes: usize,
    /// segment.bytes: small cleaned segments are merged up to this size.
    pub max_segment_bytes: u64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub limits: CleanerLimits,
}

/// One rewritten segment, replacing one or more consecutive ones: its `.cleaned` file
/// holds `size` bytes (0: nothing left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanedSegment {
    /// The first replaced segment's base offset, and so this one's.
    pub base_offset: i64,
    /// The replaced segments' base offsets and sizes when they were read; the swap checks
    /// they are unchanged.
    pub replaces: Vec<(i64, u64)>,
    /// The next offset of the last replaced segment: the replaced range ends here.
    pub next_offset: i64,
    pub size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CleanOutcome {
    pub segments: Vec<CleanedSegment>,
    /// Offsets below this are now clean (the next pass maps from here).
    pub cleaned_up_to: i64,
    pub bytes_read: u64,
    pub records_removed: u64,
}

/// Calls `f` for every whole batch of a segment, in order, reading one batch at a time.
fn for_each_batch(
    input: &CleanInput,
    throttle: &mut Throttle,
    mut f: impl FnMut(&[u8], &BatchHeader) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut pos = 0u64;
    let mut header = [0u8; HEADER_SIZE];
    let mut buf = Vec::new();
    let io = |e| StorageError::io(std::path::Path::new("segment"), e);
    while pos + HEADER_SIZE as u64 <= input.size {
        input.file.read_exact_at(&mut header, pos).map_err(io)?;
        let h = BatchHeader::parse(&header)?;
        if pos + h.total_size() as u64 > input.size {
            // Recovery checked the segment; a batch past its end means the file changed.
            return Err(StorageError::CorruptBatch(format!(
                "batch at offset {} runs past the segment's end",
                h.base_offset
            )));
        }
        buf.resize(h.total_size(), 0);
        input.file.read_exact_at(&mut buf, pos).map_err(io)?;
        let h = validate_batch(&buf)?;
        throttle.note(buf.len());
        f(&buf, &h)?;
        pos += h.total_size() as u64;
    }
    Ok(())
}

impl CleanJob {
    /// The batch's records decompressed within the bound, or None (logged) when they
    /// are not: such a batch was written before the bound existed or by another tool.
    fn body(&self, batch: &[u8], h: &BatchHeader) -> Option<Vec<u8>> {
        match records_body(batch, h, self.max_records_bytes) {
            Ok(body) => Some(body),
            Err(err) => {
                warn!(dir = %self.dir.display(), base_offset = h.base_offset, %err,
                    "The cleaner keeps a batch whole: its records do not decompress within the bound.");
                None
            }
        }
    }

    /// What a batch becomes: itself, a rebuilt batch of the records kept, or nothing.
    fn clean_batch(
        &self,
        batch: &[u8],
        h: &BatchHeader,
        latest: &HashMap<Vec<u8>, i64>,
        last_batch: &HashMap<i64, i64>,
        horizon: i64,
        outcome: &mut CleanOutcome,
    ) -> Result<Vec<u8>, StorageError> {
        let keep_whole = h.is_control()
            || h.is_transactional()
            || last_batch.get(&h.producer_id) == Some(&h.base_offset);
        let body = if keep_whole {
            None
        } else {
            self.body(batch, h)
        };
        let Some(body) = body else {
            return Ok(batch.to_vec());
        };
        let records = parse_records(&body)?;
        let kept: Vec<_> = records
            .iter()
            .filter(|r| {
                let Some(k) = &r.key else { return true };
                let offset = h.base_offset + r.offset_delta;
                let superseded = latest.get(&body[k.clone()]).is_some_and(|l| *l > offset);
                let expired_tombstone = r.tombstone && h.max_timestamp < horizon;
                !(superseded || expired_tombstone)
            })
            .collect();
        outcome.records_removed += (records.len() - kept.len()) as u64;
        Ok(if kept.len() == records.len() {
            batch.to_vec()
        } else if kept.is_empty() {
            Vec::new()
        } else {
            rebuild(batch, h, &body, &kept)?
        })
    }

    pub fn run(&self, storage: &dyn Storage) -> Result<CleanOutcome, StorageError> {
        let mut outcome = CleanOutcome::default();
        let mut throttle = Throttle::new(self.limits.io_bytes_per_second);
        // 1. Map each key of the dirty range to its latest offset, a segment at a time.
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut cleaned_up_to = self.dirty_from;
        for input in self
            .segments
            .iter()
            .filter(|s| s.next_offset > self.dirty_from)
        {
            let mut segment_keys: Vec<(Vec<u8>, i64)> = Vec::new();
            for_each_batch(input, &mut throttle, |batch, h| {
                outcome.bytes_read += batch.len() as u64;
                if h.is_control() || h.is_transactional() || h.last_offset() < self.dirty_from {
                    return Ok(());
                }
                // A batch that does not decompress within the bound is kept whole in
                // step 3 (keeping a record is always safe); its keys are not mapped.
                let Some(body) = self.body(batch, h) else {
                    return Ok(());
                };
                for r in parse_records(&body)? {
                    let offset = h.base_offset + r.offset_delta;
                    if let (Some(k), true) = (r.key, offset >= self.dirty_from) {
                        segment_keys.push((body[k].to_vec(), offset));
                    }
                }
                Ok(())
            })?;
            let added: usize = segment_keys
                .iter()
                .filter(|(k, _)| !latest.contains_key(k))
                .map(|(k, _)| k.len() + ENTRY_OVERHEAD)
                .sum();
            if map_bytes + added > self.limits.map_bytes && cleaned_up_to > self.dirty_from {
                break; // the rest waits for the next pass
            }
            map_bytes += added;
            latest.extend(segment_keys);
            cleaned_up_to = input.next_offset;
        }
        outcome.cleaned_up_to = cleaned_up_to;
        if cleaned_up_to <= self.dirty_from {
            return Ok(outcome);
        }
        let rewrite: Vec<&CleanInput> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < cleaned_up_to)
            .collect();
        // 2. Each producer's last batch is kept, so its sequence state survives.
        let mut last_batch: HashMap<i64, i64> = HashMap::new();
        for input in &rewrite {
            for_each_batch(input, &mut throttle, |_, h| {
                if h.producer_id >= 0 {
                    last_batch.insert(h.producer_id, h.base_offset);
                }
                Ok(())
            })?;
        }
        // 3. Rewrite every segment up to the end of the mapped range, small neighbours
        // merged into one.
        let horizon = self.now_ms.saturating_sub(self.delete_retention_ms);
        for group in group_by_size(&rewrite, self.max_segment_bytes, MAX_INDEX_BYTES) {
            let members = &rewrite[group];
            let base_offset = members[0].base_offset;
            let path = self
                .dir
                .join(format!("{}.cleaned", file_name(base_offset, "log")));
            let out = storage
                .open(&path, true)
                .map_err(|e| StorageError::io(&path, e))?;
            out.truncate(0).map_err(|e| StorageError::io(&path, e))?;
            let mut size = 0u64;
            let mut written_bytes = 0usize;
            for input in members {
                for_each_batch(input, &mut throttle, |batch, h| {
                    let written =
                        self.clean_batch(batch, h, &latest, &last_batch, horizon, &mut outcome)?;
                    if !written.is_empty() {
                        out.write_at(&written, size)
                            .map_err(|e| StorageError::io(&path, e))?;
                        size += written.len() as u64;
                        written_bytes += written.len();
                    }
                    Ok(())
                })?;
            }
            throttle.note(written_bytes);
            out.sync().map_err(|e| StorageError::io(&path, e))?;
            outcome.segments.push(CleanedSegment {
                base_offset,
                replaces: members.iter().map(|m| (m.base_offset, m.size)).collect(),
                next_offset: members[members.len() - 1].next_offset,
                size,
            });
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch_builder::{build_batch, build_compressed_batch};
    use crate::storage::sim::SimStorage;
    use kafka_protocol::records::Compression;
    use std::path::Path;

    /// A zstd batch at offset 0 of one record keyed "k" whose value is `zeros` zeros.
    fn zstd_batch(zeros: usize) -> Vec<u8> {
        let value = vec![0u8; zeros];
        build_compressed_batch(&[(Some(b"k"), Some(&value))], 1_000, Compression::Zstd)
    }

    #[test]
    fn groups_stay_within_the_segment_size_the_index_size_and_the_offset_span() {
        let sim = SimStorage::new();
        let file = sim.open(Path::new("/d/f"), true).unwrap();
        let input = |base_offset: i64, next_offset: i64, size: u64, index_bytes: u64| CleanInput {
            base_offset,
            size,
            next_offset,
            index_bytes,
            file: file.clone(),
        };
        let inputs = [
            input(0, 10, 300, 8),
            input(10, 20, 300, 8),
            input(20, 30, 300, 8),
            input(30, 40, 0, 0),
            input(40, 50, 700, 8),
        ];
        let refs: Vec<&CleanInput> = inputs.iter().collect();
        assert_eq!(group_by_size(&refs, 700, 1 << 20), vec![0..2, 2..4, 4..5]);
        assert_eq!(group_by_size(&refs, 700, 16), vec![0..2, 2..4, 4..5]);
        assert_eq!(group_by_size(&refs, 700, 8), vec![0..1, 1..2, 2..4, 4..5]);
        assert_eq!(
            group_by_size(&refs, 0, 1 << 20),
            vec![0..1, 1..2, 2..3, 3..4, 4..5]
        );
        // Offsets past i32::MAX from a group's base start a new group.
        let far = i32::MAX as i64;
        let inputs = [
            input(0, 10, 1, 0),
            input(10, far + 1, 1, 0),
            input(far + 1, far + 2, 1, 0),
        ];
        let refs: Vec<&CleanInput> = inputs.iter().collect();
        assert_eq!(group_by_size(&refs, 1 << 30, 1 << 20), vec![0..2, 2..3]);
    }

    #[test]
    fn a_batch_expanding_past_the_bound_is_kept_whole_not_decompressed() {
        let sim = SimStorage::new();
        let bomb = zstd_batch(4 << 20);
        // A later record of the same key, which would supersede the bomb's.
        let mut later = build_batch(&[(Some(b"k"), Some(b"v"))], 2_000);
        later[..8].copy_from_slice(&1i64.to_be_bytes());
        let mut segment = bomb.clone();
        segment.extend_from_slice(&later);
        let path = Path::new("/d").join(file_name(0, "log"));
        sim.set_file_contents(&path, segment.clone());
        let job = CleanJob {
            dir: PathBuf::from("/d"),
            segments: vec![CleanInput {
                base_offset: 0,
                size: segment.len() as u64,
                next_offset: 2,
                index_bytes: 0,
                file: sim.open(&path, false).unwrap(),
            }],
            dirty_from: 0,
            max_records_bytes: 1 << 20,
            max_segment_bytes: 1 << 30,
            now_ms: 10_000,
            delete_retention_ms: 0,
            limits: CleanerLimits {
                map_bytes: 1 << 20,
                io_bytes_per_second: 0,
            },
        };
        let outcome = job.run(&sim).unwrap();
        assert_eq!(outcome.records_removed, 0);
        let cleaned = sim
            .file_contents(&Path::new("/d").join(format!("{}.cleaned", file_name(0, "log"))))
            .unwrap();
        assert_eq!(
            cleaned, segment,
            "the bomb is kept whole, the later record too"
        );
    }
}
