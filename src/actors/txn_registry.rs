//! Transaction registry: finds the coordinator actor of a transactional id, creating it on
//! InitProducerId. Owns the map from transactional id to coordinator; at start it loads
//! every file under `<data_dir>/__transactions/`, so open transactions time out and
//! transactions that were ending finish after a restart. Every
//! `transaction_remove_expired_transaction_cleanup_interval_ms` it asks each coordinator
//! to expire itself if idle (transactional.id.expiration.ms), so ids and files do not
//! pile up.

use std::time::Duration;

use futures::future::join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{info, warn};

use super::call;
use super::children::Children;
use super::txn_coordinator::{wall_clock_ms, TxnCoordinator, TxnCoordinatorArgs};
use super::txn_messages::{TxnDeps, TxnMsg};
use super::txn_store::TxnStore;
use crate::storage::record_file::create_store_dir;

/// How long an expiry check waits for one coordinator (one busy writing markers is not
/// idle anyway; it is looked at again at the next check).
const EXPIRY_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// How many transactional ids are held in memory (one coordinator each).
    Count { reply: RpcReplyPort<usize> },
    /// The expiration check interval passed: expire idle ids by the system clock.
    ExpirationTick,
    /// Ask every coordinator to expire itself if idle as of `now_ms` (tests drive the
    /// clock); answers how many ids were removed, once their removal is durable.
    ExpireIdle {
        now_ms: i64,
        reply: RpcReplyPort<usize>,
    },
    /// An expiry check finished.
    ExpiryDone,
}

impl crate::metrics::ActorKind for TxnRegistryMsg {
    const KIND: &'static str = "transaction_registry";
}

pub struct TxnRegistryState {
    deps: TxnDeps,
    coordinators: Children<TxnMsg>,
    gauge: metrics::Gauge,
    /// An expiry check is running; the timer skips a check while one is.
    expiring: bool,
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
            gauge: metrics::gauge!(crate::metrics::TRANSACTIONAL_IDS),
            expiring: false,
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
        state.gauge.set(state.coordinators.len() as f64);
        myself.send_after(state.deps.expiration_check_interval, || {
            TxnRegistryMsg::ExpirationTick
        });
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
            TxnRegistryMsg::Count { reply } => {
                let _ = reply.send(state.coordinators.len());
            }
            TxnRegistryMsg::ExpirationTick => {
                if !state.expiring {
                    state.expire_idle(&myself, wall_clock_ms(), None);
                }
                let interval = state.deps.expiration_check_interval;
                myself.send_after(interval, || TxnRegistryMsg::ExpirationTick);
            }
            TxnRegistryMsg::ExpireIdle { now_ms, reply } => {
                state.expire_idle(&myself, now_ms, Some(reply))
            }
            TxnRegistryMsg::ExpiryDone => state.expiring = false,
        }
        state.gauge.set(state.coordinators.len() as f64);
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
        state.gauge.set(state.coordinators.len() as f64);
        Ok(())
    }
}

impl TxnRegistryState {
    /// Each coordinator judges its own idleness (only it knows its state; one busy ending
    /// a transaction answers after that, and then is not idle). The check runs beside the
    /// registry, which keeps serving; the expired coordinators stop and are forgotten as
    /// their stops arrive. One directory fsync makes all of one check's removals durable.
    fn expire_idle(
        &mut self,
        myself: &ActorRef<TxnRegistryMsg>,
        now_ms: i64,
        reply: Option<RpcReplyPort<usize>>,
    ) {
        self.expiring = true;
        let coordinators = self.coordinators.all();
        let (storage, dir) = (self.deps.storage.clone(), self.deps.dir.clone());
        let myself = myself.clone();
        tokio::spawn(async move {
            let asks = coordinators.iter().map(|coordinator| {
                let ask = |reply| TxnMsg::ExpireIfIdle { now_ms, reply };
                call(coordinator, ask, EXPIRY_ANSWER_TIMEOUT)
            });
            let answers = join_all(asks).await;
            let removed = answers.iter().filter(|a| matches!(a, Ok(true))).count();
            // A coordinator that answered late may have removed its file too.
            let late = answers.iter().any(|a| a.is_err());
            if removed > 0 || late {
                let inline = storage.clone();
                let synced = crate::storage::io::spawn_blocking(inline.as_ref(), move || {
                    storage.sync_dir(&dir)
                })
                .await;
                match synced.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
                    Ok(()) => info!(removed, "Removed expired transactional ids."),
                    // Not durable: after a power cut those idle ids come back, and expire again.
                    Err(err) => warn!(removed, %err,
                        "Could not fsync the transaction directory after removing expired ids."),
                }
            }
            if let Some(reply) = reply {
                let _ = reply.send(removed);
            }
            let _ = myself.send_message(TxnRegistryMsg::ExpiryDone);
        });
    }

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
