//! Group registry: finds the coordinator actor of a consumer group, creating it on demand.
//!
//! Owns the map from group id to group coordinator actor; at start it loads every group
//! file under `<data_dir>/__groups/` so committed offsets and members are served after a
//! restart. A
//! group actor that stops (deleted, expired) or fails leaves the map; the next request for
//! that group starts a fresh one from its file.
//!
//! In cluster mode (`offsets_topic` set) groups live on `__consumer_offsets` instead: this
//! broker coordinates the groups of the partitions it leads. The first request for a
//! group of a partition it has just come to lead replays that partition (see
//! `group_loading`); a partition it no longer leads is unloaded, its group actors stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::ResponseError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{info, warn};

use super::call;
use super::children::Children;
use super::group::{GroupArgs, GroupCoordinator, GroupMsg, GroupSettings, LoggedGroup};
use super::group_loading::LoadedPartition;
pub use super::group_loading::OffsetsTopicArgs;
use crate::coordinator::group_store::GroupFile;
use crate::storage::record_file::create_store_dir;
use crate::storage::Storage;

/// How long a group may take to end a transaction's offsets (single-node mode has no
/// offsets.commit.timeout.ms to go by).
const TXN_END_TIMEOUT: Duration = Duration::from_secs(5);

pub enum GroupRegistryMsg {
    /// The group's actor; created when `create` is true and it does not exist. Err: the
    /// error code when this broker does not coordinate the group now (cluster mode).
    Get {
        group_id: String,
        create: bool,
        reply: RpcReplyPort<Result<Option<ActorRef<GroupMsg>>, i16>>,
    },
    /// Every group's actor (ListGroups).
    All {
        reply: RpcReplyPort<Vec<ActorRef<GroupMsg>>>,
    },
    /// Cluster mode: a transaction marker for `__consumer_offsets` partition `partition`
    /// (WriteTxnMarkers): ends producer `producer_id`'s pending offsets in every group of
    /// that partition. Answers 0, or the error code (NOT_LEADER_OR_FOLLOWER when this
    /// broker does not lead the partition).
    TxnMarker {
        partition: i32,
        producer_id: i64,
        commit: bool,
        reply: RpcReplyPort<i16>,
    },
}

impl crate::metrics::ActorKind for GroupRegistryMsg {
    const KIND: &'static str = "group_registry";
}

pub struct GroupRegistryArgs {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub settings: GroupSettings,
    /// Cluster mode: groups live on `__consumer_offsets`; None: in files under `dir`.
    pub offsets_topic: Option<OffsetsTopicArgs>,
}

pub struct GroupRegistryState {
    pub(super) args: GroupRegistryArgs,
    pub(super) groups: Children<GroupMsg>,
    /// Cluster mode: the `__consumer_offsets` partitions loaded here, by index.
    pub(super) loaded: BTreeMap<i32, LoadedPartition>,
}

pub struct GroupRegistry;

impl Actor for GroupRegistry {
    type Msg = GroupRegistryMsg;
    type State = GroupRegistryState;
    type Arguments = GroupRegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GroupRegistryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = GroupRegistryState {
            args,
            groups: Children::default(),
            loaded: BTreeMap::new(),
        };
        if state.args.offsets_topic.is_some() {
            info!("Consumer groups live on __consumer_offsets; each loads when its partition is led here.");
            return Ok(state);
        }
        create_store_dir(state.args.storage.as_ref(), &state.args.dir)?;
        for path in state.args.storage.list_dir(&state.args.dir)? {
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            // A corrupt group file fails the start (naming it) rather than being skipped.
            match GroupFile::group_id_of(state.args.storage.clone(), &path)? {
                Some(id) => {
                    state.spawn(&myself, &id, None).await?;
                }
                None => {
                    warn!(path = %path.display(), "Ignoring a group file without its group id.")
                }
            }
        }
        info!(groups = state.groups.len(), "Consumer groups loaded.");
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
            GroupRegistryMsg::Get {
                group_id,
                create,
                reply,
            } => {
                let found = if state.args.offsets_topic.is_some() {
                    state.logged_group(&myself, &group_id, create).await
                } else {
                    Ok(match state.groups.get(&group_id) {
                        Some(actor) => Some(actor.clone()),
                        None if create => state.spawn_or_warn(&myself, &group_id, None).await,
                        None => None,
                    })
                };
                let _ = reply.send(found);
            }
            GroupRegistryMsg::All { reply } => {
                state.unload_lost_partitions();
                let _ = reply.send(state.groups.all());
            }
            GroupRegistryMsg::TxnMarker {
                partition,
                producer_id,
                commit,
                reply,
            } => match state.partition_groups(&myself, partition).await {
                Ok(groups) => {
                    // The groups answer beside the registry, which keeps serving.
                    let timeout = state
                        .args
                        .offsets_topic
                        .as_ref()
                        .map_or(TXN_END_TIMEOUT, |t| t.commit_timeout);
                    tokio::spawn(async move {
                        let ends = groups.iter().map(|group| {
                            let end = |reply| GroupMsg::TxnEnd {
                                producer_id,
                                commit,
                                reply,
                            };
                            call(group, end, timeout)
                        });
                        let code = join_all(ends)
                            .await
                            .into_iter()
                            .map(|r| r.unwrap_or(ResponseError::RequestTimedOut.code()))
                            .find(|code| *code != 0)
                            .unwrap_or(0);
                        let _ = reply.send(code);
                    });
                }
                Err(code) => {
                    let _ = reply.send(code);
                }
            },
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((name, Some(err))) = state.groups.forget(event) {
            warn!(group = %name, %err, "A group coordinator failed; the next request restarts it from its file.");
        }
        Ok(())
    }
}

impl GroupRegistryState {
    pub(super) async fn spawn_or_warn(
        &mut self,
        myself: &ActorRef<GroupRegistryMsg>,
        group_id: &str,
        log: Option<LoggedGroup>,
    ) -> Option<ActorRef<GroupMsg>> {
        match self.spawn(myself, group_id, log).await {
            Ok(actor) => Some(actor),
            Err(err) => {
                warn!(group = %group_id, %err, "Could not start a group coordinator.");
                None
            }
        }
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<GroupRegistryMsg>,
        group_id: &str,
        log: Option<LoggedGroup>,
    ) -> Result<ActorRef<GroupMsg>, ActorProcessingErr> {
        let args = GroupArgs {
            group_id: group_id.to_string(),
            dir: self.args.dir.clone(),
            storage: self.args.storage.clone(),
            settings: self.args.settings.clone(),
            log,
        };
        let (actor, _) =
            Actor::spawn_linked(None, GroupCoordinator, args, myself.get_cell()).await?;
        self.groups.insert(group_id, actor.clone());
        Ok(actor)
    }
}
