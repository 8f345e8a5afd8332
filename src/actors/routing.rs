//! The routing table: topic name or id -> the partition actors that own its partitions.
//!
//! Written only by the metadata actor, which publishes a new immutable snapshot through a
//! `tokio::sync::watch` channel after every topic change; connections read the latest
//! snapshot without asking the metadata actor on the hot path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::watch;
use uuid::Uuid;

use super::partition::PartitionMsg;
use crate::broker_config::DynamicBrokerConfigs;

#[derive(Debug, Clone)]
pub struct TopicRoute {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<ActorRef<PartitionMsg>>,
    /// Topic-level config overrides (only the ones set explicitly).
    pub configs: BTreeMap<String, String>,
}

impl TopicRoute {
    pub fn partition(&self, index: i32) -> Option<&ActorRef<PartitionMsg>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    by_name: HashMap<String, Arc<TopicRoute>>,
    by_id: HashMap<Uuid, Arc<TopicRoute>>,
    /// The dynamic broker configs as of this snapshot (DescribeConfigs reads them).
    pub broker_configs: Arc<DynamicBrokerConfigs>,
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

    /// Every topic, sorted by name (Metadata lists them in a stable order).
    pub fn topics(&self) -> Vec<&Arc<TopicRoute>> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

pub type RoutingSnapshot = watch::Receiver<Arc<RoutingTable>>;
