//! The metadata quorum (openraft) in one process: voters on SimStorage disks, joined by
//! the in-process network, on tokio's paused clock (elections and heartbeats run on
//! virtual time). Every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use broker::actors::metadata::{MetadataImage, MetadataRecord};
use broker::cluster::{
    default_config, quorum_dir, AppliedImage, InProcessNetwork, NodeId, QuorumMember,
};
use broker::storage::sim::SimStorage;
use openraft::{Config, SnapshotPolicy};

const DATA: &str = "/data";
/// Virtual time: generous, since the clock only moves when every task waits.
const WAIT: Duration = Duration::from_secs(60);

fn config(snapshot_every: Option<u64>) -> Config {
    Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: snapshot_every
            .map_or(SnapshotPolicy::Never, SnapshotPolicy::LogsSinceLast),
        max_in_snapshot_log_to_keep: 0,
        ..default_config()
    }
}

/// A record for topic `n` (shared with `actor_quorum_tcp`).
pub(crate) fn topic(n: u32) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: format!("topic-{n}"),
        id: u128::from(n) + 1,
        partitions: 1 + n as i32 % 3,
        configs: BTreeMap::new(),
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Voters on their own disks; members come and go, disks stay.
struct Quorum {
    network: InProcessNetwork,
    disks: BTreeMap<NodeId, SimStorage>,
    members: BTreeMap<NodeId, QuorumMember>,
    config: Config,
}

impl Quorum {
    async fn start(ids: &[NodeId], config: Config) -> Self {
        let mut quorum = Quorum {
            network: InProcessNetwork::default(),
            disks: ids.iter().map(|id| (*id, SimStorage::new())).collect(),
            members: BTreeMap::new(),
            config,
        };
        for id in ids {
            quorum.disks[id].track_directory_entries();
            quorum.restart(*id).await;
        }
        quorum.members[&ids[0]].initialize(ids).await.unwrap();
        quorum
    }

    async fn restart(&mut self, id: NodeId) {
        let disk = Arc::new(self.disks[&id].clone());
        let member = QuorumMember::start(
            id,
            self.config.clone(),
            disk,
            Path::new(DATA),
            self.network.clone(),
        )
        .await
        .unwrap();
        self.members.insert(id, member);
    }

    async fn stop(&mut self, id: NodeId) {
        let member = self.members.remove(&id).unwrap();
        member.stop(&self.network).await;
    }

    /// The leader every running member agrees on.
    async fn leader(&self) -> NodeId {
        let running: BTreeSet<NodeId> = self.members.keys().copied().collect();
        bounded("one leader that every running member knows", async {
            let first = self.members.values().next().unwrap();
            let leader = first
                .raft
                .metrics()
                .wait_for(|m| m.current_leader.is_some_and(|l| running.contains(&l)))
                .await
                .unwrap()
                .current_leader
                .unwrap();
            for member in self.members.values() {
                member
                    .raft
                    .metrics()
                    .wait_for(|m| m.current_leader == Some(leader))
                    .await
                    .unwrap();
            }
            leader
        })
        .await
    }

    /// Waits until the member has applied entry `index`; its image then.
    async fn applied(&self, id: NodeId, index: u64) -> Arc<AppliedImage> {
        let mut applied = self.members[&id].applied.clone();
        bounded(&format!("member {id} to apply entry {index}"), async move {
            applied
                .wait_for(|a| a.last_applied.is_some_and(|l| l.index >= index))
                .await
                .unwrap()
                .clone()
        })
        .await
    }

    async fn write(&self, id: NodeId, record: MetadataRecord) -> u64 {
        match tokio::time::timeout(WAIT, self.members[&id].write(record)).await {
            Ok(r) => r.unwrap(),
            Err(_) => {
                for m in self.members.values() {
                    eprintln!("{:?}", m.raft.metrics().borrow());
                }
                panic!("timed out waiting for a write to commit");
            }
        }
    }

    /// Every running member's image once each has applied `index`; all must be equal.
    async fn same_image_everywhere(&self, index: u64) -> MetadataImage {
        let mut images = Vec::new();
        for id in self.members.keys() {
            images.push((*id, self.applied(*id, index).await.image.clone()));
        }
        for (id, image) in &images[1..] {
            assert_eq!(
                image, &images[0].1,
                "member {id} differs from member {}",
                images[0].0
            );
        }
        images.remove(0).1
    }
}

fn expected(records: &[MetadataRecord]) -> MetadataImage {
    MetadataImage::replay(records)
}

#[tokio::test(start_paused = true)]
async fn three_voters_elect_one_leader_and_apply_the_same_records() {
    let quorum = Quorum::start(&[1, 2, 3], config(None)).await;
    let leader = quorum.leader().await;
    let records: Vec<_> = (0..10).map(topic).collect();
    let mut last = 0;
    for record in &records {
        last = quorum.write(leader, record.clone()).await;
    }
    let image = quorum.same_image_everywhere(last).await;
    assert_eq!(image, expected(&records));
    assert_eq!(image.topics.len(), 10);
    // A follower refuses writes: only the leader takes them.
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    assert!(quorum.members[&follower].write(topic(99)).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_stopped_leader_is_replaced_and_committed_records_survive() {
    let mut quorum = Quorum::start(&[1, 2, 3], config(None)).await;
    let old = quorum.leader().await;
    let mut records: Vec<_> = (0..5).map(topic).collect();
    for record in &records {
        quorum.write(old, record.clone()).await;
    }
    quorum.stop(old).await;
    let new = quorum.leader().await;
    assert_ne!(new, old);
    // Two of three: the write commits and both survivors apply it.
    records.push(topic(5));
    let last = quorum.write(new, topic(5)).await;
    let image = quorum.same_image_everywhere(last).await;
    assert_eq!(image, expected(&records));
    // The old leader comes back and catches up from the new one.
    quorum.restart(old).await;
    assert_eq!(quorum.applied(old, last).await.image, expected(&records));
}

#[tokio::test(start_paused = true)]
async fn a_member_restarted_from_its_disk_rebuilds_the_same_image() {
    // A snapshot every 5 entries, the log purged behind it: the restart needs both.
    let mut quorum = Quorum::start(&[1, 2, 3], config(Some(5))).await;
    let leader = quorum.leader().await;
    let records: Vec<_> = (0..12).map(topic).collect();
    let mut last = 0;
    for record in &records {
        last = quorum.write(leader, record.clone()).await;
    }
    let before = quorum.same_image_everywhere(last).await;
    let member = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    bounded(
        "a snapshot on the member, and its log purged behind it",
        async {
            let mut metrics = quorum.members[&member].raft.metrics();
            metrics
                .wait_for(|m| m.snapshot.is_some() && m.purged.is_some())
                .await
                .unwrap();
        },
    )
    .await;
    let dir = quorum_dir(Path::new(DATA));
    let snapshots = quorum.disks[&member]
        .paths()
        .into_iter()
        .filter(|p| p.starts_with(&dir) && p.to_string_lossy().ends_with(".snap"))
        .count();
    assert_eq!(snapshots, 1, "one snapshot file, the older ones removed");
    quorum.stop(member).await;
    // Cut off from the others: what it shows comes from its own disk only.
    quorum.network.isolate(member, true);
    quorum.restart(member).await;
    let after = quorum.applied(member, last).await;
    assert_eq!(after.image, before);
    assert_eq!(after.image, expected(&records));
}

#[tokio::test(start_paused = true)]
async fn a_power_cut_on_the_leader_loses_no_committed_record() {
    let mut quorum = Quorum::start(&[1, 2, 3], config(None)).await;
    let leader = quorum.leader().await;
    let mut records: Vec<_> = (0..8).map(topic).collect();
    let mut last = 0;
    for record in &records {
        last = quorum.write(leader, record.clone()).await;
    }
    let before = quorum.applied(leader, last).await;
    quorum.stop(leader).await;
    // Every byte and directory entry not fsynced is gone.
    quorum.disks[&leader].power_cut();
    quorum.network.isolate(leader, true);
    quorum.restart(leader).await;
    let after = quorum.applied(leader, last).await;
    assert_eq!(after.image, before.image);
    assert_eq!(after.image, expected(&records));
    // Healed, it rejoins: the quorum goes on taking writes.
    quorum.network.isolate(leader, false);
    let now = quorum.leader().await;
    records.push(topic(8));
    let last = quorum.write(now, topic(8)).await;
    assert_eq!(quorum.same_image_everywhere(last).await, expected(&records));
}

#[tokio::test(start_paused = true)]
async fn a_single_voter_quorum_commits_on_its_own_and_survives_a_power_cut() {
    let mut quorum = Quorum::start(&[1], config(Some(4))).await;
    assert_eq!(quorum.leader().await, 1);
    let mut records: Vec<_> = (0..6).map(topic).collect();
    records.push(MetadataRecord::ProducerIdBlock { end: 1000 });
    records.push(MetadataRecord::TopicDeleted {
        name: "topic-2".into(),
    });
    let mut last = 0;
    for record in &records {
        last = quorum.write(1, record.clone()).await;
    }
    assert_eq!(quorum.applied(1, last).await.image, expected(&records));
    quorum.stop(1).await;
    quorum.disks[&1].power_cut();
    quorum.restart(1).await;
    assert_eq!(quorum.applied(1, last).await.image, expected(&records));
    assert_eq!(quorum.leader().await, 1);
    records.push(topic(7));
    let last = quorum.write(1, topic(7)).await;
    assert_eq!(quorum.applied(1, last).await.image, expected(&records));
}
