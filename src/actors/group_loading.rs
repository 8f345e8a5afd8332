//! Cluster mode: the group registry's `__consumer_offsets` partitions. This broker
//! coordinates a group when it leads the group's partition; before serving the first
//! request for it, it replays that partition up to its high watermark into every group it
//! holds (COORDINATOR_LOAD_IN_PROGRESS meanwhile), and when another broker leads it, or a
//! newer leader epoch of it, the groups loaded from it are stopped and forgotten.
//!
//! Leadership is read from the routing snapshot the metadata actor publishes; the replay
//! asks the partition actor (which calls nobody back).

use std::time::Duration;

use kafka_protocol::ResponseError;
use ractor::ActorRef;
use tracing::{debug, info, warn};

use super::group::{GroupMsg, LoggedGroup};
use super::group_registry::{GroupRegistryMsg, GroupRegistryState};
use super::partition::PartitionMsg;
use super::routing::RoutingSnapshot;
use crate::coordinator::group_log::{load, GroupLog, Loaded};
use crate::coordinator::offsets_topic::{partition_for, OFFSETS_TOPIC};

/// What the registry needs to place groups on `__consumer_offsets`.
#[derive(Clone)]
pub struct OffsetsTopicArgs {
    pub routing: RoutingSnapshot,
    pub node_id: i32,
    /// offsets.commit.timeout.ms: the longest an acks=all commit, or a read of the
    /// partition, may take.
    pub commit_timeout: Duration,
}

/// A partition this broker leads and has replayed.
pub struct LoadedPartition {
    leader_epoch: i32,
    actor: ActorRef<PartitionMsg>,
}

/// The partition count of `__consumer_offsets` as created (it decides where groups are),
/// when it exists.
fn topic_partitions(topic: &OffsetsTopicArgs) -> Option<i32> {
    let routes = topic.routing.borrow().clone();
    routes
        .topic(OFFSETS_TOPIC)
        .map(|route| route.partitions.len() as i32)
}

/// The partition's leader epoch and actor when this broker leads it now; else the error
/// code a group request is answered with.
fn led_here(topic: &OffsetsTopicArgs, index: i32) -> Result<(i32, ActorRef<PartitionMsg>), i16> {
    let routes = topic.routing.borrow().clone();
    let Some(route) = routes.topic(OFFSETS_TOPIC) else {
        return Err(ResponseError::CoordinatorNotAvailable.code());
    };
    let (Some(placement), Some(actor)) = (route.placement(index), route.partition(index)) else {
        return Err(ResponseError::CoordinatorNotAvailable.code());
    };
    match placement.leader {
        -1 => Err(ResponseError::CoordinatorNotAvailable.code()),
        leader if leader != topic.node_id => Err(ResponseError::NotCoordinator.code()),
        _ => Ok((placement.leader_epoch, actor.clone())),
    }
}

impl GroupRegistryState {
    /// The actor of a group on `__consumer_offsets`, loading its partition first when
    /// this broker has just come to lead it.
    pub(super) async fn logged_group(
        &mut self,
        myself: &ActorRef<GroupRegistryMsg>,
        group_id: &str,
        create: bool,
    ) -> Result<Option<ActorRef<GroupMsg>>, i16> {
        let Some(topic) = self.args.offsets_topic.clone() else {
            return Ok(None);
        };
        self.unload_lost_partitions();
        let Some(partitions) = topic_partitions(&topic) else {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        };
        let index = partition_for(group_id, partitions);
        let (leader_epoch, actor) = led_here(&topic, index)?;
        if !self.loaded.contains_key(&index) {
            self.load_partition(myself, &topic, index, leader_epoch, actor.clone())
                .await?;
        }
        if let Some(group) = self.groups.get(group_id) {
            return Ok(Some(group.clone()));
        }
        if !create {
            return Ok(None);
        }
        let log = LoggedGroup {
            log: GroupLog {
                partition: actor,
                commit_timeout: topic.commit_timeout,
            },
            offsets: Default::default(),
        };
        Ok(self.spawn_or_warn(myself, group_id, Some(log)).await)
    }

    /// Every group of `__consumer_offsets` partition `index`, which this broker must lead
    /// (loaded first when it has just come to): a transaction marker on that partition
    /// ends the transaction's offsets in each of them (Kafka's handleTxnCompletion).
    pub(super) async fn partition_groups(
        &mut self,
        myself: &ActorRef<GroupRegistryMsg>,
        index: i32,
    ) -> Result<Vec<ActorRef<GroupMsg>>, i16> {
        let Some(topic) = self.args.offsets_topic.clone() else {
            return Err(ResponseError::NotCoordinator.code());
        };
        self.unload_lost_partitions();
        let Some(partitions) = topic_partitions(&topic) else {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        };
        let (leader_epoch, actor) =
            led_here(&topic, index).map_err(|_| ResponseError::NotLeaderOrFollower.code())?;
        if !self.loaded.contains_key(&index) {
            self.load_partition(myself, &topic, index, leader_epoch, actor)
                .await?;
        }
        Ok(self
            .groups
            .keys()
            .into_iter()
            .filter(|group_id| partition_for(group_id, partitions) == index)
            .filter_map(|group_id| self.groups.get(&group_id).cloned())
            .collect())
    }

    async fn load_partition(
        &mut self,
        myself: &ActorRef<GroupRegistryMsg>,
        topic: &OffsetsTopicArgs,
        index: i32,
        leader_epoch: i32,
        actor: ActorRef<PartitionMsg>,
    ) -> Result<(), i16> {
        let loading = ResponseError::CoordinatorLoadInProgress.code();
        let groups = match load(&actor, topic.commit_timeout).await {
            Ok(Loaded::Groups(groups)) => groups,
            Ok(Loaded::NotYet) => {
                debug!(partition = index, "__consumer_offsets partition not loaded yet: its high watermark is behind its log end.");
                return Err(loading);
            }
            Err(err) => {
                warn!(partition = index, %err, "Could not load a __consumer_offsets partition; clients retry.");
                return Err(loading);
            }
        };
        let mut count = 0;
        for (group_id, offsets) in groups {
            if offsets.is_empty() {
                continue;
            }
            let log = LoggedGroup {
                log: GroupLog {
                    partition: actor.clone(),
                    commit_timeout: topic.commit_timeout,
                },
                offsets,
            };
            if self
                .spawn_or_warn(myself, &group_id, Some(log))
                .await
                .is_some()
            {
                count += 1;
            }
        }
        info!(
            partition = index,
            leader_epoch,
            groups = count,
            "Loaded a __consumer_offsets partition: its groups are coordinated here."
        );
        self.loaded.insert(
            index,
            LoadedPartition {
                leader_epoch,
                actor,
            },
        );
        Ok(())
    }

    /// Stops the groups of every loaded partition this broker no longer leads at the
    /// epoch it loaded (another leader, a newer epoch, or a restarted partition actor).
    pub(super) fn unload_lost_partitions(&mut self) {
        let Some(topic) = self.args.offsets_topic.clone() else {
            return;
        };
        let lost: Vec<i32> = self
            .loaded
            .iter()
            .filter(|(index, loaded)| match led_here(&topic, **index) {
                Ok((epoch, actor)) => {
                    epoch != loaded.leader_epoch || actor.get_id() != loaded.actor.get_id()
                }
                Err(_) => true,
            })
            .map(|(index, _)| *index)
            .collect();
        let partitions = topic_partitions(&topic).unwrap_or(1);
        for index in lost {
            self.loaded.remove(&index);
            let mut stopped = 0;
            for group_id in self.groups.keys() {
                if partition_for(&group_id, partitions) == index {
                    if let Some(actor) = self.groups.remove(&group_id) {
                        actor.stop(Some("its __consumer_offsets partition moved".into()));
                        stopped += 1;
                    }
                }
            }
            info!(
                partition = index,
                groups = stopped,
                "Unloaded a __consumer_offsets partition no longer led here."
            );
        }
    }
}
