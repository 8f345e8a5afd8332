//! The metadata image: what the metadata records say, with no actor in it.
//!
//! `MetadataImage::apply` folds one `MetadataRecord` into the image. Replaying the record
//! file on start is applying each record in turn; a Raft state machine applies committed
//! entries the same way (see `crate::cluster`). The metadata actor keeps its partition
//! actors in step with the image; the image never calls anybody.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::MetadataRecord;
use crate::broker_config::DynamicBrokerConfigs;
use crate::quota::ClientQuotas;
use crate::security::acl::AclBinding;
use crate::security::scram::{ScramCredential, ScramMechanism};

/// One topic as its records describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    /// Cluster mode: each partition's replicas, leader and ISR (empty in single-node mode,
    /// where this broker holds and leads every partition).
    #[serde(default)]
    pub assignments: Vec<PartitionImage>,
}

/// One partition's placement and leadership, as the controller decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    /// -1: no live replica in the ISR (with unclean election off it stays offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// A reassignment under way: the replicas joining, and those that leave once every
    /// joining one is in the ISR (both empty: none).
    #[serde(default)]
    pub adding: Vec<i32>,
    #[serde(default)]
    pub removing: Vec<i32>,
    /// Goes up by one with every applied change of the leader, ISR or replicas (Kafka's
    /// partition epoch, KIP-497): a leader asks for an ISR change at the epoch its state
    /// came with, and the controller refuses one asked from an older state. Last, and 0
    /// in images written before it (snapshots are serialized as arrays).
    #[serde(default)]
    pub partition_epoch: i32,
}

impl PartitionImage {
    /// A new partition: the first replica leads, every replica is in sync.
    pub fn new(replicas: Vec<i32>) -> Self {
        Self {
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas,
            adding: Vec::new(),
            removing: Vec::new(),
            partition_epoch: 0,
        }
    }

    /// The record that sets a partition to this state.
    pub fn reassigned(&self, topic: &str, partition: i32) -> MetadataRecord {
        MetadataRecord::PartitionReassigned {
            topic: topic.to_string(),
            partition,
            replicas: self.replicas.clone(),
            adding: self.adding.clone(),
            removing: self.removing.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            isr: self.isr.clone(),
        }
    }

    /// Whether a reassignment is under way.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

/// A registered broker (cluster mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub epoch: i64,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Missed its session timeout; clients do not see it and it leads nothing.
    pub fenced: bool,
    /// Every listener's advertised address, by listener name (Kafka's registration
    /// endpoints): a client is told of other brokers at the listener it came in on.
    /// `host`/`port` are the inter-broker listener's.
    #[serde(default)]
    pub listeners: Vec<BrokerListener>,
}

/// One listener of a registered broker, as it advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerListener {
    pub name: String,
    pub host: String,
    pub port: i32,
}

impl BrokerImage {
    /// Where a client that came in on `listener` reaches this broker: its listener of that
    /// name (as Kafka matches endpoints by listener name), else its inter-broker address.
    pub fn endpoint_for(&self, listener: &str) -> (&str, i32) {
        self.listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(listener))
            .map_or((self.host.as_str(), self.port), |l| {
                (l.host.as_str(), l.port)
            })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    /// Producer ids below this may have been handed out.
    pub producer_id_block_end: i64,
    /// Both dynamic broker config layers.
    pub dynamic: DynamicBrokerConfigs,
    /// SCRAM credentials: user -> mechanism -> salted keys. Absent from images written
    /// before SCRAM existed, hence the default.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Cluster mode: the registered brokers by id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Cluster mode: the producer-id block last granted to each broker, `(start, end)`.
    #[serde(default)]
    pub producer_id_blocks: BTreeMap<i32, (i64, i64)>,
    /// The authorizer's ACLs (CreateAcls / DeleteAcls). Absent from older images.
    #[serde(default)]
    pub acls: BTreeSet<AclBinding>,
    /// Client quotas by user and/or client-id entity (AlterClientQuotas). Absent from
    /// older images.
    #[serde(default)]
    pub client_quotas: ClientQuotas,
    /// Cluster mode: the bootstrap file's SCRAM credentials were committed
    /// (`MetadataRecord::ScramBootstrapped`); later leaders ignore their files. Absent
    /// (false) from older images.
    #[serde(default)]
    pub scram_bootstrapped: bool,
}

impl MetadataImage {
    /// The image a sequence of records leaves, oldest first.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a MetadataRecord>) -> Self {
        let mut image = Self::default();
        for record in records {
            image.apply(record);
        }
        image
    }

    /// Folds one record into the image. A record about a topic the image does not hold
    /// (deleted before it) changes nothing, as on replay before.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
            } => {
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        id: Uuid::from_u128(*id),
                        partitions: *partitions,
                        configs: configs.clone(),
                        assignments: Vec::new(),
                    },
                );
            }
            MetadataRecord::PartitionsCreated { name, partitions } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.partitions = *partitions;
                }
            }
            MetadataRecord::TopicDeleted { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::TopicConfigsChanged { name, configs } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.configs = configs.clone();
                }
            }
            MetadataRecord::ProducerIdBlock { end } => {
                self.producer_id_block_end = self.producer_id_block_end.max(*end);
            }
            MetadataRecord::BrokerConfigsChanged { dynamic } => self.dynamic = dynamic.clone(),
            MetadataRecord::ScramCredentialUpserted { .. } => {
                if let Some((user, mechanism, credential)) = record.scram_credential() {
                    self.scram
                        .entry(user.to_string())
                        .or_default()
                        .insert(mechanism, credential);
                }
            }
            MetadataRecord::ScramCredentialDeleted { user, mechanism } => {
                if let Some(mechanisms) = self.scram.get_mut(user) {
                    mechanisms.remove(mechanism);
                    if mechanisms.is_empty() {
                        self.scram.remove(user);
                    }
                }
            }
            _ => self.apply_cluster(record),
        }
    }

    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionImage> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get_mut(topic)?.assignments.get_mut(index)
    }

    /// Applies one change of a partition's leader, ISR or replicas, and counts it in the
    /// partition epoch (as Kafka's PartitionChangeRecord does, whatever it changes).
    fn change_partition(
        &mut self,
        topic: &str,
        partition: i32,
        change: impl FnOnce(&mut PartitionImage),
    ) {
        if let Some(state) = self.partition_mut(topic, partition) {
            change(state);
            state.partition_epoch += 1;
        }
    }

    /// The cluster-mode records (see `MetadataRecord::BrokerRegistered` and after).
    fn apply_cluster(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::BrokerRegistered {
                id,
                epoch,
                host,
                port,
                rack,
                listeners,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerImage {
                        epoch: *epoch,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: false,
                        listeners: listeners.clone(),
                    },
                );
            }
            MetadataRecord::BrokerFenced { id } | MetadataRecord::BrokerUnfenced { id } => {
                let fenced = matches!(record, MetadataRecord::BrokerFenced { .. });
                if let Some(broker) = self.brokers.get_mut(id) {
                    broker.fenced = fenced;
                }
            }
            MetadataRecord::PartitionChanged {
                topic,
                partition,
                leader,
                leader_epoch,
                isr,
            } => self.change_partition(topic, *partition, |state| {
                state.leader = *leader;
                state.leader_epoch = *leader_epoch;
                state.isr = isr.clone();
            }),
            MetadataRecord::PartitionReassigned {
                topic,
                partition,
                replicas,
                adding,
                removing,
                leader,
                leader_epoch,
                isr,
            } => self.change_partition(topic, *partition, |state| {
                *state = PartitionImage {
                    replicas: replicas.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    isr: isr.clone(),
                    adding: adding.clone(),
                    removing: removing.clone(),
                    partition_epoch: state.partition_epoch,
                };
            }),
            MetadataRecord::PartitionRestored {
                topic,
                partition,
                state,
            } => {
                if let Some(current) = self.partition_mut(topic, *partition) {
                    *current = state.clone();
                }
            }
            MetadataRecord::TopicCreatedWithAssignments {
                name,
                id,
                configs,
                assignments,
            } => {
                // Two brokers created the name at once: the first committed wins.
                if self.topics.contains_key(name) {
                    return;
                }
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        id: Uuid::from_u128(*id),
                        partitions: assignments.len() as i32,
                        configs: configs.clone(),
                        assignments: assignments
                            .iter()
                            .cloned()
                            .map(PartitionImage::new)
                            .collect(),
                    },
                );
            }
            MetadataRecord::PartitionsCreatedWithAssignments { name, assignments } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    let added = assignments.iter().cloned().map(PartitionImage::new);
                    topic.assignments.extend(added);
                    topic.partitions = topic.assignments.len() as i32;
                }
            }
            MetadataRecord::ProducerIdsClaimed { broker, start, end }
                if *start == self.producer_id_block_end && end > start =>
            {
                self.producer_id_block_end = *end;
                self.producer_id_blocks.insert(*broker, (*start, *end));
            }
            MetadataRecord::AclCreated { acl } => {
                self.acls.insert(acl.clone());
            }
            MetadataRecord::AclDeleted { acl } => {
                self.acls.remove(acl);
            }
            MetadataRecord::ClientQuotaChanged { entity, key, value } => {
                self.client_quotas.set(entity, key, *value);
            }
            MetadataRecord::ScramBootstrapped => self.scram_bootstrapped = true,
            // The single-node records are applied by `apply`.
            _ => {}
        }
    }

    /// The registered brokers clients may use (not fenced).
    pub fn live_brokers(&self) -> impl Iterator<Item = (i32, &BrokerImage)> {
        self.brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, b)| (*id, b))
    }

    /// The fewest records whose replay gives this image (the compacted record file).
    pub fn records(&self) -> Vec<MetadataRecord> {
        let mut live = Vec::new();
        for (id, broker) in &self.brokers {
            live.push(MetadataRecord::BrokerRegistered {
                id: *id,
                epoch: broker.epoch,
                host: broker.host.clone(),
                port: broker.port,
                rack: broker.rack.clone(),
                listeners: broker.listeners.clone(),
            });
            if broker.fenced {
                live.push(MetadataRecord::BrokerFenced { id: *id });
            }
        }
        for (name, topic) in &self.topics {
            if topic.assignments.is_empty() {
                live.push(MetadataRecord::TopicCreated {
                    name: name.clone(),
                    id: topic.id.as_u128(),
                    partitions: topic.partitions,
                    configs: topic.configs.clone(),
                });
                continue;
            }
            live.push(MetadataRecord::TopicCreatedWithAssignments {
                name: name.clone(),
                id: topic.id.as_u128(),
                configs: topic.configs.clone(),
                assignments: topic
                    .assignments
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect(),
            });
            for (index, state) in topic.assignments.iter().enumerate() {
                if *state != PartitionImage::new(state.replicas.clone()) {
                    live.push(MetadataRecord::PartitionRestored {
                        topic: name.clone(),
                        partition: index as i32,
                        state: state.clone(),
                    });
                }
            }
        }
        // Each broker's block, in id order, each claim preceded by the end it was granted
        // at (blocks never overlap), then the overall end.
        let mut blocks: Vec<_> = self.producer_id_blocks.iter().collect();
        blocks.sort_by_key(|(_, (start, _))| *start);
        for (broker, (start, end)) in blocks {
            live.push(MetadataRecord::ProducerIdBlock { end: *start });
            live.push(MetadataRecord::ProducerIdsClaimed {
                broker: *broker,
                start: *start,
                end: *end,
            });
        }
        if self.producer_id_block_end != 0 {
            live.push(MetadataRecord::ProducerIdBlock {
                end: self.producer_id_block_end,
            });
        }
        if self.dynamic != DynamicBrokerConfigs::default() {
            live.push(MetadataRecord::BrokerConfigsChanged {
                dynamic: self.dynamic.clone(),
            });
        }
        for (user, mechanisms) in &self.scram {
            for (mechanism, c) in mechanisms {
                live.push(MetadataRecord::ScramCredentialUpserted {
                    user: user.clone(),
                    mechanism: *mechanism,
                    salt: c.salt.clone(),
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                    iterations: c.iterations,
                });
            }
        }
        if self.scram_bootstrapped {
            live.push(MetadataRecord::ScramBootstrapped);
        }
        for acl in &self.acls {
            live.push(MetadataRecord::AclCreated { acl: acl.clone() });
        }
        for (entity, keys) in &self.client_quotas.entities {
            for (key, value) in keys {
                live.push(MetadataRecord::ClientQuotaChanged {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        live
    }

    /// The name of the topic with this id.
    pub fn topic_name(&self, id: Uuid) -> Option<&String> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(name, _)| name)
    }
}
