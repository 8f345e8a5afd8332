//! Cluster mode: the transaction registry's `__transaction_state` partitions. This broker
//! coordinates the transactional ids of the partitions it leads. As soon as it comes to
//! lead one (the registry watches the routing snapshot), it replays that partition up to
//! its high watermark into every id's state (COORDINATOR_LOAD_IN_PROGRESS meanwhile) and
//! starts their coordinators, which finish what was in flight: a PrepareCommit or
//! PrepareAbort has its markers written again and completes; an Ongoing transaction is
//! kept, and aborted by its timeout unless its producer ends it first (as in Kafka). When
//! another broker leads the partition, or a newer leader epoch of it, its coordinators
//! are stopped and forgotten. The coordinator epoch is the partition's leader epoch.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::ResponseError;
use ractor::ActorRef;
use tracing::{debug, info, warn};

use super::partition::PartitionMsg;
use super::routing::RoutingTable;
use super::txn_coordinator::LoggedTxn;
use super::txn_messages::TxnMsg;
use super::txn_registry::{TxnRegistryMsg, TxnRegistryState};
use crate::coordinator::offsets_topic::partition_for;
use crate::coordinator::transaction_state_topic::TRANSACTION_STATE_TOPIC;
use crate::coordinator::txn_log::{load, LoadedTxns, TxnLog};

/// How soon a partition whose load could not finish (its high watermark behind its log
/// end, or a read failed) is tried again.
const LOAD_RETRY: Duration = Duration::from_millis(250);

/// What the registry needs to place transactional ids on `__transaction_state`.
#[derive(Debug, Clone)]
pub struct TxnStateTopicArgs {
    pub node_id: i32,
    /// The longest an acks=all state change, or a read of the partition, may take
    /// (Kafka's transaction coordinator uses request.timeout.ms).
    pub append_timeout: Duration,
}

/// A partition this broker leads and has replayed.
pub struct LoadedTxnPartition {
    leader_epoch: i32,
    actor: ActorRef<PartitionMsg>,
}

/// The partition count of `__transaction_state` as created, when it exists.
pub fn topic_partitions(routes: &RoutingTable) -> Option<i32> {
    routes
        .topic(TRANSACTION_STATE_TOPIC)
        .map(|route| route.partitions.len() as i32)
}

/// The partition's leader epoch and actor when this broker leads it now; else the error
/// code a transaction request is answered with.
fn led_here(
    routes: &RoutingTable,
    node_id: i32,
    index: i32,
) -> Result<(i32, ActorRef<PartitionMsg>), i16> {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let route = routes.topic(TRANSACTION_STATE_TOPIC).ok_or(unavailable)?;
    let (Some(placement), Some(actor)) = (route.placement(index), route.partition(index)) else {
        return Err(unavailable);
    };
    match placement.leader {
        -1 => Err(unavailable),
        leader if leader != node_id => Err(ResponseError::NotCoordinator.code()),
        _ => Ok((placement.leader_epoch, actor.clone())),
    }
}

impl TxnRegistryState {
    fn routes(&self) -> std::sync::Arc<RoutingTable> {
        self.deps.routing.borrow().clone()
    }

    /// The coordinator of a transactional id on `__transaction_state` (created when
    /// `create`), loading its partition first when this broker has just come to lead it.
    pub(super) async fn logged_coordinator(
        &mut self,
        myself: &ActorRef<TxnRegistryMsg>,
        topic: &TxnStateTopicArgs,
        transactional_id: &str,
        create: bool,
    ) -> Result<Option<ActorRef<TxnMsg>>, i16> {
        self.unload_lost_partitions(topic);
        let routes = self.routes();
        let partitions =
            topic_partitions(&routes).ok_or(ResponseError::CoordinatorNotAvailable.code())?;
        let index = partition_for(transactional_id, partitions);
        let (leader_epoch, actor) = led_here(&routes, topic.node_id, index)?;
        if !self.loaded.contains_key(&index) {
            self.load_partition(myself, topic, index, leader_epoch, actor.clone())
                .await?;
        }
        if let Some(coordinator) = self.coordinators.get(transactional_id) {
            return Ok(Some(coordinator.clone()));
        }
        if !create {
            return Ok(None);
        }
        let logged = LoggedTxn {
            log: TxnLog {
                partition: actor,
                append_timeout: topic.append_timeout,
            },
            meta: None,
            coordinator_epoch: leader_epoch,
        };
        match self.spawn(myself, transactional_id, Some(logged)).await {
            Ok(coordinator) => Ok(Some(coordinator)),
            Err(err) => {
                warn!(transactional_id, %err, "Could not start a transaction coordinator.");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Loads every `__transaction_state` partition led here and not loaded yet, and
    /// unloads those no longer led here; one that cannot load yet is tried again shortly.
    pub(super) async fn load_led_partitions(
        &mut self,
        myself: &ActorRef<TxnRegistryMsg>,
        topic: &TxnStateTopicArgs,
    ) {
        self.unload_lost_partitions(topic);
        let routes = self.routes();
        let Some(partitions) = topic_partitions(&routes) else {
            return;
        };
        let mut waiting = false;
        for index in 0..partitions {
            if self.loaded.contains_key(&index) {
                continue;
            }
            let Ok((leader_epoch, actor)) = led_here(&routes, topic.node_id, index) else {
                continue;
            };
            if self
                .load_partition(myself, topic, index, leader_epoch, actor)
                .await
                .is_err()
            {
                waiting = true;
            }
        }
        if waiting && !self.load_retry_scheduled {
            self.load_retry_scheduled = true;
            myself.send_after(LOAD_RETRY, || TxnRegistryMsg::LoadRetry);
        }
    }

    async fn load_partition(
        &mut self,
        myself: &ActorRef<TxnRegistryMsg>,
        topic: &TxnStateTopicArgs,
        index: i32,
        leader_epoch: i32,
        actor: ActorRef<PartitionMsg>,
    ) -> Result<(), i16> {
        let loading = ResponseError::CoordinatorLoadInProgress.code();
        let ids = match load(&actor, topic.append_timeout).await {
            Ok(LoadedTxns::Ids(ids)) => ids,
            Ok(LoadedTxns::NotYet) => {
                debug!(partition = index, "__transaction_state partition not loaded yet: its high watermark is behind its log end.");
                return Err(loading);
            }
            Err(err) => {
                warn!(partition = index, %err, "Could not load a __transaction_state partition; clients retry.");
                return Err(loading);
            }
        };
        let mut count = 0;
        for (transactional_id, meta) in ids {
            let logged = LoggedTxn {
                log: TxnLog {
                    partition: actor.clone(),
                    append_timeout: topic.append_timeout,
                },
                meta: Some(meta),
                coordinator_epoch: leader_epoch,
            };
            match self.spawn(myself, &transactional_id, Some(logged)).await {
                Ok(_) => count += 1,
                Err(err) => {
                    warn!(transactional_id, %err, "Could not start a loaded transaction coordinator.");
                    self.stop_partition(index, "its load failed");
                    return Err(loading);
                }
            }
        }
        info!(
            partition = index,
            leader_epoch,
            transactional_ids = count,
            "Loaded a __transaction_state partition: its transactional ids are coordinated here."
        );
        self.loaded.insert(
            index,
            LoadedTxnPartition {
                leader_epoch,
                actor,
            },
        );
        Ok(())
    }

    /// Stops the coordinators of every loaded partition this broker no longer leads at the
    /// epoch it loaded (another leader, a newer epoch, or a restarted partition actor).
    pub(super) fn unload_lost_partitions(&mut self, topic: &TxnStateTopicArgs) {
        let routes = self.routes();
        let lost: Vec<i32> = self
            .loaded
            .iter()
            .filter(
                |(index, loaded)| match led_here(&routes, topic.node_id, **index) {
                    Ok((epoch, actor)) => {
                        epoch != loaded.leader_epoch || actor.get_id() != loaded.actor.get_id()
                    }
                    Err(_) => true,
                },
            )
            .map(|(index, _)| *index)
            .collect();
        for index in lost {
            self.loaded.remove(&index);
            let stopped = self.stop_partition(index, "its __transaction_state partition moved");
            info!(
                partition = index,
                transactional_ids = stopped,
                "Unloaded a __transaction_state partition no longer led here."
            );
        }
    }

    /// Forgets the partition that held `transactional_id` (its coordinator failed): the
    /// next request loads it again from the log, rather than starting the id afresh.
    pub(super) fn reload_partition_of(&mut self, transactional_id: &str) {
        let Some(partitions) = topic_partitions(&self.routes()) else {
            return;
        };
        let index = partition_for(transactional_id, partitions);
        if self.loaded.remove(&index).is_some() {
            self.stop_partition(index, "a coordinator of its partition failed");
        }
    }

    /// Stops and forgets the coordinators of partition `index`; answers how many.
    fn stop_partition(&mut self, index: i32, why: &str) -> usize {
        let partitions = topic_partitions(&self.routes()).unwrap_or(1);
        let mut stopped = 0;
        for transactional_id in self.coordinators.keys() {
            if partition_for(&transactional_id, partitions) == index {
                if let Some(actor) = self.coordinators.remove(&transactional_id) {
                    actor.stop(Some(why.to_string()));
                    stopped += 1;
                }
            }
        }
        stopped
    }
}

/// Loaded partitions by index (the registry's map).
pub type LoadedTxnPartitions = BTreeMap<i32, LoadedTxnPartition>;
