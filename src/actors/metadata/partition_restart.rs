//! Starting and restarting partition actors without holding up the metadata actor.
//!
//! A partition's start is its recovery (reading its segments), which can take seconds on
//! a large log or a slow disk. When a partition actor fails, the metadata actor hands the
//! restart to a task, keeps answering Metadata, CreateTopics and auto-creation meanwhile,
//! and takes the new actor back by message (`MetadataMsg::PartitionRestarted`). A
//! partition that keeps failing is restarted after a growing delay, and after
//! `MAX_RESTARTS` failures within `WINDOW` it is given up: a stand-in answers
//! KAFKA_STORAGE_ERROR until the broker restarts.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::runtime::Handle;
use tracing::{error, info};
use uuid::Uuid;

use super::{MetadataMsg, MetadataState};
use crate::actors::partition::{Partition, PartitionArgs, PartitionMsg, ProducerExpiry};
use crate::actors::unavailable_partition::stand_in;
use crate::error::PartitionError;
use crate::storage::cleaner::CleanerLimits;

/// Failures of one partition within this long count towards giving it up.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Restarts allowed within `WINDOW`; the next failure gives the partition up.
pub const MAX_RESTARTS: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// What to do about a partition actor that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Restart it after this delay (none for a first failure).
    After(Duration),
    /// It failed this many times within `WINDOW`: stop trying.
    GiveUp(u32),
}

/// Recent failures per partition (topic, index).
#[derive(Debug, Default)]
pub struct RestartPolicy {
    failures: HashMap<(String, i32), (u32, Instant)>,
}

impl RestartPolicy {
    /// Counts a failure and says what to do: at once the first time, then 200 ms doubling
    /// to 30 s, then give up.
    pub fn on_failure(&mut self, topic: &str, index: i32, now: Instant) -> Restart {
        let entry = self
            .failures
            .entry((topic.to_string(), index))
            .or_insert((0, now));
        if now.duration_since(entry.1) > WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        let count = entry.0;
        if count > MAX_RESTARTS {
            return Restart::GiveUp(count);
        }
        if count == 1 {
            return Restart::After(Duration::ZERO);
        }
        let delay = FIRST_DELAY.saturating_mul(1 << (count - 2).min(16));
        Restart::After(delay.min(MAX_DELAY))
    }

    /// A deleted topic's history goes with it.
    pub fn forget_topic(&mut self, topic: &str) {
        self.failures.retain(|(t, _), _| t != topic);
    }
}

/// Starts a partition actor linked to `supervisor`: on the storage runtime when there is
/// one, so that its pre_start (recovery) and its message loop run there.
pub async fn start_partition(
    args: Option<PartitionArgs>,
    supervisor: ActorCell,
    runtime: Option<Handle>,
) -> Result<ActorRef<PartitionMsg>, ActorProcessingErr> {
    let Some(args) = args else {
        // No replica here: no log, a stand-in answering NOT_LEADER_OR_FOLLOWER.
        return Ok(stand_in(PartitionError::NotAvailable, supervisor).await?);
    };
    let (actor, _) = match runtime {
        Some(runtime) => runtime
            .spawn(Actor::spawn_linked(None, Partition, args, supervisor))
            .await
            .map_err(|e| ActorProcessingErr::from(e.to_string()))??,
        None => Actor::spawn_linked(None, Partition, args, supervisor).await?,
    };
    Ok(actor)
}

impl MetadataState {
    /// What a partition starts with: None in cluster mode where this broker is none of its
    /// replicas (it opens no log there).
    pub(super) fn partition_args(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
        index: i32,
    ) -> Option<PartitionArgs> {
        if let Some(roles) = &self.roles {
            let replicas = self
                .image
                .topics
                .get(topic)
                .and_then(|t| t.assignments.get(usize::try_from(index).ok()?))
                .map(|p| &p.replicas);
            if replicas.is_some_and(|r| !r.contains(&roles.broker_id())) {
                return None;
            }
        }
        Some(PartitionArgs {
            topic: topic.to_string(),
            partition: index,
            dir: self.partition_dir(topic, index),
            storage: self.storage.clone(),
            log: self.log_config(configs),
            flush_policy: self.config.log.flush_policy,
            flush_interval: Duration::from_millis(self.config.log.flush_interval_ms.max(1)),
            retention_check_interval: Duration::from_millis(
                self.config.log.retention_check_interval_ms.max(1),
            ),
            cleaner: CleanerLimits {
                map_bytes: self.config.log.cleaner_dedupe_buffer_bytes,
                io_bytes_per_second: self.config.log.cleaner_io_max_bytes_per_second,
            },
            producer_expiry: ProducerExpiry {
                expiration_ms: self.config.producer_id_expiration_ms.min(i64::MAX as u64) as i64,
                check_interval: Duration::from_millis(
                    self.config.producer_id_expiration_check_interval_ms.max(1),
                ),
            },
            replica: self.roles.as_ref().map(|roles| {
                roles.args(
                    crate::topic_config::produce_settings(configs, self.defaults())
                        .min_insync_replicas,
                )
            }),
        })
    }

    pub(super) async fn spawn_partition(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: &str,
        configs: &BTreeMap<String, String>,
        index: i32,
    ) -> Result<ActorRef<PartitionMsg>, ActorProcessingErr> {
        let args = self.partition_args(topic, configs, index);
        let actor = start_partition(args, myself.get_cell(), self.storage_runtime.clone()).await?;
        self.children
            .insert(actor.get_id(), (topic.to_string(), index));
        Ok(actor)
    }

    /// At start: a partition whose log cannot be opened becomes a stand-in
    /// that answers KAFKA_STORAGE_ERROR, so the rest of the broker serves on.
    pub(super) async fn spawn_or_stand_in(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: &str,
        configs: &BTreeMap<String, String>,
        index: i32,
    ) -> Result<ActorRef<PartitionMsg>, ActorProcessingErr> {
        match self.spawn_partition(myself, topic, configs, index).await {
            Ok(actor) => Ok(actor),
            Err(err) => {
                error!(topic = %topic, partition = index, %err,
                    "Partition log could not be opened; it answers KAFKA_STORAGE_ERROR until the broker restarts.");
                Ok(stand_in(PartitionError::StorageFailed, myself.get_cell()).await?)
            }
        }
    }

    /// A partition actor failed: its restart (recovery) runs in a task, after a delay that
    /// grows with repeated failures, and comes back as `PartitionRestarted`; meanwhile its
    /// slot holds the stopped actor, which requests see as NOT_LEADER_OR_FOLLOWER
    /// (retriable). Too many failures: a stand-in answers KAFKA_STORAGE_ERROR.
    pub(super) async fn partition_failed(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: String,
        index: i32,
        err: &str,
    ) {
        let image = self
            .image
            .topics
            .get(&topic)
            .filter(|_| self.topics.contains_key(&topic));
        let Some((topic_id, configs)) = image.map(|t| (t.id, t.configs.clone())) else {
            return;
        };
        match self
            .restarts
            .on_failure(&topic, index, std::time::Instant::now())
        {
            Restart::GiveUp(failures) => {
                error!(topic = %topic, partition = index, failures, %err,
                    "Partition actor keeps failing; it answers KAFKA_STORAGE_ERROR until the broker restarts.");
                self.install_stand_in(myself, &topic, index).await;
            }
            Restart::After(delay) => {
                error!(topic = %topic, partition = index, %err, delay_ms = delay.as_millis() as u64,
                    "Partition actor failed; restarting it from its log.");
                let args = self.partition_args(&topic, &configs, index);
                let runtime = self.storage_runtime.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let started = start_partition(args, me.get_cell(), runtime)
                        .await
                        .map_err(|e| e.to_string());
                    let done = MetadataMsg::PartitionRestarted {
                        topic,
                        topic_id,
                        index,
                        started,
                    };
                    if let Err(ractor::MessagingErr::SendErr(MetadataMsg::PartitionRestarted {
                        started: Ok(actor),
                        ..
                    })) = me.send_message(done)
                    {
                        actor.stop(Some("the metadata actor has stopped".into()));
                    }
                });
            }
        }
    }

    /// A restart finished: the new actor takes the partition's slot, unless its topic was
    /// deleted (or deleted and created again) meanwhile.
    pub(super) async fn partition_restarted(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: String,
        topic_id: Uuid,
        index: i32,
        started: Result<ActorRef<PartitionMsg>, String>,
    ) {
        let current = self
            .image
            .topics
            .get(&topic)
            .is_some_and(|t| t.id == topic_id)
            && self
                .topics
                .get(&topic)
                .is_some_and(|t| (index as usize) < t.partitions.len());
        let actor = match started {
            Ok(actor) if !current => {
                actor.stop(Some("its topic was deleted".into()));
                return;
            }
            Err(_) if !current => return,
            Ok(actor) => actor,
            Err(err) => {
                error!(topic = %topic, partition = index, %err,
                    "Partition could not be restarted; it answers KAFKA_STORAGE_ERROR until the broker restarts.");
                self.install_stand_in(myself, &topic, index).await;
                return;
            }
        };
        if matches!(
            actor.get_status(),
            ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
        ) {
            // It failed before this message came: its failure event found no child.
            self.partition_failed(myself, topic, index, "stopped right after restarting")
                .await;
            return;
        }
        self.children.insert(actor.get_id(), (topic.clone(), index));
        self.set_partition(&topic, index, actor);
        info!(topic = %topic, partition = index, "Partition restarted.");
    }

    pub(super) async fn install_stand_in(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: &str,
        index: i32,
    ) {
        match stand_in(PartitionError::StorageFailed, myself.get_cell()).await {
            Ok(actor) => self.set_partition(topic, index, actor),
            Err(err) => {
                error!(topic = %topic, partition = index, %err, "Could not start a stand-in for a failed partition.")
            }
        }
    }

    pub(super) fn set_partition(&mut self, topic: &str, index: i32, actor: ActorRef<PartitionMsg>) {
        if let Some(slot) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(index as usize))
        {
            *slot = actor;
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_then_give_up_and_forget_after_the_window() {
        let mut policy = RestartPolicy::default();
        let t0 = Instant::now();
        let delays: Vec<_> = (0..6).map(|_| policy.on_failure("t", 0, t0)).collect();
        assert_eq!(
            delays,
            vec![
                Restart::After(Duration::ZERO),
                Restart::After(Duration::from_millis(200)),
                Restart::After(Duration::from_millis(400)),
                Restart::After(Duration::from_millis(800)),
                Restart::After(Duration::from_millis(1600)),
                Restart::GiveUp(6),
            ]
        );
        // Another partition has its own count.
        assert_eq!(
            policy.on_failure("t", 1, t0),
            Restart::After(Duration::ZERO)
        );
        // Quiet for longer than the window: a failure is a first one again.
        let later = t0 + WINDOW + Duration::from_secs(1);
        assert_eq!(
            policy.on_failure("t", 0, later),
            Restart::After(Duration::ZERO)
        );
        policy.forget_topic("t");
        assert!(policy.failures.is_empty());
    }
}
