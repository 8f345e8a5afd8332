//! What the quorum simulation (`quorum_sim`) saw, and its checker: see that module.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::quorum_sim::{DATA, IDS, SETTLE};
use broker::actors::metadata::{MetadataImage, MetadataRecord};
use broker::cluster::{quorum_dir, AppliedImage, MetadataTypes, NodeId};
use broker::storage::raft_log::RaftLogStore;
use broker::storage::raft_snapshot::load_snapshot;
use broker::storage::sim::SimStorage;
use broker::storage::Storage;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{Entry, EntryPayload, LogId};

/// What the run saw, shared by the hosts and the driver.
#[derive(Default)]
pub(crate) struct Observed {
    pub(crate) trace: Vec<String>,
    /// (record, index) of each acknowledged write.
    pub(crate) acked: Vec<(MetadataRecord, u64)>,
    /// Per member: the highest entry ever applied, and the one applied in this life.
    pub(crate) highest: BTreeMap<NodeId, LogId<NodeId>>,
    pub(crate) this_life: BTreeMap<NodeId, Option<LogId<NodeId>>>,
    /// Every applied position ever published, per member (index -> log id).
    pub(crate) seen_applied: BTreeMap<NodeId, BTreeMap<u64, LogId<NodeId>>>,
    pub(crate) latest: BTreeMap<NodeId, Arc<AppliedImage>>,
    pub(crate) violations: Vec<String>,
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

    pub(crate) fn applied(&mut self, id: NodeId, applied: Arc<AppliedImage>) {
        let last = applied.last_applied;
        if let Some(last) = last {
            let life = self.this_life.entry(id).or_default();
            if life.is_some_and(|before| last < before) {
                self.violations.push(format!(
                    "member {id} applied {last} after {}",
                    life.unwrap()
                ));
            }
            *life = Some(last);
            let highest = self.highest.entry(id).or_insert(last);
            *highest = (*highest).max(last);
            let seen = self.seen_applied.entry(id).or_default();
            if let Some(earlier) = seen.insert(last.index, last) {
                if earlier != last {
                    self.violations.push(format!(
                        "member {id} applied {last} at index {}, where it had applied {earlier}",
                        last.index
                    ));
                }
            }
            self.note(format!("member {id} applied {last}"));
        }
        self.latest.insert(id, applied);
    }
}

/// Every member applied the same last entry, at or past every acknowledged write.
pub(crate) fn converged(seen: &Observed) -> bool {
    let acked = seen.acked.iter().map(|(_, i)| *i).max().unwrap_or(0);
    let lasts: Vec<_> = IDS
        .iter()
        .map(|id| seen.latest.get(id).and_then(|a| a.last_applied))
        .collect();
    lasts
        .iter()
        .all(|l| *l == lasts[0] && l.is_some_and(|l| l.index >= acked))
}

/// The checker: see the module comment.
/// Ok(whether any member's log was purged behind a snapshot).
pub(crate) fn check(
    shared: &Shared,
    disks: &BTreeMap<NodeId, Arc<SimStorage>>,
) -> Result<bool, String> {
    let seen = lock(shared);
    if let Some(violation) = seen.violations.first() {
        return Err(violation.clone());
    }
    if !converged(&seen) {
        let lasts: Vec<_> = IDS
            .iter()
            .map(|id| seen.latest.get(id).map(|a| a.last_applied))
            .collect();
        return Err(format!(
            "the members did not converge within {SETTLE:?}: applied {lasts:?}"
        ));
    }
    let dir = quorum_dir(Path::new(DATA));
    let mut logs: BTreeMap<NodeId, BTreeMap<u64, Entry<MetadataTypes>>> = BTreeMap::new();
    let mut purged = false;
    for id in IDS {
        let applied = &seen.latest[&id];
        let last = applied.last_applied.map_or(0, |l| l.index);
        let disk: Arc<dyn Storage> = disks[&id].clone();
        let mut store = RaftLogStore::<MetadataTypes>::open(disk.clone(), &dir)
            .map_err(|e| format!("member {id}'s log does not open: {e}"))?;
        let state = futures::executor::block_on(store.get_log_state())
            .map_err(|e| format!("member {id}'s log state does not read: {e}"))?;
        let first = state.last_purged_log_id.map_or(1, |l| l.index + 1);
        purged |= first > 1;
        // Purged up to the last entry, the log holds nothing (an empty range for the store).
        let entries = if first > last {
            Vec::new()
        } else {
            futures::executor::block_on(store.try_get_log_entries(first..=last))
                .map_err(|e| format!("member {id}'s log does not read: {e}"))?
        };
        let log: BTreeMap<u64, Entry<MetadataTypes>> =
            entries.into_iter().map(|e| (e.log_id.index, e)).collect();
        if (first..=last).any(|i| !log.contains_key(&i)) {
            return Err(format!(
                "member {id}'s log misses entries of {first}..={last}"
            ));
        }
        // Its image must be its snapshot's with the log after it applied, nothing skipped.
        let snapshot = load_snapshot::<MetadataTypes>(disk, &dir)
            .map_err(|e| format!("member {id}'s snapshot does not load: {e}"))?;
        let (mut image, from) = match snapshot {
            Some(s) => (
                rmp_serde::from_slice::<MetadataImage>(&s.data)
                    .map_err(|e| format!("member {id}'s snapshot does not decode: {e}"))?,
                s.meta.last_log_id.map_or(1, |l| l.index + 1),
            ),
            None => (MetadataImage::default(), 1),
        };
        if from < first {
            return Err(format!("member {id} purged its log past its snapshot"));
        }
        for entry in log.range(from..) {
            if let EntryPayload::Normal(record) = &entry.1.payload {
                image.apply(record);
            }
        }
        if image != applied.image {
            return Err(format!(
                "member {id}'s image is not its snapshot plus its log"
            ));
        }
        let highest = seen.highest.get(&id).copied();
        if highest.is_some_and(|h| Some(h) > applied.last_applied) {
            return Err(format!(
                "member {id} had applied {highest:?}, ends at {:?}",
                applied.last_applied
            ));
        }
        logs.insert(id, log);
    }
    // Where two members still hold an index, they hold the same entry; and every entry a
    // member ever applied is still what the logs hold at its index.
    let held = |index: u64| logs.values().filter_map(move |log| log.get(&index));
    for index in logs.values().flat_map(|log| log.keys()) {
        let mut entries = held(*index);
        let first = entries.next();
        if entries.any(|e| Some(e) != first) {
            return Err(format!("the members' logs differ at index {index}"));
        }
    }
    for (id, applied) in &seen.seen_applied {
        for (index, log_id) in applied {
            if held(*index).any(|e| e.log_id != *log_id) {
                return Err(format!(
                    "member {id} applied {log_id}, which the logs no longer hold"
                ));
            }
        }
    }
    for id in &IDS[1..] {
        if seen.latest[id].image != seen.latest[&IDS[0]].image {
            return Err(format!(
                "member {id}'s image differs from member {}'s",
                IDS[0]
            ));
        }
    }
    // Every acknowledged record: at its index wherever a log still holds it, and its topic
    // in the image (topics are never deleted here), so even a purged one is checked.
    for (record, index) in &seen.acked {
        if held(*index).any(|e| !matches!(&e.payload, EntryPayload::Normal(r) if r == record)) {
            return Err(format!(
                "acknowledged {record:?} at {index}, the log holds another entry"
            ));
        }
        let MetadataRecord::TopicCreated { name, id, .. } = record else {
            unreachable!("the client writes topic creations only");
        };
        let topic = seen.latest[&IDS[0]].image.topics.get(name);
        if topic.is_none_or(|t| t.id.as_u128() != *id) {
            return Err(format!(
                "acknowledged {record:?} at {index} is not in the image"
            ));
        }
    }
    Ok(purged)
}
