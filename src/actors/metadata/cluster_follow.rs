//! Cluster mode: the metadata actor follows the quorum's committed image. A task forwards
//! each newly applied image (`MetadataMsg::Applied`); the actor takes it as its own and
//! brings its partition actors in step: topics created or grown elsewhere start here,
//! topics deleted elsewhere are deleted here, config changes reach the partitions. Changes
//! made through this actor are already in step when their image arrives.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{MetadataImage, MetadataMsg, MetadataState, PartitionMsg};
use crate::actors::unavailable_partition::stand_in;
use crate::cluster::AppliedImage;
use crate::error::PartitionError;

/// Forwards every applied image to the actor until it stops.
pub(super) fn follow_applied(
    myself: &ActorRef<MetadataMsg>,
    mut applied: watch::Receiver<Arc<AppliedImage>>,
) {
    let me = myself.clone();
    tokio::spawn(async move {
        while applied.changed().await.is_ok() {
            let image = applied.borrow_and_update().clone();
            if me.send_message(MetadataMsg::Applied(image)).is_err() {
                return;
            }
        }
    });
}

/// Forwards the controller's index from this broker's first answered heartbeat.
pub(super) fn follow_caught_up(
    myself: &ActorRef<MetadataMsg>,
    mut caught_up: watch::Receiver<Option<u64>>,
) {
    let me = myself.clone();
    tokio::spawn(async move {
        let Ok(index) = caught_up.wait_for(|c| c.is_some()).await.map(|c| *c) else {
            return;
        };
        let _ = me.send_message(MetadataMsg::CaughtUp(index.unwrap_or(0)));
    });
}

impl MetadataState {
    pub(super) async fn follow(&mut self, myself: &ActorRef<MetadataMsg>, applied: &AppliedImage) {
        // Queued before a commit of this actor's that already took a newer image.
        let index = applied.last_applied.map_or(0, |l| l.index);
        if index <= self.applied_index {
            return;
        }
        self.applied_index = index;
        let old = std::mem::replace(&mut self.image, applied.image.clone());
        let old = self.unfollowed.take().unwrap_or(old);
        self.follow_from(myself, &old).await;
    }

    /// Follows what a commit of this actor's brought besides its own record: records other
    /// brokers committed while it waited (a leader moved, a topic was created, configs or
    /// replicas changed). Without this they were skipped for good, and a broker could go
    /// on thinking it led a partition whose leadership had moved.
    pub(super) async fn follow_pending(&mut self, myself: &ActorRef<MetadataMsg>) {
        if let Some(old) = self.unfollowed.take() {
            self.follow_from(myself, &old).await;
        }
    }

    /// Brings the partition actors in step with `self.image`, coming from `old`.
    async fn follow_from(&mut self, myself: &ActorRef<MetadataMsg>, old: &MetadataImage) {
        let gone: Vec<String> = self
            .topics
            .keys()
            .chain(self.starts.live().map(|(name, _)| name))
            .filter(|name| !self.image.topics.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            info!(topic = %name, "A topic was deleted through another broker.");
            if let Err(err) = self.remove_topic_locally(&name).await {
                warn!(topic = %name, %err, "Could not delete a topic deleted elsewhere.");
            }
        }
        let topics: Vec<_> = self
            .image
            .topics
            .iter()
            .map(|(name, t)| (name.clone(), t.clone()))
            .collect();
        for (name, topic) in topics {
            let local = self.topics.get(&name).map(|t| t.partitions.len() as i32);
            match local {
                None if !self.starts.contains(&name) => {
                    info!(topic = %name, "Starting a topic created through another broker.");
                    self.start_topic(myself, name, topic.id, topic.configs, topic.partitions);
                }
                Some(count) if count < topic.partitions && !self.starts.growing(&name) => {
                    // Nobody here waits for these; the reply goes nowhere.
                    let (reply, _) = tokio::sync::oneshot::channel();
                    let reply = RpcReplyPort::from(reply);
                    self.start_partitions(
                        myself,
                        name,
                        topic.id,
                        &topic.configs,
                        count,
                        topic.partitions,
                        reply,
                    );
                }
                Some(_) => {
                    let before = old.topics.get(&name).map(|t| &t.configs);
                    if before != Some(&topic.configs) || old.dynamic != self.image.dynamic {
                        self.push_configs(&self.topics[&name].partitions, &topic.configs);
                    }
                }
                None => {}
            }
        }
        self.rehost(myself, old).await;
        self.publish();
    }

    /// Reassignment: a partition this broker became a replica of opens its log here; one
    /// it is no replica of any more is deleted here (its directory moved aside and
    /// removed, as a deleted topic's) and the not-a-replica stand-in takes its slot.
    async fn rehost(&mut self, myself: &ActorRef<MetadataMsg>, old: &MetadataImage) {
        let Some(me) = self.roles.as_ref().map(|r| r.broker_id()) else {
            return;
        };
        let mut changes = Vec::new();
        for (name, topic) in &self.image.topics {
            let (Some(local), Some(before)) = (self.topics.get(name), old.topics.get(name)) else {
                continue;
            };
            for (index, p) in topic.assignments.iter().enumerate() {
                let Some(was) = before.assignments.get(index) else {
                    continue;
                };
                let holds = p.replicas.contains(&me);
                if index < local.partitions.len() && was.replicas.contains(&me) != holds {
                    changes.push((name.clone(), index as i32, holds, topic.configs.clone()));
                }
            }
        }
        for (name, index, holds, configs) in changes {
            let current = self.topics[&name].partitions[index as usize].clone();
            if holds {
                match self.spawn_partition(myself, &name, &configs, index).await {
                    Ok(actor) => {
                        info!(topic = %name, partition = index, "This broker became a replica of a partition; its log is open.");
                        self.set_partition(&name, index, actor);
                        current.stop(Some("replaced by the partition's log".into()));
                    }
                    Err(err) => {
                        warn!(topic = %name, partition = index, %err, "Could not open the log of a partition reassigned here.")
                    }
                }
            } else {
                let delete = |reply| PartitionMsg::Delete { reply };
                if let Err(err) = crate::actors::call(&current, delete, DELETE_WAIT).await {
                    warn!(topic = %name, partition = index, %err, "A partition reassigned away did not confirm its deletion.");
                }
                match stand_in(PartitionError::NotAvailable, myself.get_cell()).await {
                    Ok(actor) => {
                        info!(topic = %name, partition = index, "This broker is no replica of a partition any more; its log is deleted.");
                        self.set_partition(&name, index, actor);
                    }
                    Err(err) => {
                        warn!(topic = %name, partition = index, %err, "Could not start a stand-in for a partition reassigned away.")
                    }
                }
            }
        }
    }
}

/// How long a partition reassigned away has to move its directory aside.
const DELETE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
