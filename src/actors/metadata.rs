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

pub use super::metadata_messages::*;
mod acls;
mod broker_configs;
mod client_quotas;
mod cluster_follow;
#[cfg(test)]
mod cluster_image_tests;
mod image;
#[cfg(test)]
mod image_tests;
use super::partition::{PartitionMsg, ReplicationMsg};
mod partition_restart;
mod producer_ids;
mod record_replay;
mod replica_roles;
mod scram_credentials;
mod topic_crud;
mod topic_start;
use super::routing::{ClusterView, PartitionQueue, RoutingTable, TopicRoute};
use crate::broker_config::BrokerDefaults;
use crate::config::Config;
use crate::storage::record_file::create_store_dir;
use crate::storage::{LogConfig, Storage};
use crate::topic_config;
pub use image::{BrokerImage, BrokerListener, MetadataImage, PartitionImage, TopicImage};
use partition_restart::RestartPolicy;
use producer_ids::ProducerIds;
use record_replay::Commits;
pub use scram_credentials::{add_user_offline, offline_credential, OfflineUserError};
use topic_start::{BatchReply, TopicStarts};

/// A topic's partition actors; its id and configs are in the image.
struct TopicState {
    partitions: Vec<ActorRef<PartitionMsg>>,
    /// One per partition; a restarted partition keeps its queue.
    queues: Vec<PartitionQueue>,
}

pub struct MetadataState {
    config: Arc<Config>,
    storage: Arc<dyn Storage>,
    routing: watch::Sender<Arc<RoutingTable>>,
    /// Where records are committed: the local file, or the quorum.
    commits: Commits,
    /// What the records say: the one owner of topic ids, configs, the producer-id block
    /// and the dynamic broker configs.
    image: MetadataImage,
    /// The started topics' partition actors.
    topics: BTreeMap<String, TopicState>,
    /// Which partition each linked child actor is, for restarts.
    children: HashMap<ActorId, (String, i32)>,
    producer_ids: ProducerIds,
    storage_runtime: Option<tokio::runtime::Handle>,
    restarts: RestartPolicy,
    /// New topics whose partitions are starting outside this actor.
    starts: TopicStarts,
    /// Cluster mode: the local replicas' roles and the replica fetchers.
    roles: Option<replica_roles::ReplicaRoles>,
    /// Cluster mode: the last quorum entry in `image` (an older image arriving late is
    /// not taken).
    applied_index: u64,
    /// Cluster mode: the image last followed, when a commit of this actor's has since taken
    /// a newer one. Records of other brokers applied during that commit are in the newer
    /// image but were never followed; `follow_pending` follows them from here.
    unfollowed: Option<MetadataImage>,
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
        let mut applied_index = 0;
        let (commits, image, roles) = match args.cluster {
            Some(cluster) => {
                let applied = cluster.applied.borrow().clone();
                applied_index = applied.last_applied.map_or(0, |l| l.index);
                let image = applied.image.clone();
                cluster_follow::follow_applied(&myself, cluster.applied.clone());
                cluster_follow::follow_caught_up(&myself, cluster.caught_up.clone());
                let roles =
                    replica_roles::ReplicaRoles::start(&args.config, &cluster, myself.clone())
                        .await?;
                (Commits::Quorum(cluster), image, Some(roles))
            }
            None => {
                let (store, image) =
                    record_replay::open_and_replay(args.storage.clone(), &data_dir)?;
                (Commits::File(store), image, None)
            }
        };
        let mut state = MetadataState {
            config: args.config,
            storage: args.storage,
            routing: args.routing,
            commits,
            image,
            topics: BTreeMap::new(),
            children: HashMap::new(),
            producer_ids: ProducerIds::default(),
            storage_runtime: args.storage_runtime,
            restarts: RestartPolicy::default(),
            starts: TopicStarts::default(),
            roles,
            applied_index,
            unfollowed: None,
        };
        let wanted: Vec<_> = state
            .image
            .topics
            .iter()
            .map(|(name, t)| (name.clone(), t.partitions, t.configs.clone()))
            .collect();
        for (name, partitions, configs) in wanted {
            let mut topic = TopicState {
                partitions: Vec::new(),
                queues: Vec::new(),
            };
            for index in 0..partitions {
                let actor = state
                    .spawn_or_stand_in(&myself, &name, &configs, index)
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
                    match state.create_topic(&myself, topic, validate_only).await {
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
                        assignments: None,
                    };
                    match state.create_topic(&myself, new, false).await {
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
                assignments,
                validate_only,
                reply,
            } => match state
                .create_partitions(&topic, count, assignments, validate_only)
                .await
            {
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
                let result = state
                    .alter_topic_configs(&topic, &changes, replace, validate_only)
                    .await;
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
                let result = state
                    .alter_broker_configs(layer, &changes, replace, validate_only)
                    .await;
                state.publish();
                let _ = reply.send(result);
            }
            MetadataMsg::AllocateProducerId { reply } => {
                let _ = reply.send(state.allocate_producer_id().await);
            }
            MetadataMsg::ScramCredential {
                user,
                mechanism,
                reply,
            } => {
                let _ = reply.send(state.scram_credential(&user, mechanism));
            }
            MetadataMsg::DescribeScramCredentials { users, reply } => {
                let _ = reply.send(state.describe_scram_credentials(users));
            }
            MetadataMsg::AlterScramCredentials {
                deletions,
                upsertions,
                reply,
            } => {
                let _ = reply.send(state.alter_scram_credentials(deletions, upsertions).await);
            }
            MetadataMsg::CreateAcls { acls, reply } => {
                let results = state.create_acls(acls).await;
                state.publish_routes();
                let _ = reply.send(results);
            }
            MetadataMsg::DescribeAcls { filter, reply } => {
                let _ = reply.send(state.describe_acls(&filter));
            }
            MetadataMsg::DeleteAcls { filters, reply } => {
                let results = state.delete_acls(filters).await;
                state.publish_routes();
                let _ = reply.send(results);
            }
            MetadataMsg::AlterClientQuotas { changes, reply } => {
                let results = state.alter_client_quotas(changes).await;
                state.publish_routes();
                let _ = reply.send(results);
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
            MetadataMsg::Applied(applied) => state.follow(&myself, &applied).await,
            MetadataMsg::IsrChangeRefused { request, why } => {
                state.isr_change_refused(request, why)
            }
            MetadataMsg::CaughtUp(index) => {
                if let Some(roles) = state.roles.as_mut() {
                    roles.catch_up_to(index);
                }
                state.sync_roles_and_readiness();
            }
        }
        // After the message's own changes are in place, so only others' are followed.
        state.follow_pending(&myself).await;
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
    /// Publishes the routing table and, in a cluster, sends local replicas their roles.
    fn publish(&mut self) {
        self.publish_routes();
        self.sync_roles_and_readiness();
    }

    /// Gives local replicas their roles; when that finds the image caught up for the first
    /// time, publishes the routes again so the listeners see it and start accepting.
    fn sync_roles_and_readiness(&mut self) {
        let was = self.caught_up();
        self.sync_roles();
        if !was && self.caught_up() {
            self.publish_routes();
        }
    }

    fn caught_up(&self) -> bool {
        self.roles.as_ref().is_some_and(|r| r.caught_up())
    }

    fn publish_routes(&self) {
        let routes = self.topics.iter().filter_map(|(name, topic)| {
            let image = self.image.topics.get(name)?;
            Some(Arc::new(TopicRoute {
                name: name.clone(),
                id: image.id,
                partitions: topic.partitions.clone(),
                queues: topic.queues.clone(),
                produce: topic_config::produce_settings(&image.configs, self.defaults()),
                configs: image.configs.clone(),
                placements: image.assignments.clone(),
            }))
        });
        let mut table = RoutingTable::new(routes, Arc::new(self.image.dynamic.clone()));
        table.starting = self.starts.live().map(|(name, _)| name.clone()).collect();
        table.acls = Arc::new(crate::security::acl_index::AclIndex::new(&self.image.acls));
        table.client_quotas = Arc::new(self.image.client_quotas.clone());
        if let Commits::Quorum(cluster) = &self.commits {
            table.cluster = Some(Arc::new(ClusterView {
                node_id: cluster.node_id,
                brokers: self.image.brokers.clone(),
                caught_up: self.caught_up(),
            }));
        }
        self.routing.send_replace(Arc::new(table));
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
            dynamic: &self.image.dynamic,
        }
    }

    /// The partition log settings a topic's overrides give, over the broker defaults.
    fn log_config(&self, configs: &BTreeMap<String, String>) -> LogConfig {
        topic_config::log_config(configs, self.defaults())
    }

    /// Hands a topic's configs to its started partitions: the log settings, and to a
    /// replicated partition its min.insync.replicas (applied from the next produce on).
    fn push_configs(
        &self,
        partitions: &[ActorRef<PartitionMsg>],
        configs: &BTreeMap<String, String>,
    ) {
        let log = self.log_config(configs);
        let min_insync_replicas =
            topic_config::produce_settings(configs, self.defaults()).min_insync_replicas;
        for partition in partitions {
            let _ = partition.send_message(PartitionMsg::UpdateConfig { log: log.clone() });
            if self.roles.is_some() {
                let update = ReplicationMsg::UpdateMinInsyncReplicas {
                    min_insync_replicas,
                };
                let _ = partition.send_message(PartitionMsg::Replication(update));
            }
        }
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
        if let Some(roles) = &self.roles {
            roles.stop();
        }
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
