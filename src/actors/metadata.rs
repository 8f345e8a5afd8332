//! Metadata actor: one per broker.
//!
//! Owns the topics (names, topic ids, partition counts, config overrides), the durable
//! metadata record file, and the partition actors, which it spawns linked to itself and
//! restarts from their logs if one fails (outside its mailbox, with backoff and a limit:
//! see `partition_restart`), and starts new topics' and new partitions' actors outside
//! it too (see `topic_start`). After every change it publishes a new routing
//! snapshot that connections read on the hot path.
//!
//! Accepts `MetadataMsg` from connection handlers (CreateTopics, DeleteTopics,
//! CreatePartitions, auto-creation) and from the broker root (shutdown). It calls only
//! partition actors, which never call back.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;
use tracing::{error, info, warn};
use uuid::Uuid;

pub use super::metadata_messages::*;
mod broker_configs;
use super::partition::PartitionMsg;
mod partition_restart;
mod topic_start;
use super::routing::{PartitionQueue, RoutingTable, TopicRoute};
use crate::broker_config::{BrokerDefaults, DynamicBrokerConfigs};
use crate::config::Config;
use crate::error::MetadataError;
use crate::storage::record_file::create_store_dir;
use crate::storage::{LogConfig, RecordFile, Storage};
use crate::topic_config;
use partition_restart::RestartPolicy;
use topic_start::{BatchReply, TopicStarts};

struct TopicState {
    id: Uuid,
    configs: BTreeMap<String, String>,
    partitions: Vec<ActorRef<PartitionMsg>>,
    /// One per partition; a restarted partition keeps its queue.
    queues: Vec<PartitionQueue>,
}

pub struct MetadataState {
    config: Arc<Config>,
    storage: Arc<dyn Storage>,
    routing: watch::Sender<Arc<RoutingTable>>,
    store: RecordFile<MetadataRecord>,
    topics: BTreeMap<String, TopicState>,
    /// Which partition each linked child actor is, for restarts.
    children: HashMap<ActorId, (String, i32)>,
    /// The next producer id to hand out, and the end of the durably reserved block.
    next_producer_id: i64,
    producer_id_block_end: i64,
    /// The broker configs changed at run time (AlterConfigs on the broker resource).
    dynamic: DynamicBrokerConfigs,
    storage_runtime: Option<tokio::runtime::Handle>,
    restarts: RestartPolicy,
    /// New topics whose partitions are starting outside this actor.
    starts: TopicStarts,
}

pub struct Metadata;

impl Actor for Metadata {
    type Msg = MetadataMsg;
    type State = MetadataState;
    type Arguments = MetadataArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MetadataArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let data_dir = args.config.data_dir.clone();
        // As Kafka does for a new log dir: its entry in its parent is fsynced too.
        create_store_dir(args.storage.as_ref(), &data_dir)?;
        remove_deleted_dirs(args.storage.as_ref(), &data_dir);
        let meta_dir = data_dir.join("__meta");
        create_store_dir(args.storage.as_ref(), &meta_dir)?;
        let (store, records, truncated) =
            RecordFile::<MetadataRecord>::open(args.storage.clone(), meta_dir.join("topics.log"))?;
        if truncated > 0 {
            warn!(
                bytes = truncated,
                "Metadata record file had a torn tail, which was cut."
            );
        }
        let mut state = MetadataState {
            config: args.config,
            storage: args.storage,
            routing: args.routing,
            store,
            topics: BTreeMap::new(),
            children: HashMap::new(),
            next_producer_id: 0,
            producer_id_block_end: 0,
            dynamic: DynamicBrokerConfigs::default(),
            storage_runtime: args.storage_runtime,
            restarts: RestartPolicy::default(),
            starts: TopicStarts::default(),
        };
        let mut wanted: BTreeMap<String, (Uuid, i32, BTreeMap<String, String>)> = BTreeMap::new();
        let replayed = records.len();
        for record in records {
            match record {
                MetadataRecord::TopicCreated {
                    name,
                    id,
                    partitions,
                    configs,
                } => {
                    wanted.insert(name, (Uuid::from_u128(id), partitions, configs));
                }
                MetadataRecord::PartitionsCreated { name, partitions } => {
                    if let Some(entry) = wanted.get_mut(&name) {
                        entry.1 = partitions;
                    }
                }
                MetadataRecord::TopicDeleted { name } => {
                    wanted.remove(&name);
                }
                MetadataRecord::TopicConfigsChanged { name, configs } => {
                    if let Some(entry) = wanted.get_mut(&name) {
                        entry.2 = configs;
                    }
                }
                MetadataRecord::ProducerIdBlock { end } => {
                    state.producer_id_block_end = state.producer_id_block_end.max(end);
                    state.next_producer_id = state.producer_id_block_end;
                }
                MetadataRecord::BrokerConfigsChanged { dynamic } => state.dynamic = dynamic,
            }
        }
        // Mostly history (topics created and deleted again): rewrite it as the live state.
        if replayed > 2 * wanted.len() + 100 {
            let mut live: Vec<MetadataRecord> = wanted
                .iter()
                .map(
                    |(name, (id, partitions, configs))| MetadataRecord::TopicCreated {
                        name: name.clone(),
                        id: id.as_u128(),
                        partitions: *partitions,
                        configs: configs.clone(),
                    },
                )
                .collect();
            live.push(MetadataRecord::ProducerIdBlock {
                end: state.producer_id_block_end,
            });
            if state.dynamic != DynamicBrokerConfigs::default() {
                live.push(MetadataRecord::BrokerConfigsChanged {
                    dynamic: state.dynamic.clone(),
                });
            }
            match state.store.rewrite(&live) {
                Ok(()) => info!(
                    before = replayed,
                    after = live.len(),
                    "Compacted the metadata record file."
                ),
                // Failed after its rename: the store refuses writes, so the start fails.
                Err(err) if state.store.is_failed() => return Err(err.into()),
                Err(err) => {
                    warn!(%err, "Could not compact the metadata record file; it stays as it is.")
                }
            }
        }
        for (name, (id, partitions, configs)) in wanted {
            let mut topic = TopicState {
                id,
                configs,
                partitions: Vec::new(),
                queues: Vec::new(),
            };
            for index in 0..partitions {
                let actor = state
                    .spawn_or_stand_in(&myself, &name, &topic.configs, index)
                    .await?;
                topic.partitions.push(actor);
                topic.queues.push(state.partition_queue());
            }
            state.topics.insert(name, topic);
        }
        info!(topics = state.topics.len(), "Metadata loaded.");
        state.publish();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _timing = crate::metrics::time_handling::<Self::Msg>();
        match message {
            MetadataMsg::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let mut results = Vec::with_capacity(topics.len());
                let mut waits = Vec::new();
                for topic in topics {
                    let name = topic.name.clone();
                    match state.create_topic(&myself, topic, validate_only) {
                        Ok(Some(route)) => results.push(Some(Ok(route))),
                        Ok(None) => {
                            waits.push((results.len(), name));
                            results.push(None);
                        }
                        Err(err) => results.push(Some(Err(err))),
                    }
                }
                state.publish();
                state.answer_when_started(BatchReply::Create(reply), results, waits);
            }
            MetadataMsg::EnsureTopics { names, reply } => {
                let mut waits = Vec::new();
                for name in names {
                    if state.topics.contains_key(&name)
                        || topic_config::validate_topic_name(&name).is_err()
                    {
                        continue;
                    }
                    // Already starting: this caller waits for it too.
                    if state.starts.contains(&name) {
                        waits.push((0, name));
                        continue;
                    }
                    let new = NewTopic {
                        name: name.clone(),
                        num_partitions: -1,
                        replication_factor: -1,
                        configs: BTreeMap::new(),
                        assigned_partitions: None,
                    };
                    match state.create_topic(&myself, new, false) {
                        Ok(_) => {
                            info!(topic = %name, "Auto-created a topic.");
                            waits.push((0, name));
                        }
                        Err(err) => warn!(topic = %name, %err, "Could not auto-create a topic."),
                    }
                }
                state.publish();
                let results = vec![None; waits.len().min(1)];
                state.answer_when_started(BatchReply::Ensure(reply), results, waits);
            }
            MetadataMsg::DeleteTopics { topics, reply } => {
                let mut results = Vec::with_capacity(topics.len());
                for topic in topics {
                    results.push(state.delete_topic(topic).await);
                }
                state.publish();
                let _ = reply.send(results);
            }
            MetadataMsg::CreatePartitions {
                topic,
                count,
                validate_only,
                reply,
            } => match state.create_partitions(&topic, count, validate_only) {
                Ok(Some((id, configs, current))) => {
                    state.start_partitions(&myself, topic, id, &configs, current, count, reply)
                }
                Ok(None) => {
                    let _ = reply.send(Ok(()));
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            MetadataMsg::AlterTopicConfigs {
                topic,
                changes,
                replace,
                validate_only,
                reply,
            } => {
                let result = state.alter_topic_configs(&topic, &changes, replace, validate_only);
                state.publish();
                let _ = reply.send(result);
            }
            MetadataMsg::AlterBrokerConfigs {
                layer,
                changes,
                replace,
                validate_only,
                reply,
            } => {
                let result = state.alter_broker_configs(layer, &changes, replace, validate_only);
                state.publish();
                let _ = reply.send(result);
            }
            MetadataMsg::AllocateProducerId { reply } => {
                let _ = reply.send(state.allocate_producer_id());
            }
            MetadataMsg::Shutdown { reply } => {
                state.shutdown().await;
                let _ = reply.send(());
            }
            MetadataMsg::PartitionsStarted {
                name,
                id,
                first,
                started,
                reply,
            } => {
                state
                    .partitions_started(&myself, name, id, first, started, reply)
                    .await;
            }
            MetadataMsg::TopicStarted { name, id, started } => {
                state.topic_started(&myself, name, id, started).await;
            }
            MetadataMsg::PartitionRestarted {
                topic,
                topic_id,
                index,
                started,
            } => {
                state
                    .partition_restarted(&myself, topic, topic_id, index, started)
                    .await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some((topic, index)) = state.children.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state
                    .partition_failed(&myself, topic, index, &err.to_string())
                    .await;
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.children.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

impl MetadataState {
    fn publish(&self) {
        let routes = self.topics.iter().map(|(name, topic)| {
            Arc::new(TopicRoute {
                name: name.clone(),
                id: topic.id,
                partitions: topic.partitions.clone(),
                queues: topic.queues.clone(),
                produce: topic_config::produce_settings(&topic.configs, self.defaults()),
                configs: topic.configs.clone(),
            })
        });
        let mut table = RoutingTable::new(routes, Arc::new(self.dynamic.clone()));
        table.starting = self.starts.live().map(|(name, _)| name.clone()).collect();
        self.routing.send_replace(Arc::new(table));
    }

    fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[topic_config::ConfigChange],
        replace: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let Some(topic) = self.topics.get(name) else {
            return Err(MetadataError::UnknownTopic);
        };
        let base = if replace {
            BTreeMap::new()
        } else {
            topic.configs.clone()
        };
        let next = topic_config::apply_changes(&base, changes, self.defaults())?;
        if validate_only {
            return Ok(());
        }
        self.store
            .append(&MetadataRecord::TopicConfigsChanged {
                name: name.to_string(),
                configs: next.clone(),
            })
            .map_err(|e| MetadataError::Storage(e.to_string()))?;
        let log = self.log_config(&next);
        if let Some(topic) = self.topics.get_mut(name) {
            topic.configs = next;
            for partition in &topic.partitions {
                let _ = partition.send_message(PartitionMsg::UpdateConfig { log: log.clone() });
            }
        }
        info!(topic = %name, "Changed a topic's configs.");
        Ok(())
    }

    fn allocate_producer_id(&mut self) -> Result<i64, MetadataError> {
        if self.next_producer_id >= self.producer_id_block_end {
            let end = self.next_producer_id + PRODUCER_ID_BLOCK;
            self.store
                .append(&MetadataRecord::ProducerIdBlock { end })
                .map_err(|e| MetadataError::Storage(e.to_string()))?;
            self.producer_id_block_end = end;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Ok(id)
    }

    fn partition_queue(&self) -> PartitionQueue {
        PartitionQueue::new(self.config.max_partition_queued_bytes)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    /// What topic configs default to: config.toml under the dynamic broker configs.
    fn defaults(&self) -> BrokerDefaults<'_> {
        BrokerDefaults {
            config: &self.config,
            dynamic: &self.dynamic,
        }
    }

    /// The partition log settings a topic's overrides give, over the broker defaults.
    fn log_config(&self, configs: &BTreeMap<String, String>) -> LogConfig {
        topic_config::log_config(configs, self.defaults())
    }

    /// Validates and writes a new topic's record; its partitions then start outside this
    /// actor (None: see `topic_start`). validate_only: the route it would have.
    fn create_topic(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<Option<Arc<TopicRoute>>, MetadataError> {
        topic_config::validate_topic_name(&topic.name)?;
        if self.topics.contains_key(&topic.name) || self.starts.contains(&topic.name) {
            return Err(MetadataError::TopicExists);
        }
        let partitions = match (topic.num_partitions, topic.assigned_partitions) {
            (-1, Some(n)) => n,
            (-1, None) => self.config.default_partitions,
            (n, None) if n >= 1 => n,
            (_, Some(_)) => {
                return Err(MetadataError::InvalidReplicaAssignment(
                    "both a partition count and an assignment were given".into(),
                ))
            }
            (n, None) => {
                return Err(MetadataError::InvalidPartitions(format!(
                    "partition count {n} is below 1"
                )))
            }
        };
        if partitions > 100_000 {
            return Err(MetadataError::InvalidPartitions(format!(
                "partition count {partitions} is above 100000"
            )));
        }
        if topic.replication_factor != -1 && topic.replication_factor != 1 {
            return Err(MetadataError::InvalidReplicationFactor(format!(
                "replication factor {} is larger than the 1 available broker",
                topic.replication_factor
            )));
        }
        topic_config::validate(&topic.configs)?;
        let id = Uuid::new_v4();
        if validate_only {
            return Ok(Some(Arc::new(TopicRoute {
                name: topic.name,
                id,
                partitions: Vec::new(),
                queues: Vec::new(),
                produce: topic_config::produce_settings(&topic.configs, self.defaults()),
                configs: topic.configs,
            })));
        }
        self.store
            .append(&MetadataRecord::TopicCreated {
                name: topic.name.clone(),
                id: id.as_u128(),
                partitions,
                configs: topic.configs.clone(),
            })
            .map_err(|e| MetadataError::Storage(e.to_string()))?;
        self.start_topic(myself, topic.name, id, topic.configs, partitions);
        Ok(None)
    }

    async fn delete_topic(&mut self, topic: TopicRef) -> Result<(String, Uuid), MetadataError> {
        let name = match topic {
            TopicRef::Name(name) => name,
            TopicRef::Id(id) => self
                .topics
                .iter()
                .find(|(_, t)| t.id == id)
                .map(|(name, _)| name.clone())
                .or_else(|| self.starting_by_id(id))
                .ok_or(MetadataError::UnknownTopic)?,
        };
        let starting = !self.topics.contains_key(&name);
        if starting && !self.starts.live().any(|(n, _)| *n == name) {
            return Err(MetadataError::UnknownTopic);
        }
        self.store
            .append(&MetadataRecord::TopicDeleted { name: name.clone() })
            .map_err(|e| MetadataError::Storage(e.to_string()))?;
        if starting {
            self.restarts.forget_topic(&name);
            let id = self
                .delete_starting(&name)
                .ok_or(MetadataError::UnknownTopic)?;
            info!(topic = %name, "Deleted a topic whose partitions were still starting.");
            return Ok((name, id));
        }
        let Some(state) = self.topics.remove(&name) else {
            return Err(MetadataError::UnknownTopic);
        };
        self.restarts.forget_topic(&name);
        // Each partition moves its directory aside (fast) and removes it in the background,
        // so a topic re-created with the same name at once starts from an empty directory.
        let waits: Vec<_> = state
            .partitions
            .iter()
            .map(|p| {
                super::call(
                    p,
                    |reply| PartitionMsg::Delete { reply },
                    Duration::from_secs(10),
                )
            })
            .collect();
        for result in futures::future::join_all(waits).await {
            if let Err(err) = result {
                warn!(topic = %name, %err, "A partition did not confirm its deletion.");
            }
        }
        info!(topic = %name, "Deleted a topic.");
        Ok((name, state.id))
    }

    async fn shutdown(&mut self) {
        let partitions: Vec<_> = self
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (name.clone(), i, p.clone()))
            })
            .collect();
        let flushes = partitions.iter().map(|(_, _, p)| {
            super::call(
                p,
                |reply| PartitionMsg::Flush { reply },
                Duration::from_secs(30),
            )
        });
        let results = futures::future::join_all(flushes).await;
        let mut failed = 0;
        for ((name, index, actor), result) in partitions.iter().zip(results) {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    failed += 1;
                    error!(topic = %name, partition = index, %err, "Partition could not flush at shutdown.");
                }
                Err(err) => {
                    failed += 1;
                    error!(topic = %name, partition = index, %err, "Partition did not answer the shutdown flush.");
                }
            }
            actor.stop(Some("broker shutdown".into()));
        }
        info!(
            partitions = partitions.len(),
            failed, "Flushed and fsynced every partition."
        );
    }
}

/// Directories of deleted partitions that a crash left behind.
fn remove_deleted_dirs(storage: &dyn Storage, data_dir: &std::path::Path) {
    let Ok(entries) = storage.list_dir(data_dir) else {
        return;
    };
    let mut removed = false;
    for entry in entries {
        let is_deleted = entry
            .file_name()
            .map(|n| n.to_string_lossy().ends_with("-delete"))
            .unwrap_or(false);
        if is_deleted {
            match storage.remove_dir_all(&entry) {
                Ok(()) => removed = true,
                Err(err) => {
                    warn!(dir = %entry.display(), %err, "Could not remove a deleted partition's directory.")
                }
            }
        }
    }
    if removed {
        if let Err(err) = storage.sync_dir(data_dir) {
            warn!(dir = %data_dir.display(), %err, "Could not fsync the data directory after removing deleted partitions.");
        }
    }
}
