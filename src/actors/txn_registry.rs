//! Transaction registry: finds the coordinator actor of a transactional id, creating it on
//! InitProducerId. Owns the map from transactional id to coordinator; at start it loads
//! every file under `<data_dir>/__transactions/`, so open transactions time out and
//! transactions that were ending finish after a restart.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{info, warn};

use super::children::Children;
use super::txn_coordinator::{TxnCoordinator, TxnCoordinatorArgs};
use super::txn_messages::{TxnDeps, TxnMsg};
use super::txn_store::TxnStore;
use crate::storage::record_file::create_store_dir;

pub enum TxnRegistryMsg {
    /// The coordinator of `transactional_id`; created when `create` is true.
    Get {
        transactional_id: String,
        create: bool,
        reply: RpcReplyPort<Option<ActorRef<TxnMsg>>>,
    },
    /// Every coordinator (ListTransactions).
    All {
        reply: RpcReplyPort<Vec<ActorRef<TxnMsg>>>,
    },
}

impl crate::metrics::ActorKind for TxnRegistryMsg {
    const KIND: &'static str = "transaction_registry";
}

pub struct TxnRegistryState {
    deps: TxnDeps,
    coordinators: Children<TxnMsg>,
}

pub struct TxnRegistry;

impl Actor for TxnRegistry {
    type Msg = TxnRegistryMsg;
    type State = TxnRegistryState;
    type Arguments = TxnDeps;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: TxnDeps,
    ) -> Result<Self::State, ActorProcessingErr> {
        create_store_dir(deps.storage.as_ref(), &deps.dir)?;
        let mut state = TxnRegistryState {
            deps,
            coordinators: Children::default(),
        };
        for path in state.deps.storage.list_dir(&state.deps.dir)? {
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            // A corrupt transaction file fails the start (naming it) rather than being skipped.
            match TxnStore::transactional_id_of(state.deps.storage.clone(), &path)? {
                Some(id) => {
                    state.spawn(&myself, &id).await?;
                }
                None => {
                    warn!(path = %path.display(), "Ignoring a transaction file without a transactional id.")
                }
            }
        }
        info!(
            transactional_ids = state.coordinators.len(),
            "Transaction coordinators loaded."
        );
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
            TxnRegistryMsg::Get {
                transactional_id,
                create,
                reply,
            } => {
                let found = match state.coordinators.get(&transactional_id) {
                    Some(actor) => Some(actor.clone()),
                    None if create => match state.spawn(&myself, &transactional_id).await {
                        Ok(actor) => Some(actor),
                        Err(err) => {
                            warn!(transactional_id = %transactional_id, %err,
                                "Could not start a transaction coordinator.");
                            None
                        }
                    },
                    None => None,
                };
                let _ = reply.send(found);
            }
            TxnRegistryMsg::All { reply } => {
                let _ = reply.send(state.coordinators.all());
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
        if let Some((name, Some(err))) = state.coordinators.forget(event) {
            warn!(transactional_id = %name, %err,
                "A transaction coordinator failed; the next request restarts it from its file.");
        }
        Ok(())
    }
}

impl TxnRegistryState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<TxnRegistryMsg>,
        transactional_id: &str,
    ) -> Result<ActorRef<TxnMsg>, ActorProcessingErr> {
        let args = TxnCoordinatorArgs {
            transactional_id: transactional_id.to_string(),
            deps: self.deps.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, TxnCoordinator, args, myself.get_cell()).await?;
        self.coordinators.insert(transactional_id, actor.clone());
        Ok(actor)
    }
}
