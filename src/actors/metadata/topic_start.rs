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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, RpcReplyPort};
use tracing::{error, info, warn};
use uuid::Uuid;

use super::partition_restart::start_partition;
use super::{MetadataMsg, MetadataState, TopicState};
use crate::actors::partition::PartitionMsg;
use crate::actors::routing::TopicRoute;
use crate::actors::unavailable_partition::UnavailablePartition;
use crate::error::MetadataError;

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
    batches: HashMap<u64, Batch>,
    next_batch: u64,
}

impl TopicStarts {
    /// The name is taken by a topic still starting (or deleted while starting).
    pub fn contains(&self, name: &str) -> bool {
        self.topics.contains_key(name)
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
            let mut started = Vec::with_capacity(args.len());
            for args in args {
                let result = start_partition(args, me.get_cell(), runtime.clone()).await;
                started.push(result.map_err(|e| e.to_string()));
            }
            let done = MetadataMsg::TopicStarted { name, id, started };
            if let Err(ractor::MessagingErr::SendErr(MetadataMsg::TopicStarted {
                started, ..
            })) = me.send_message(done)
            {
                for actor in started.into_iter().flatten() {
                    actor.stop(Some("the metadata actor has stopped".into()));
                }
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

    /// The id of a live starting topic with this id, for DeleteTopics by id.
    pub(super) fn starting_by_id(&self, id: Uuid) -> Option<String> {
        self.starts
            .live()
            .find(|(_, t)| *t == id)
            .map(|(name, _)| name.clone())
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
        let mut actors = Vec::with_capacity(started.len());
        let mut failed = None;
        let mut stopped = Vec::new();
        for (index, result) in started.into_iter().enumerate() {
            let index = index as i32;
            match result {
                Ok(actor) => {
                    if matches!(
                        actor.get_status(),
                        ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
                    ) {
                        // Failed before this message came: its failure event found no child.
                        stopped.push(index);
                    } else {
                        self.children.insert(actor.get_id(), (name.clone(), index));
                    }
                    actors.push(actor);
                }
                Err(err) => {
                    error!(topic = %name, partition = index, %err,
                        "Could not start a new partition; it answers KAFKA_STORAGE_ERROR until the broker restarts.");
                    match Actor::spawn_linked(None, UnavailablePartition, (), myself.get_cell())
                        .await
                    {
                        Ok((actor, _)) => actors.push(actor),
                        Err(spawn) => {
                            error!(topic = %name, %spawn, "Could not start a stand-in for a new partition.");
                            for actor in actors {
                                actor.stop(Some("its topic could not start".into()));
                            }
                            self.publish();
                            self.settle(topic.waiters, &Err(MetadataError::Storage(err)));
                            return;
                        }
                    }
                    failed = Some(err);
                }
            }
        }
        let queues: Vec<_> = actors.iter().map(|_| self.partition_queue()).collect();
        let route = Arc::new(TopicRoute {
            name: name.clone(),
            id,
            partitions: actors.clone(),
            queues: queues.clone(),
            configs: topic.configs.clone(),
        });
        self.topics.insert(
            name.clone(),
            TopicState {
                id,
                configs: topic.configs,
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
