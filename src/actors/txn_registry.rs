//! Transaction registry: finds the coordinator actor of a transactional id, creating it on
//! InitProducerId. Owns the map from transactional id to coordinator; at start it loads
//! every file under `<data_dir>/__transactions/`, so open transactions time out and
//! transactions that were ending finish after a restart. Every
//! `transaction_remove_expired_transaction_cleanup_interval_ms` it asks each coordinator
//! to expire itself if idle (transactional.id.expiration.ms), so ids and files do not
//! pile up.
//!
//! In cluster mode (`transaction_state` set) the ids live on `__transaction_state`
//! instead: this broker coordinates the ids of the partitions it leads, loading each
//! partition as soon as it leads it (see `txn_loading`); a request for an id of another
//! partition is answered NOT_COORDINATOR.

use std::time::Duration;

use futures::future::join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{info, warn};

use super::call;
use super::children::Children;
use super::txn_coordinator::{wall_clock_ms, LoggedTxn, TxnCoordinator, TxnCoordinatorArgs};
use super::txn_loading::LoadedTxnPartitions;
use super::txn_messages::{TxnDeps, TxnMsg};
use crate::coordinator::txn_store::TxnFile;
use crate::storage::record_file::create_store_dir;

/// How long an expiry check waits for one coordinator (one busy writing markers is not
/// idle anyway; it is looked at again at the next check).
const EXPIRY_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

pub enum TxnRegistryMsg {
    /// The coordinator of `transactional_id`; created when `create` is true. Err: the
    /// error code when this broker does not coordinate the id now (cluster mode:
    /// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE).
    Get {
        transactional_id: String,
        create: bool,
        reply: RpcReplyPort<Result<Option<ActorRef<TxnMsg>>, i16>>,
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
    /// Cluster mode: the routing snapshot changed; load the `__transaction_state`
    /// partitions led here now, unload the others.
    RoutesChanged,
    /// Cluster mode: try again the loads that could not finish.
    LoadRetry,
}

impl crate::metrics::ActorKind for TxnRegistryMsg {
    const KIND: &'static str = "transaction_registry";
}

pub struct TxnRegistryState {
    pub(super) deps: TxnDeps,
    pub(super) coordinators: Children<TxnMsg>,
    gauge: metrics::Gauge,
    /// An expiry check is running; the timer skips a check while one is.
    expiring: bool,
    /// Cluster mode: the `__transaction_state` partitions loaded here, by index.
    pub(super) loaded: LoadedTxnPartitions,
    /// Cluster mode: a LoadRetry is on its way.
    pub(super) load_retry_scheduled: bool,
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
        let mut state = TxnRegistryState {
            deps,
            coordinators: Children::default(),
            gauge: metrics::gauge!(crate::metrics::TRANSACTIONAL_IDS),
            expiring: false,
            loaded: Default::default(),
            load_retry_scheduled: false,
        };
        myself.send_after(state.deps.expiration_check_interval, || {
            TxnRegistryMsg::ExpirationTick
        });
        if state.deps.transaction_state.is_some() {
            info!("Transactional ids live on __transaction_state; each partition loads when it is led here.");
            watch_routes(&myself, state.deps.routing.clone());
            let _ = myself.send_message(TxnRegistryMsg::RoutesChanged);
            return Ok(state);
        }
        create_store_dir(state.deps.storage.as_ref(), &state.deps.dir)?;
        for path in state.deps.storage.list_dir(&state.deps.dir)? {
            if path.extension().is_none_or(|e| e != "log") {
                continue;
            }
            // A corrupt transaction file fails the start (naming it) rather than being skipped.
            match TxnFile::transactional_id_of(state.deps.storage.clone(), &path)? {
                Some(id) => {
                    state.spawn(&myself, &id, None).await?;
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
                let found = match state.deps.transaction_state.clone() {
                    Some(topic) => {
                        state
                            .logged_coordinator(&myself, &topic, &transactional_id, create)
                            .await
                    }
                    None => Ok(match state.coordinators.get(&transactional_id) {
                        Some(actor) => Some(actor.clone()),
                        None if create => {
                            match state.spawn(&myself, &transactional_id, None).await {
                                Ok(actor) => Some(actor),
                                Err(err) => {
                                    warn!(transactional_id = %transactional_id, %err,
                                        "Could not start a transaction coordinator.");
                                    None
                                }
                            }
                        }
                        None => None,
                    }),
                };
                let _ = reply.send(found);
            }
            TxnRegistryMsg::All { reply } => {
                if let Some(topic) = state.deps.transaction_state.clone() {
                    state.unload_lost_partitions(&topic);
                }
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
            TxnRegistryMsg::RoutesChanged | TxnRegistryMsg::LoadRetry => {
                if matches!(message, TxnRegistryMsg::LoadRetry) {
                    state.load_retry_scheduled = false;
                }
                if let Some(topic) = state.deps.transaction_state.clone() {
                    state.load_led_partitions(&myself, &topic).await;
                }
            }
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
                "A transaction coordinator failed; the next request restarts it from its file or partition.");
            if state.deps.transaction_state.is_some() {
                state.reload_partition_of(&name);
            }
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
        // Tombstones on __transaction_state need no directory fsync.
        let files = self.deps.transaction_state.is_none();
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
            if files && (removed > 0 || late) {
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

    pub(super) async fn spawn(
        &mut self,
        myself: &ActorRef<TxnRegistryMsg>,
        transactional_id: &str,
        logged: Option<LoggedTxn>,
    ) -> Result<ActorRef<TxnMsg>, ActorProcessingErr> {
        let args = TxnCoordinatorArgs {
            transactional_id: transactional_id.to_string(),
            deps: self.deps.clone(),
            logged,
        };
        let (actor, _) = Actor::spawn_linked(None, TxnCoordinator, args, myself.get_cell()).await?;
        self.coordinators.insert(transactional_id, actor.clone());
        Ok(actor)
    }
}

/// Tells the registry of every change of the routing snapshot, until it stops.
fn watch_routes(myself: &ActorRef<TxnRegistryMsg>, mut routing: super::routing::RoutingSnapshot) {
    let myself = myself.clone();
    tokio::spawn(async move {
        while routing.changed().await.is_ok() {
            if myself.send_message(TxnRegistryMsg::RoutesChanged).is_err() {
                break;
            }
        }
    });
}
