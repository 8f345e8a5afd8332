//! Starting a new topic's partitions without holding up the metadata actor.
//!
//! A partition's start is its recovery: creating its directory, opening its segments and
//! fsyncing them, which a slow or stalled disk can make last. CreateTopics and
//! auto-creation write (and fsync) the topic's record in the actor, as before anything is
//! acknowledged, then start the partitions in a task and take them back by message
//! (`MetadataMsg::TopicStarted`). Meanwhile the actor keeps answering: Metadata shows the
//! topic as LEADER_NOT_AVAILABLE, a second create of the name gets TOPIC_ALREADY_EXISTS,
//! and the callers that created it (or asked to auto-create it) are answered only when its
//! partitions serve. A topic deleted before its partitions arrive has them deleted then;
//! until that, its name still counts as taken, as Kafka's "marked for deletion".
//! CreatePartitions works the same way, its reply port travelling with the new
//! partitions; one at a time per topic (a second meanwhile gets INVALID_PARTITIONS).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use tokio::runtime::Handle;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::partition_restart::start_partition;
use super::{MetadataMsg, MetadataState, TopicState};
use crate::actors::partition::{PartitionArgs, PartitionMsg};
use crate::actors::routing::TopicRoute;
use crate::actors::unavailable_partition::stand_in;
use crate::error::MetadataError;
use crate::error::PartitionError;
use crate::storage::LogConfig;

type CreateResult = Result<Arc<TopicRoute>, MetadataError>;

/// A topic whose record is written and whose partitions are starting.
pub(super) struct StartingTopic {
    id: Uuid,
    configs: BTreeMap<String, String>,
    /// (batch, position in it) of each caller waiting for the topic to serve.
    waiters: Vec<(u64, usize)>,
    /// Deleted meanwhile: its partitions are deleted when they arrive.
    deleted: bool,
}

/// Who waits for a batch of topics.
pub(super) enum BatchReply {
    Create(RpcReplyPort<Vec<CreateResult>>),
    Ensure(RpcReplyPort<()>),
}

/// One CreateTopics or auto-creation request, answered when its last topic is settled.
struct Batch {
    reply: BatchReply,
    results: Vec<Option<CreateResult>>,
    waiting: usize,
}

#[derive(Default)]
pub(super) struct TopicStarts {
    topics: HashMap<String, StartingTopic>,
    /// Topics whose CreatePartitions is starting new partitions (one at a time).
    growing: HashSet<String>,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
}

impl TopicStarts {
    /// The name is taken by a topic still starting (or deleted while starting).
    pub fn contains(&self, name: &str) -> bool {
        self.topics.contains_key(name)
    }

    /// A CreatePartitions for this topic is still starting its partitions.
    pub fn growing(&self, name: &str) -> bool {
        self.growing.contains(name)
    }

    /// Starting and not deleted: Metadata answers LEADER_NOT_AVAILABLE for these.
    pub fn live(&self) -> impl Iterator<Item = (&String, Uuid)> {
        self.topics
            .iter()
            .filter(|(_, t)| !t.deleted)
            .map(|(name, t)| (name, t.id))
    }
}

impl MetadataState {
    /// Starts the partitions of a topic whose record is written, in a task.
    pub(super) fn start_topic(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
        partitions: i32,
    ) {
        let args: Vec<_> = (0..partitions)
            .map(|index| self.partition_args(&name, &configs, index))
            .collect();
        self.starts.topics.insert(
            name.clone(),
            StartingTopic {
                id,
                configs,
                waiters: Vec::new(),
                deleted: false,
            },
        );
        let runtime = self.storage_runtime.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let started = start_all(args, &me, runtime).await;
            let done = MetadataMsg::TopicStarted { name, id, started };
            if let Err(ractor::MessagingErr::SendErr(MetadataMsg::TopicStarted {
                started, ..
            })) = me.send_message(done)
            {
                stop_all(started);
            }
        });
    }

    /// Answers `reply` once every topic named in `waits` is settled; `results` holds the
    /// answers already known (None where a topic is still starting).
    pub(super) fn answer_when_started(
        &mut self,
        reply: BatchReply,
        results: Vec<Option<CreateResult>>,
        waits: Vec<(usize, String)>,
    ) {
        let id = self.starts.next_batch;
        self.starts.next_batch += 1;
        let mut waiting = 0;
        for (position, name) in waits {
            if let Some(topic) = self.starts.topics.get_mut(&name) {
                topic.waiters.push((id, position));
                waiting += 1;
            }
        }
        let batch = Batch {
            reply,
            results,
            waiting,
        };
        if waiting == 0 {
            finish(batch);
        } else {
            self.starts.batches.insert(id, batch);
        }
    }

    fn settle(&mut self, waiters: Vec<(u64, usize)>, result: &CreateResult) {
        for (id, position) in waiters {
            let Some(batch) = self.starts.batches.get_mut(&id) else {
                continue;
            };
            if let Some(slot) = batch.results.get_mut(position) {
                *slot = Some(result.clone());
            }
            batch.waiting -= 1;
            if batch.waiting == 0 {
                if let Some(batch) = self.starts.batches.remove(&id) {
                    finish(batch);
                }
            }
        }
    }

    /// Deletes a topic whose partitions are still starting (its record is written by the
    /// caller): they are deleted when they arrive; its waiters learn it is gone.
    pub(super) fn delete_starting(&mut self, name: &str) -> Option<Uuid> {
        let topic = self.starts.topics.get_mut(name).filter(|t| !t.deleted)?;
        topic.deleted = true;
        let id = topic.id;
        let waiters = std::mem::take(&mut topic.waiters);
        self.settle(waiters, &Err(MetadataError::UnknownTopic));
        Some(id)
    }

    /// A new topic's partitions started (or could not): the topic serves, its callers
    /// are answered.
    pub(super) async fn topic_started(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        name: String,
        id: Uuid,
        started: Vec<Result<ActorRef<PartitionMsg>, String>>,
    ) {
        let topic = match self.starts.topics.remove(&name) {
            Some(topic) if topic.id == id => topic,
            other => {
                // Not ours (cannot happen: the name stays taken until this message).
                if let Some(other) = other {
                    self.starts.topics.insert(name.clone(), other);
                }
                for actor in started.into_iter().flatten() {
                    actor.stop(Some("its topic is gone".into()));
                }
                return;
            }
        };
        if topic.deleted {
            delete_partitions(&name, started.into_iter().flatten().collect()).await;
            self.publish();
            self.settle(topic.waiters, &Err(MetadataError::UnknownTopic));
            return;
        }
        let log = self.log_config(&topic.configs);
        let (actors, stopped, failed) =
            match self.take_started(myself, &name, 0, started, log).await {
                Ok(taken) => taken,
                Err(err) => {
                    self.publish();
                    self.settle(topic.waiters, &Err(MetadataError::Storage(err)));
                    return;
                }
            };
        let queues: Vec<_> = actors.iter().map(|_| self.partition_queue()).collect();
        let route = Arc::new(TopicRoute {
            name: name.clone(),
            id,
            partitions: actors.clone(),
            queues: queues.clone(),
            produce: crate::topic_config::produce_settings(&topic.configs, self.defaults()),
            configs: topic.configs.clone(),
            placements: Vec::new(),
        });
        self.topics.insert(
            name.clone(),
            TopicState {
                partitions: actors,
                queues,
            },
        );
        self.publish();
        info!(topic = %name, partitions = route.partitions.len(), "Topic's partitions started.");
        for index in stopped {
            self.partition_failed(myself, name.clone(), index, "stopped right after starting")
                .await;
        }
        let result = match failed {
            Some(err) => Err(MetadataError::Storage(err)),
            None => Ok(route),
        };
        self.settle(topic.waiters, &result);
    }
}

impl MetadataState {
    /// Takes started partitions (numbered from `first`) as this actor's children: one
    /// that could not start becomes a stand-in answering KAFKA_STORAGE_ERROR. Returns
    /// the actors, the indexes of those that already stopped, and the first start error;
    /// Err when not even a stand-in could start (all of them are stopped then).
    async fn take_started(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        name: &str,
        first: i32,
        started: Vec<Result<ActorRef<PartitionMsg>, String>>,
        log: LogConfig,
    ) -> Result<(Vec<ActorRef<PartitionMsg>>, Vec<i32>, Option<String>), String> {
        let mut actors = Vec::with_capacity(started.len());
        let mut failed = None;
        let mut stopped = Vec::new();
        for (offset, result) in started.into_iter().enumerate() {
            let index = first + offset as i32;
            match result {
                Ok(actor) => {
                    if matches!(
                        actor.get_status(),
                        ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
                    ) {
                        // Failed before this message came: its failure event found no child.
                        stopped.push(index);
                    } else {
                        self.children
                            .insert(actor.get_id(), (name.to_string(), index));
                        // Broker configs may have changed while it started.
                        let _ = actor.send_message(PartitionMsg::UpdateConfig { log: log.clone() });
                    }
                    actors.push(actor);
                }
                Err(err) => {
                    error!(topic = %name, partition = index, %err,
                        "Could not start a new partition; it answers KAFKA_STORAGE_ERROR until the broker restarts.");
                    match stand_in(PartitionError::StorageFailed, myself.get_cell()).await {
                        Ok(actor) => actors.push(actor),
                        Err(spawn) => {
                            error!(topic = %name, %spawn, "Could not start a stand-in for a new partition.");
                            for actor in actors {
                                actor.stop(Some("its topic could not start".into()));
                            }
                            return Err(err);
                        }
                    }
                    failed.get_or_insert(err);
                }
            }
        }
        Ok((actors, stopped, failed))
    }

    /// Starts partitions `first..count` of an existing topic (CreatePartitions, its record
    /// written) in a task; `reply` travels with them and is answered when they serve.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_partitions(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        name: String,
        id: Uuid,
        configs: &BTreeMap<String, String>,
        first: i32,
        count: i32,
        reply: RpcReplyPort<Result<(), MetadataError>>,
    ) {
        let args: Vec<_> = (first..count)
            .map(|index| self.partition_args(&name, configs, index))
            .collect();
        self.starts.growing.insert(name.clone());
        let runtime = self.storage_runtime.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let started = start_all(args, &me, runtime).await;
            let done = MetadataMsg::PartitionsStarted {
                name,
                id,
                first,
                started,
                reply,
            };
            if let Err(ractor::MessagingErr::SendErr(MetadataMsg::PartitionsStarted {
                started,
                ..
            })) = me.send_message(done)
            {
                stop_all(started);
            }
        });
    }

    /// CreatePartitions' new partitions started: they serve, and its caller is answered.
    pub(super) async fn partitions_started(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        name: String,
        id: Uuid,
        first: i32,
        started: Vec<Result<ActorRef<PartitionMsg>, String>>,
        reply: RpcReplyPort<Result<(), MetadataError>>,
    ) {
        self.starts.growing.remove(&name);
        let configs = self
            .image
            .topics
            .get(&name)
            .filter(|t| t.id == id)
            .filter(|_| {
                self.topics
                    .get(&name)
                    .is_some_and(|t| t.partitions.len() as i32 == first)
            })
            .map(|t| t.configs.clone());
        let Some(configs) = configs else {
            // Deleted (perhaps created again) meanwhile.
            delete_partitions(&name, started.into_iter().flatten().collect()).await;
            let _ = reply.send(Err(MetadataError::UnknownTopic));
            return;
        };
        let log = self.log_config(&configs);
        let (actors, stopped, failed) =
            match self.take_started(myself, &name, first, started, log).await {
                Ok(taken) => taken,
                Err(err) => {
                    let _ = reply.send(Err(MetadataError::Storage(err)));
                    return;
                }
            };
        let count = first + actors.len() as i32;
        let queues: Vec<_> = actors.iter().map(|_| self.partition_queue()).collect();
        if let Some(topic) = self.topics.get_mut(&name) {
            topic.partitions.extend(actors);
            topic.queues.extend(queues);
        }
        self.publish();
        info!(topic = %name, partitions = count, "Added partitions to a topic.");
        for index in stopped {
            self.partition_failed(myself, name.clone(), index, "stopped right after starting")
                .await;
        }
        let _ = reply.send(match failed {
            Some(err) => Err(MetadataError::Storage(err)),
            None => Ok(()),
        });
    }
}

/// Starts each partition in turn (on the storage runtime when there is one).
async fn start_all(
    args: Vec<Option<PartitionArgs>>,
    supervisor: &ActorRef<MetadataMsg>,
    runtime: Option<Handle>,
) -> Vec<Result<ActorRef<PartitionMsg>, String>> {
    let mut started = Vec::with_capacity(args.len());
    for args in args {
        let result = start_partition(args, supervisor.get_cell(), runtime.clone()).await;
        started.push(result.map_err(|e| e.to_string()));
    }
    started
}

/// Partitions whose supervisor stopped before they came back.
fn stop_all(started: Vec<Result<ActorRef<PartitionMsg>, String>>) {
    for actor in started.into_iter().flatten() {
        actor.stop(Some("the metadata actor has stopped".into()));
    }
}

fn finish(batch: Batch) {
    match batch.reply {
        BatchReply::Create(reply) => {
            let results = batch
                .results
                .into_iter()
                .map(|r| r.unwrap_or(Err(MetadataError::Unavailable)))
                .collect();
            let _ = reply.send(results);
        }
        BatchReply::Ensure(reply) => {
            let _ = reply.send(());
        }
    }
}

/// The partitions of a topic deleted while they started: each moves its directory aside,
/// as a deleted topic's partitions do.
async fn delete_partitions(name: &str, actors: Vec<ActorRef<PartitionMsg>>) {
    let waits = actors.iter().map(|p| {
        crate::actors::call(
            p,
            |reply| PartitionMsg::Delete { reply },
            Duration::from_secs(10),
        )
    });
    for result in futures::future::join_all(waits).await {
        if let Err(err) = result {
            warn!(topic = %name, %err, "A partition of a deleted new topic did not confirm its deletion.");
        }
    }
    info!(topic = %name, "Deleted the partitions of a topic deleted while it started.");
}
