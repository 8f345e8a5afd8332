//! The replica fetcher manager (Kafka's ReplicaFetcherManager): one `ReplicaFetcher` per
//! source broker, started when a first local partition follows that broker and stopped
//! with the manager. The metadata actor tells it which local partitions follow whom, from
//! the committed image; it moves a partition between fetchers when its leader changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::partition::PartitionMsg;
use super::replica_fetcher::{ReplicaFetcher, ReplicaFetcherArgs, ReplicaFetcherMsg};
use crate::cluster::broker_client::BrokerConnector;
use crate::config::Config;

pub enum ReplicaFetchersMsg {
    /// Copy `topic`/`partition` from `leader` at `address` (its client listener); the
    /// local partition was told `BecomeFollower` first.
    Follow {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        address: String,
        local: ActorRef<PartitionMsg>,
    },
    /// The local partition leads now, or is gone: stop copying it.
    Unfollow { topic: String, partition: i32 },
}

impl crate::metrics::ActorKind for ReplicaFetchersMsg {
    const KIND: &'static str = "replica_fetchers";
}

pub struct ReplicaFetchersState {
    broker_id: i32,
    config: Arc<Config>,
    /// How fetchers reach other brokers, made once from `config`.
    connector: BrokerConnector,
    /// Fetchers by (source broker, address): a broker back at a new address gets a new one.
    fetchers: BTreeMap<(i32, String), ActorRef<ReplicaFetcherMsg>>,
    /// Which fetcher each followed partition is on.
    following: BTreeMap<(String, i32), (i32, String)>,
}

pub struct ReplicaFetchers;

impl Actor for ReplicaFetchers {
    type Msg = ReplicaFetchersMsg;
    type State = ReplicaFetchersState;
    /// This broker's id, and the replica.fetch.* settings.
    type Arguments = (i32, Arc<Config>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (broker_id, config): (i32, Arc<Config>),
    ) -> Result<Self::State, ActorProcessingErr> {
        let connector = BrokerConnector::from_config(&config)?;
        Ok(ReplicaFetchersState {
            broker_id,
            config,
            connector,
            fetchers: BTreeMap::new(),
            following: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ReplicaFetchersMsg::Follow {
                topic,
                partition,
                leader,
                leader_epoch,
                address,
                local,
            } => {
                state.unfollow(&topic, partition);
                let source = (leader, address.clone());
                let fetcher = match state.fetchers.get(&source) {
                    Some(fetcher) => fetcher.clone(),
                    None => {
                        let args = ReplicaFetcherArgs::from_config(
                            &state.config,
                            state.connector.clone(),
                            state.broker_id,
                            leader,
                            address,
                        );
                        let (fetcher, _) = Actor::spawn(None, ReplicaFetcher, args).await?;
                        info!(leader, "Started a replica fetcher for a broker.");
                        state.fetchers.insert(source.clone(), fetcher.clone());
                        fetcher
                    }
                };
                let add = ReplicaFetcherMsg::AddPartition {
                    topic: topic.clone(),
                    partition,
                    leader_epoch,
                    local,
                };
                if fetcher.send_message(add).is_err() {
                    warn!(
                        leader,
                        "A replica fetcher stopped; it is started again on the next change."
                    );
                    state.fetchers.remove(&source);
                    return Ok(());
                }
                state.following.insert((topic, partition), source);
            }
            ReplicaFetchersMsg::Unfollow { topic, partition } => state.unfollow(&topic, partition),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for fetcher in state.fetchers.values() {
            fetcher.stop(Some("broker shutdown".into()));
        }
        Ok(())
    }
}

impl ReplicaFetchersState {
    fn unfollow(&mut self, topic: &str, partition: i32) {
        let Some(source) = self.following.remove(&(topic.to_string(), partition)) else {
            return;
        };
        if let Some(fetcher) = self.fetchers.get(&source) {
            let _ = fetcher.send_message(ReplicaFetcherMsg::RemovePartition {
                topic: topic.to_string(),
                partition,
            });
        }
    }
}
