//! What the whole-cluster simulation (`cluster_sim`) saw, and its checker: see that module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::cluster_sim::{DATA, IDS, TOPIC};
use super::cluster_sim_client::decode;
use broker::storage::log::{LogConfig, PartitionLog};
use broker::storage::sim::SimStorage;
use broker::storage::Storage;

/// A partition's records: (offset, value).
pub(crate) type Records = Vec<(i64, Vec<u8>)>;

/// An acknowledged acks=all record.
pub(crate) struct Ack {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) value: Vec<u8>,
}

/// What the run saw, shared by the hosts, the clients and the driver.
#[derive(Default)]
pub(crate) struct Observed {
    pub(crate) trace: Vec<String>,
    pub(crate) acked: Vec<Ack>,
    /// Every record a consumer was served: (partition, offset) -> value.
    served: BTreeMap<(i32, i64), Vec<u8>>,
    /// Per partition: the highest commit acknowledged.
    commits: BTreeMap<i32, i64>,
    pub(crate) violations: Vec<String>,
    pub(crate) producer_done: bool,
    pub(crate) healed: bool,
    pub(crate) verified: bool,
    /// What the verifier read: per partition its high watermark and records below it.
    pub(crate) final_logs: BTreeMap<i32, (i64, Records)>,
    pub(crate) driver_now: Duration,
}

pub(crate) type Shared = Arc<Mutex<Observed>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, Observed> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Observed {
    /// Notes an event at the host's simulated time (the driver's, outside any host).
    pub(crate) fn note(&mut self, event: String) {
        let now = turmoil::sim_elapsed().unwrap_or(self.driver_now);
        self.trace.push(format!("{now:?} {event}"));
    }

    /// A record a consumer was served: the same offset must always hold the same record.
    pub(crate) fn served(&mut self, partition: i32, offset: i64, value: Vec<u8>, hw: i64) {
        if offset >= hw {
            self.violations.push(format!(
                "{partition}/{offset} served at or above the high watermark {hw}"
            ));
        }
        match self.served.get(&(partition, offset)) {
            Some(before) if *before != value => self.violations.push(format!(
                "{partition}/{offset} served as {} and later as {}",
                show(before),
                show(&value)
            )),
            Some(_) => {}
            None => {
                self.served.insert((partition, offset), value);
            }
        }
    }

    pub(crate) fn served_count(&self) -> usize {
        self.served.len()
    }

    pub(crate) fn commit_acked(&mut self, partition: i32, offset: i64) {
        let highest = self.commits.entry(partition).or_insert(offset);
        *highest = (*highest).max(offset);
    }

    /// The commit an OffsetFetch sent now must not be below.
    pub(crate) fn commit_floor(&self, partition: i32) -> i64 {
        self.commits.get(&partition).copied().unwrap_or(-1)
    }

    pub(crate) fn commit_read(&mut self, partition: i32, offset: i64, floor: i64) {
        if offset < floor {
            self.violations.push(format!(
                "partition {partition}'s committed offset read back as {offset}, below the acknowledged {floor}"
            ));
        }
    }
}

fn show(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Checks every property on what the run saw and on the disks it left; Err names the
/// first ones broken.
pub(crate) fn check(shared: &Shared, disks: &BTreeMap<i32, Arc<SimStorage>>) -> Result<(), String> {
    let seen = lock(shared);
    let mut broken = seen.violations.clone();
    if !seen.verified {
        broken.push("the cluster did not settle: no full ISR and read-back in time".into());
        return Err(broken.join("; "));
    }
    for (partition, (hw, records)) in &seen.final_logs {
        let at: BTreeMap<i64, &Vec<u8>> = records.iter().map(|(o, v)| (*o, v)).collect();
        // Acknowledged records: at their offset, in acknowledgement order.
        let mut last = -1;
        for ack in seen.acked.iter().filter(|a| a.partition == *partition) {
            match at.get(&ack.offset) {
                Some(value) if **value == ack.value => {}
                Some(value) => broken.push(format!(
                    "acknowledged {} at {partition}/{} but the log has {} there",
                    show(&ack.value),
                    ack.offset,
                    show(value)
                )),
                None => broken.push(format!(
                    "acknowledged {} at {partition}/{} is gone (high watermark {hw})",
                    show(&ack.value),
                    ack.offset
                )),
            }
            if ack.offset <= last {
                broken.push(format!(
                    "{partition}: acknowledged offset {} after {last}",
                    ack.offset
                ));
            }
            last = ack.offset;
        }
        // The idempotent producer: no record twice.
        let mut values = BTreeSet::new();
        for (offset, value) in records {
            if !values.insert(value) {
                broken.push(format!(
                    "{} twice in {partition}, again at {offset}",
                    show(value)
                ));
            }
        }
        // Served records: still there.
        for ((p, offset), value) in seen.served.range((*partition, 0)..=(*partition, i64::MAX)) {
            debug_assert_eq!(p, partition);
            if at.get(offset).is_none_or(|v| *v != value) {
                broken.push(format!(
                    "{partition}/{offset} was served as {} but the log does not hold it",
                    show(value)
                ));
            }
        }
        // Every replica's log below the high watermark equals the leader's.
        for id in IDS {
            match replica_records(&disks[&id], *partition, *hw) {
                Ok((replica, _)) if replica == *records => {}
                Ok((replica, end)) => broken.push(format!(
                    "broker {id}'s replica of {partition} (log end {end}) differs below {hw}: {} records, first difference at {:?}",
                    replica.len(),
                    replica.iter().zip(records).find(|(a, b)| a != b).map(|(a, _)| a.0)
                )),
                Err(err) => broken.push(format!("broker {id}'s replica of {partition}: {err}")),
            }
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}

/// The records below `hw` of broker's replica of `partition`, read from its disk.
fn replica_records(
    disk: &Arc<SimStorage>,
    partition: i32,
    hw: i64,
) -> Result<(Records, i64), String> {
    let storage: Arc<dyn Storage> = disk.clone();
    let dir = Path::new(DATA).join(format!("{TOPIC}-{partition}"));
    let config = LogConfig::keep_all(1 << 30, 4096, 1 << 20);
    let (log, _) = PartitionLog::open(storage, dir, config).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    let mut position = log.log_start_offset();
    while position < hw.min(log.log_end_offset()) {
        let read = log
            .read(position, hw, 1 << 20, true)
            .map_err(|e| e.to_string())?;
        if read.records.is_empty() {
            break;
        }
        let mut batches = read.records.clone();
        while batches.len() >= 61 {
            let base = i64::from_be_bytes(batches[0..8].try_into().unwrap());
            let length = i32::from_be_bytes(batches[8..12].try_into().unwrap()) as usize;
            let delta = i32::from_be_bytes(batches[23..27].try_into().unwrap()) as i64;
            position = position.max(base + delta + 1);
            let _ = batches.split_to((12 + length).min(batches.len()));
        }
        let decoded = decode(read.records).ok_or("a batch does not decode")?;
        records.extend(decoded.into_iter().filter(|(o, _)| *o < hw));
    }
    Ok((records, log.log_end_offset()))
}
