//! Cluster mode: each local replica's role, from the committed image. After every change
//! the metadata actor tells each partition this broker holds a replica of whether it leads
//! (`BecomeLeader` with epochs, ISR and replicas; `UpdateIsr` when only the ISR or the
//! partition epoch changed) or
//! follows (`BecomeFollower`, and the replica fetcher for its leader copies it). Only what
//! changed since the last message to that partition actor is sent; a restarted partition
//! actor is told its role again.
//!
//! A broker that starts gives no local replica a role before its image is as new as the
//! controller's was at its first answered heartbeat: the image it replays from its own
//! Raft log may be stale (it may name this broker leader at an epoch the controller has
//! since moved on from, after this broker was fenced), and a replica acting on it would
//! answer produces as leader at a stale epoch. Until then its partitions have no role and
//! answer NOT_LEADER_OR_FOLLOWER (Kafka's broker likewise catches up with the metadata
//! log before it serves).
//!
//! Partition leaders ask for ISR changes through the channel in their `ReplicaArgs`; a
//! task drains it into AlterPartition requests to the controller, whose answer comes back
//! as a committed `PartitionChanged` and so as an `UpdateIsr` here. Roles carry the
//! partition epoch (every change of the partition bumps it, and a leader's change is
//! asked at it), so a leader hears of every change of its partition, its ISR's or not. A
//! request the controller refuses comes back to its partition as `IsrChangeRefused`
//! (`IsrRefusal::NewerPartitionState` when the partition moved on since the state it was
//! asked from); one that got no answer, or that a controller not yet at the leader's
//! partition epoch refused, is sent again after `ALTER_PARTITION_RETRY`, as Kafka's
//! AlterPartitionManager retries until answered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::{MetadataMsg, MetadataState};
use crate::actors::partition::{
    AlterPartitionRequest, IsrRefusal, PartitionMsg, ReplicaArgs, ReplicationMsg,
};
use crate::actors::replica_fetchers::{ReplicaFetchers, ReplicaFetchersMsg};
use crate::cluster::node::ClusterHandle;
use crate::cluster::rpc::{IsrChange, Rejected};
use crate::cluster::QuorumError;
use crate::config::Config;

/// ISR requests a busy controller may leave queued before leaders ask again later.
const ALTER_PARTITION_QUEUE: usize = 4096;
/// The pause before an unanswered ISR request is sent again.
const ALTER_PARTITION_RETRY: Duration = Duration::from_millis(500);

/// The role last sent to a partition: which actor, leader, leader epoch, ISR, partition
/// epoch.
type SentRole = (ActorId, i32, i32, Vec<i32>, i32);

pub(super) struct ReplicaRoles {
    template: ReplicaArgs,
    fetchers: ActorRef<ReplicaFetchersMsg>,
    sent: HashMap<(String, i32), SentRole>,
    /// The index the image must reach before roles are given (None: not known yet).
    catch_up_to: Option<u64>,
    /// The image reached it once: roles follow every image from then on.
    caught_up: bool,
}

impl ReplicaRoles {
    pub(super) async fn start(
        config: &Arc<Config>,
        cluster: &ClusterHandle,
        metadata: ActorRef<MetadataMsg>,
    ) -> Result<Self, ActorProcessingErr> {
        let (alter_partition, mut requests) =
            mpsc::channel::<AlterPartitionRequest>(ALTER_PARTITION_QUEUE);
        let client = cluster.client.clone();
        let retry = alter_partition.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                let change = IsrChange {
                    topic: request.topic.clone(),
                    partition: request.partition,
                    leader_id: request.leader_id,
                    leader_epoch: request.leader_epoch,
                    new_isr: request.new_isr.clone(),
                    partition_epoch: request.partition_epoch,
                };
                let why = match client.alter_partition(change).await {
                    Ok(()) => continue,
                    // A controller that has not applied the state this leader works from
                    // yet (a new one catching up): as good as no answer.
                    Err(QuorumError::Refused(Rejected::InvalidUpdateVersion {
                        asked,
                        current,
                    })) if current < asked => None,
                    Err(QuorumError::Refused(Rejected::InvalidUpdateVersion { .. })) => {
                        Some(IsrRefusal::NewerPartitionState)
                    }
                    Err(QuorumError::Refused(_)) => Some(IsrRefusal::Refused),
                    Err(_) => None,
                };
                if let Some(why) = why {
                    debug!(topic = %request.topic, partition = request.partition, ?why,
                        "The controller refused an ISR change.");
                    let _ = metadata.send_message(MetadataMsg::IsrChangeRefused { request, why });
                    continue;
                }
                // No answer: it may yet be committed, so it stays pending at the leader and
                // is asked again.
                debug!(topic = %request.topic, partition = request.partition,
                    "The controller did not take an ISR change; asking again.");
                let retry = retry.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ALTER_PARTITION_RETRY).await;
                    let _ = retry.send(request).await;
                });
            }
        });
        let fetcher_args = (cluster.node_id, config.clone());
        let (fetchers, _) = Actor::spawn(None, ReplicaFetchers, fetcher_args).await?;
        Ok(Self {
            template: ReplicaArgs {
                broker_id: cluster.node_id,
                min_insync_replicas: 1,
                replica_lag_time_max: Duration::from_millis(config.replica_lag_time_max_ms),
                alter_partition,
            },
            fetchers,
            sent: HashMap::new(),
            catch_up_to: None,
            caught_up: false,
        })
    }

    /// A new partition's replica settings, with its topic's min.insync.replicas.
    pub(super) fn args(&self, min_insync_replicas: i32) -> ReplicaArgs {
        ReplicaArgs {
            min_insync_replicas,
            ..self.template.clone()
        }
    }

    /// This broker's id.
    pub(super) fn broker_id(&self) -> i32 {
        self.template.broker_id
    }

    /// The controller's index at this broker's first answered heartbeat.
    pub(super) fn catch_up_to(&mut self, index: u64) {
        self.catch_up_to.get_or_insert(index);
    }

    /// Whether the image has caught up (roles are given from then on).
    pub(super) fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Whether an image at `applied_index` is current enough to give roles from.
    fn ready(&mut self, applied_index: u64) -> bool {
        if !self.caught_up && self.catch_up_to.is_some_and(|i| applied_index >= i) {
            info!(
                applied_index,
                "The metadata image caught up with the controller's; local replicas take their roles."
            );
            self.caught_up = true;
        }
        self.caught_up
    }

    pub(super) fn stop(&self) {
        self.fetchers.stop(Some("broker shutdown".into()));
    }

    fn unfollow(&self, key: &(String, i32)) {
        let _ = self.fetchers.send_message(ReplicaFetchersMsg::Unfollow {
            topic: key.0.clone(),
            partition: key.1,
        });
    }
}

impl MetadataState {
    /// Sends each local replica the role the committed image gives it, where it changed.
    pub(super) fn sync_roles(&mut self) {
        let Some(roles) = self.roles.as_mut() else {
            return;
        };
        if !roles.ready(self.applied_index) {
            return;
        }
        let me = roles.template.broker_id;
        let mut held = HashSet::new();
        for (name, topic) in &self.topics {
            let Some(image) = self.image.topics.get(name) else {
                continue;
            };
            for (index, actor) in topic.partitions.iter().enumerate() {
                let Some(p) = image.assignments.get(index) else {
                    continue;
                };
                if !p.replicas.contains(&me) {
                    continue;
                }
                let key = (name.clone(), index as i32);
                held.insert(key.clone());
                let want = (
                    actor.get_id(),
                    p.leader,
                    p.leader_epoch,
                    p.isr.clone(),
                    p.partition_epoch,
                );
                let last = roles.sent.get(&key);
                if last == Some(&want) {
                    continue;
                }
                if p.leader == me {
                    roles.unfollow(&key);
                    let same_term =
                        last.is_some_and(|l| l.0 == want.0 && l.1 == me && l.2 == want.2);
                    let role = if same_term {
                        ReplicationMsg::UpdateIsr {
                            leader_epoch: p.leader_epoch,
                            partition_epoch: p.partition_epoch,
                            isr: p.isr.clone(),
                        }
                    } else {
                        ReplicationMsg::BecomeLeader {
                            leader_epoch: p.leader_epoch,
                            partition_epoch: p.partition_epoch,
                            isr: p.isr.clone(),
                            replicas: p.replicas.clone(),
                        }
                    };
                    let _ = actor.send_message(PartitionMsg::Replication(role));
                } else if let Some(leader) = self.image.brokers.get(&p.leader) {
                    let moved = last
                        .is_none_or(|l| l.0 != want.0 || l.1 != p.leader || l.2 != p.leader_epoch);
                    if moved {
                        let role = ReplicationMsg::BecomeFollower {
                            leader: p.leader,
                            leader_epoch: p.leader_epoch,
                        };
                        let _ = actor.send_message(PartitionMsg::Replication(role));
                        let _ = roles.fetchers.send_message(ReplicaFetchersMsg::Follow {
                            topic: name.clone(),
                            partition: index as i32,
                            leader: p.leader,
                            leader_epoch: p.leader_epoch,
                            address: format!("{}:{}", leader.host, leader.port),
                            local: actor.clone(),
                        });
                    }
                }
                roles.sent.insert(key, want);
            }
        }
        let gone: Vec<_> = roles
            .sent
            .keys()
            .filter(|k| !held.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            roles.unfollow(&key);
            roles.sent.remove(&key);
        }
    }

    /// Tells the partition leader whose ISR change the controller refused.
    pub(super) fn isr_change_refused(&self, request: AlterPartitionRequest, why: IsrRefusal) {
        let actor = self
            .topics
            .get(&request.topic)
            .and_then(|t| t.partitions.get(usize::try_from(request.partition).ok()?));
        if let Some(actor) = actor {
            let _ = actor.send_message(PartitionMsg::Replication(
                ReplicationMsg::IsrChangeRefused {
                    leader_epoch: request.leader_epoch,
                    partition_epoch: request.partition_epoch,
                    new_isr: request.new_isr,
                    why,
                },
            ));
        }
    }
}
