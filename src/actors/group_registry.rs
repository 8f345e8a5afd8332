//! Group registry: finds the coordinator actor of a consumer group, creating it on demand.
//!
//! Owns the map from group id to group coordinator actor; at start it loads every group
//! file under `<data_dir>/__groups/` so committed offsets are served after a restart. A
//! group actor that stops (deleted, expired) or fails leaves the map; the next request for
//! that group starts a fresh one from its file.

use std::path::PathBuf;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{info, warn};

use super::children::Children;
use super::group::{GroupArgs, GroupCoordinator, GroupMsg, GroupSettings};
use super::group_store::GroupStore;
use crate::storage::record_file::create_store_dir;
use crate::storage::Storage;

pub enum GroupRegistryMsg {
    /// The group's actor; created when `create` is true and it does not exist.
    Get {
        group_id: String,
        create: bool,
        reply: RpcReplyPort<Option<ActorRef<GroupMsg>>>,
    },
    /// Every group's actor (ListGroups).
    All {
        reply: RpcReplyPort<Vec<ActorRef<GroupMsg>>>,
    },
}

impl crate::metrics::ActorKind for GroupRegistryMsg {
    const KIND: &'static str = "group_registry";
}

pub struct GroupRegistryArgs {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub settings: GroupSettings,
}

pub struct GroupRegistryState {
    args: GroupRegistryArgs,
    groups: Children<GroupMsg>,
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
        create_store_dir(args.storage.as_ref(), &args.dir)?;
        let mut state = GroupRegistryState {
            args,
            groups: Children::default(),
        };
        for path in state.args.storage.list_dir(&state.args.dir)? {
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            // A corrupt group file fails the start (naming it) rather than being skipped.
            match GroupStore::group_id_of(state.args.storage.clone(), &path)? {
                Some(id) => {
                    state.spawn(&myself, &id).await?;
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
                let found = match state.groups.get(&group_id) {
                    Some(actor) => Some(actor.clone()),
                    None if create => match state.spawn(&myself, &group_id).await {
                        Ok(actor) => Some(actor),
                        Err(err) => {
                            warn!(group = %group_id, %err, "Could not start a group coordinator.");
                            None
                        }
                    },
                    None => None,
                };
                let _ = reply.send(found);
            }
            GroupRegistryMsg::All { reply } => {
                let _ = reply.send(state.groups.all());
            }
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
    async fn spawn(
        &mut self,
        myself: &ActorRef<GroupRegistryMsg>,
        group_id: &str,
    ) -> Result<ActorRef<GroupMsg>, ActorProcessingErr> {
        let args = GroupArgs {
            group_id: group_id.to_string(),
            dir: self.args.dir.clone(),
            storage: self.args.storage.clone(),
            settings: self.args.settings.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, GroupCoordinator, args, myself.get_cell()).await?;
        self.groups.insert(group_id, actor.clone());
        Ok(actor)
    }
}
