//! The routing table: topic name or id -> the partition actors that own its partitions.
//!
//! Written only by the metadata actor, which publishes a new immutable snapshot through a
//! `tokio::sync::watch` channel after every topic change; connections read the latest
//! snapshot without asking the metadata actor on the hot path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use super::metadata::{BrokerImage, PartitionImage};
use super::partition::PartitionMsg;
use crate::broker_config::DynamicBrokerConfigs;

#[derive(Debug, Clone)]
pub struct TopicRoute {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<ActorRef<PartitionMsg>>,
    /// Each partition's mailbox admission, by partition index (kept across restarts).
    pub queues: Vec<PartitionQueue>,
    /// Topic-level config overrides (only the ones set explicitly).
    pub configs: BTreeMap<String, String>,
    /// What produce requests need of the effective configs, resolved when published so the
    /// hot path does no config lookups.
    pub produce: ProduceSettings,
    /// Cluster mode: each partition's replicas, leader, leader epoch and ISR. Empty in
    /// single-node mode, where this broker leads every partition.
    pub placements: Vec<PartitionImage>,
}

/// The effective topic configs the produce path applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceSettings {
    /// compression.type other than `producer`: the codec batches are stored in, and the
    /// topic's max.message.bytes (the recompressed batch's bound).
    pub compression: Option<(u8, usize)>,
    /// min.insync.replicas: acks=all needs this many in-sync replicas.
    pub min_insync_replicas: i32,
}

impl TopicRoute {
    pub fn partition(&self, index: i32) -> Option<&ActorRef<PartitionMsg>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn queue(&self, index: i32) -> Option<&PartitionQueue> {
        usize::try_from(index).ok().and_then(|i| self.queues.get(i))
    }

    /// Replicas per partition (1 in single-node mode or before placements are known).
    pub fn replication_factor(&self) -> i16 {
        self.placements
            .first()
            .map_or(1, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX))
    }

    /// Cluster mode: the partition's placement.
    pub fn placement(&self, index: i32) -> Option<&PartitionImage> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.placements.get(i))
    }
}

/// Cluster mode: what clients are told about the brokers.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// This broker's id.
    pub node_id: i32,
    /// Registered brokers by id, fenced ones included (Metadata lists the others).
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Whether this broker's image has caught up with the controller's (as of its first
    /// answered heartbeat). Until then it knows too little to answer clients: an early
    /// Metadata answer would list no brokers, and a client would forget every broker it
    /// knew. The listeners accept only from then on, as Kafka's do.
    pub caught_up: bool,
}

impl ClusterView {
    /// The leader this node is not: Some(leader) when a request for the partition must go
    /// elsewhere (-1: none now).
    pub fn not_leader(&self, route: &TopicRoute, index: i32) -> Option<i32> {
        let placement = route.placement(index)?;
        (placement.leader != self.node_id).then_some(placement.leader)
    }

    /// A live broker's client endpoint.
    pub fn endpoint(&self, id: i32) -> Option<&BrokerImage> {
        self.brokers.get(&id).filter(|b| !b.fenced)
    }
}

/// Admission control for one partition actor's mailbox: the bytes of appends sent to it
/// and not yet taken are bounded. A sender takes a share before sending; the partition
/// gives it back when it takes the message. Not a lock around state: only the partition
/// actor touches its log, this only says how much may wait for it.
#[derive(Debug, Clone)]
pub struct PartitionQueue {
    bytes: Arc<Semaphore>,
    max: usize,
}

impl PartitionQueue {
    pub fn new(max_bytes: usize) -> PartitionQueue {
        let max = max_bytes.clamp(1, u32::MAX as usize);
        PartitionQueue {
            bytes: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A share for `len` bytes (a batch larger than the whole budget takes all of it, so
    /// it can still be served), or None at once when that much is not free. `deadline`:
    /// when the sender's client is told the request timed out.
    pub fn try_admit(&self, len: usize, deadline: Option<Instant>) -> Option<QueueAdmission> {
        let share = len.min(self.max).max(1) as u32;
        let permit = self.bytes.clone().try_acquire_many_owned(share).ok()?;
        Some(QueueAdmission {
            _permit: permit,
            deadline,
        })
    }

    /// Bytes queued right now (for tests and metrics).
    pub fn queued_bytes(&self) -> usize {
        self.max - self.bytes.available_permits()
    }
}

/// An append's share of its partition's queue, given back when the partition takes it.
#[derive(Debug)]
pub struct QueueAdmission {
    _permit: OwnedSemaphorePermit,
    deadline: Option<Instant>,
}

impl QueueAdmission {
    /// True when the client was already told the request timed out: the append must not
    /// happen behind its back.
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    by_name: HashMap<String, Arc<TopicRoute>>,
    by_id: HashMap<Uuid, Arc<TopicRoute>>,
    /// The dynamic broker configs as of this snapshot (DescribeConfigs reads them).
    pub broker_configs: Arc<DynamicBrokerConfigs>,
    /// Topics created whose partitions are still starting (Metadata: LEADER_NOT_AVAILABLE).
    pub starting: HashSet<String>,
    /// Cluster mode: the brokers; None in single-node mode.
    pub cluster: Option<Arc<ClusterView>>,
    /// The authorizer's ACLs as of this snapshot (every request is checked against them).
    pub acls: crate::security::authorizer_view::AclSnapshot,
    /// The client quota configs as of this snapshot (every request's quotas come from
    /// them; DescribeClientQuotas answers them).
    pub client_quotas: Arc<crate::quota::ClientQuotas>,
}

impl RoutingTable {
    pub fn new(
        routes: impl IntoIterator<Item = Arc<TopicRoute>>,
        broker_configs: Arc<DynamicBrokerConfigs>,
    ) -> Self {
        let mut table = RoutingTable {
            broker_configs,
            ..RoutingTable::default()
        };
        for route in routes {
            table.by_id.insert(route.id, route.clone());
            table.by_name.insert(route.name.clone(), route);
        }
        table
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicRoute>> {
        self.by_name.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicRoute>> {
        self.by_id.get(id)
    }

    /// Partitions of every topic together (what one fetch session may hold at most).
    pub fn partition_count(&self) -> usize {
        self.by_name.values().map(|t| t.partitions.len()).sum()
    }

    /// Every topic, sorted by name (Metadata lists them in a stable order).
    pub fn topics(&self) -> Vec<&Arc<TopicRoute>> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

pub type RoutingSnapshot = watch::Receiver<Arc<RoutingTable>>;
