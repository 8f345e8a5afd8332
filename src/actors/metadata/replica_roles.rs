//! Cluster mode: each local replica's role, from the committed image. After every change
//! the metadata actor tells each partition this broker holds a replica of whether it leads
//! (`BecomeLeader` with epoch, ISR and replicas; `UpdateIsr` when only the ISR changed) or
//! follows (`BecomeFollower`, and the replica fetcher for its leader copies it). Only what
//! changed since the last message to that partition actor is sent; a restarted partition
//! actor is told its role again.
//!
//! Partition leaders ask for ISR changes through the channel in their `ReplicaArgs`; a
//! task drains it into AlterPartition requests to the controller, whose answer comes back
//! as a committed `PartitionChanged` and so as an `UpdateIsr` here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tracing::debug;

use super::MetadataState;
use crate::actors::partition::{AlterPartitionRequest, PartitionMsg, ReplicaArgs, ReplicationMsg};
use crate::actors::replica_fetchers::{ReplicaFetchers, ReplicaFetchersMsg};
use crate::cluster::node::ClusterHandle;
use crate::cluster::rpc::IsrChange;
use crate::config::Config;

/// ISR requests a busy controller may leave queued before leaders ask again later.
const ALTER_PARTITION_QUEUE: usize = 4096;

/// The role last sent to a partition: which actor, leader, leader epoch, ISR.
type SentRole = (ActorId, i32, i32, Vec<i32>);

pub(super) struct ReplicaRoles {
    template: ReplicaArgs,
    fetchers: ActorRef<ReplicaFetchersMsg>,
    sent: HashMap<(String, i32), SentRole>,
}

impl ReplicaRoles {
    pub(super) async fn start(
        config: &Arc<Config>,
        cluster: &ClusterHandle,
    ) -> Result<Self, ActorProcessingErr> {
        let (alter_partition, mut requests) =
            mpsc::channel::<AlterPartitionRequest>(ALTER_PARTITION_QUEUE);
        let client = cluster.client.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                let change = IsrChange {
                    topic: request.topic,
                    partition: request.partition,
                    leader_id: request.leader_id,
                    leader_epoch: request.leader_epoch,
                    new_isr: request.new_isr,
                };
                // A refused change is asked again by the leader on its next ISR check.
                if let Err(err) = client.alter_partition(change).await {
                    debug!(%err, "The controller did not take an ISR change.");
                }
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
                let want = (actor.get_id(), p.leader, p.leader_epoch, p.isr.clone());
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
                            isr: p.isr.clone(),
                        }
                    } else {
                        ReplicationMsg::BecomeLeader {
                            leader_epoch: p.leader_epoch,
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
}
