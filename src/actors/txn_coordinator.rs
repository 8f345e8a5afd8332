//! Transaction coordinator: one actor per transactional id.
//!
//! Owns that id's producer id and epoch, its transaction state and the partitions and
//! groups of the open transaction, durable in its own record file, or in cluster mode on
//! its `__transaction_state` partition (`txn_store`). Every state change is durable (fsynced,
//! or on the in-sync replicas) before it is acted on: EndTxn first makes PrepareCommit or
//! PrepareAbort durable, then has every partition write (and fsync) its marker and every
//! group end the transaction's offsets, and only then records CompleteCommit/CompleteAbort
//! and answers. A restart in between (or, in cluster mode, the next leader of the id's
//! partition) finds the Prepare state and finishes the job, so a transaction is never half
//! visible. Markers carry the coordinator epoch: the leader epoch of the
//! `__transaction_state` partition this coordinator was loaded from (0 on a single node).
//!
//! Fencing follows Kafka: InitProducerId bumps the epoch (aborting any open transaction
//! with the bumped epoch, which fences the old producer at every partition); a request
//! with another producer id gets INVALID_PRODUCER_ID_MAPPING, an older epoch
//! PRODUCER_FENCED. A transaction open longer than its timeout is aborted with a bumped
//! epoch.

use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::ResponseError;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::call;
use super::group_messages::GroupMsg;
use super::group_registry::GroupRegistryMsg;
use super::metadata::MetadataMsg;
use super::partition::PartitionMsg;
use super::txn_markers::{write_remote, Marker, MarkerPlan};
use super::txn_messages::{TxnDeps, TxnMetadata, TxnMsg, TxnResult, TxnStatus};
use crate::coordinator::txn_log::TxnLog;
use crate::coordinator::txn_store::{TxnFile, TxnStore};

/// A single broker is the only coordinator there has ever been.
const SINGLE_NODE_COORDINATOR_EPOCH: i32 = 0;
/// How soon a transaction whose markers could not all be written is tried again.
const RESUME_AFTER: Duration = Duration::from_secs(1);

pub struct TxnCoordinatorArgs {
    pub transactional_id: String,
    pub deps: TxnDeps,
    /// Cluster mode: where the id's state goes, what its partition held for it when
    /// loaded, and the coordinator epoch (that partition's leader epoch). None: the id's
    /// file under `deps.dir`.
    pub logged: Option<LoggedTxn>,
}

/// An id coordinated on `__transaction_state`.
pub struct LoggedTxn {
    pub log: TxnLog,
    pub meta: Option<TxnMetadata>,
    pub coordinator_epoch: i32,
}

pub struct TxnCoordinatorState {
    transactional_id: String,
    deps: TxnDeps,
    /// None once the id expired and its file was removed (the actor is stopping).
    store: Option<TxnStore>,
    /// Sent with every marker, so a partition refuses a stale coordinator's.
    coordinator_epoch: i32,
    /// Wall clock when this coordinator started: the age of an id never initialised.
    started_ms: i64,
    /// None until the first InitProducerId.
    meta: Option<TxnMetadata>,
    /// Counts transactions begun, so a timeout timer knows whether its one is still open.
    txn: u64,
    resume_scheduled: bool,
}

pub struct TxnCoordinator;

fn code(err: ResponseError) -> i16 {
    err.code()
}

pub(super) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Actor for TxnCoordinator {
    type Msg = TxnMsg;
    type State = TxnCoordinatorState;
    type Arguments = TxnCoordinatorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: TxnCoordinatorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (store, meta, coordinator_epoch) = match args.logged {
            Some(logged) => (
                TxnStore::Log(logged.log),
                logged.meta,
                logged.coordinator_epoch,
            ),
            None => {
                let (file, meta) = TxnFile::open(
                    args.deps.storage.clone(),
                    &args.deps.dir,
                    &args.transactional_id,
                )?;
                (TxnStore::File(file), meta, SINGLE_NODE_COORDINATOR_EPOCH)
            }
        };
        let mut state = TxnCoordinatorState {
            transactional_id: args.transactional_id,
            deps: args.deps,
            store: Some(store),
            coordinator_epoch,
            started_ms: wall_clock_ms(),
            meta,
            txn: 0,
            resume_scheduled: false,
        };
        if let Some(meta) = &state.meta {
            match meta.state {
                TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                    info!(transactional_id = %state.transactional_id, state = meta.state.name(),
                        "Finishing a transaction that was ending when the broker stopped.");
                    let _ = myself.send_message(TxnMsg::Resume);
                }
                TxnStatus::Ongoing => {
                    // Its timeout counts from when it began, across the restart.
                    let elapsed = wall_clock_ms().saturating_sub(meta.start_ms).max(0) as u64;
                    let left = (meta.timeout_ms.max(0) as u64).saturating_sub(elapsed);
                    state.txn += 1;
                    let txn = state.txn;
                    myself.send_after(Duration::from_millis(left), move || TxnMsg::TimeoutCheck {
                        txn,
                    });
                }
                _ => {}
            }
        }
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
            TxnMsg::InitProducerId {
                timeout_ms,
                expected,
                reply,
            } => {
                let result = state.init_producer_id(&myself, timeout_ms, expected).await;
                let _ = reply.send(result);
            }
            TxnMsg::AddPartitions {
                producer_id,
                producer_epoch,
                partitions,
                reply,
            } => {
                let result = state
                    .add(&myself, producer_id, producer_epoch, |meta| {
                        let before = meta.partitions.len();
                        meta.partitions.extend(partitions);
                        meta.partitions.len() != before
                    })
                    .await;
                let _ = reply.send(result);
            }
            TxnMsg::AddGroup {
                producer_id,
                producer_epoch,
                group_id,
                reply,
            } => {
                let result = state
                    .add(&myself, producer_id, producer_epoch, |meta| {
                        meta.groups.insert(group_id)
                    })
                    .await;
                let _ = reply.send(result);
            }
            TxnMsg::EndTxn {
                producer_id,
                producer_epoch,
                commit,
                reply,
            } => {
                let result = state
                    .end_txn(&myself, producer_id, producer_epoch, commit)
                    .await;
                let _ = reply.send(result);
            }
            TxnMsg::Describe { reply } => {
                if let Some(meta) = &state.meta {
                    let _ = reply.send(meta.clone());
                }
            }
            TxnMsg::TimeoutCheck { txn } => {
                let open = state
                    .meta
                    .as_ref()
                    .is_some_and(|m| m.state == TxnStatus::Ongoing);
                if open && txn == state.txn {
                    info!(transactional_id = %state.transactional_id,
                        "Aborting a transaction that ran past its timeout; its producer is fenced.");
                    let _ = state.prepare_and_complete(&myself, false, true).await;
                }
            }
            TxnMsg::Resume => {
                state.resume_scheduled = false;
                let _ = state.complete(&myself).await;
            }
            TxnMsg::ExpireIfIdle { now_ms, reply } => {
                let _ = reply.send(state.expire_if_idle(&myself, now_ms).await);
            }
        }
        Ok(())
    }
}

impl TxnCoordinatorState {
    /// The producer id and epoch of a request must be the current ones.
    fn check(&self, producer_id: i64, producer_epoch: i16) -> TxnResult<&TxnMetadata> {
        let meta = self
            .meta
            .as_ref()
            .ok_or(code(ResponseError::InvalidProducerIdMapping))?;
        if meta.producer_id != producer_id {
            return Err(code(ResponseError::InvalidProducerIdMapping));
        }
        if meta.producer_epoch != producer_epoch {
            return Err(code(ResponseError::ProducerFenced));
        }
        Ok(meta)
    }

    /// Kafka's rule (TransactionStateManager): an id with no transaction in progress
    /// (Empty, CompleteCommit, CompleteAbort) whose last update is at least
    /// transactional.id.expiration.ms old is removed. Its file goes first; only then does
    /// the actor stop, so the registry forgets it and a later InitProducerId for the id
    /// starts afresh with a new producer id. Answers whether the file was removed (the
    /// registry then fsyncs the directory, once for all removed in one check).
    async fn expire_if_idle(&mut self, myself: &ActorRef<TxnMsg>, now_ms: i64) -> bool {
        let (idle, last_update_ms) = match &self.meta {
            None => (true, self.started_ms),
            Some(meta) => (
                matches!(
                    meta.state,
                    TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
                ),
                meta.last_update_ms,
            ),
        };
        let expiration = self.deps.id_expiration.as_millis().min(i64::MAX as u128) as i64;
        if !idle || now_ms.saturating_sub(last_update_ms) < expiration {
            return false;
        }
        let Some(store) = self.store.take() else {
            return false;
        };
        // A tombstone not written leaves the id's state as it was: keep coordinating it.
        let log = match &store {
            TxnStore::Log(log) => Some(log.clone()),
            TxnStore::File(_) => None,
        };
        if let Err(err) = store.remove(&self.transactional_id).await {
            if let Some(log) = log {
                debug!(transactional_id = %self.transactional_id, %err,
                    "Could not write an expired transactional id's tombstone; it is kept.");
                self.store = Some(TxnStore::Log(log));
                return false;
            }
            // The id may still have its file: keep it whole (reopened on the next request).
            warn!(transactional_id = %self.transactional_id, %err,
                "Could not remove an expired transactional id's file; the coordinator restarts from it.");
            myself.stop(Some("expiry failed".into()));
            return false;
        }
        debug!(transactional_id = %self.transactional_id, "Expired an idle transactional id.");
        self.meta = None;
        myself.stop(Some("expired".into()));
        true
    }

    async fn persist(&mut self, meta: TxnMetadata) -> TxnResult<()> {
        let Some(store) = self.store.as_mut() else {
            return Err(code(ResponseError::CoordinatorNotAvailable));
        };
        if let Err(err) = store.write(&meta).await {
            warn!(transactional_id = %self.transactional_id, %err,
                "Could not make a transaction state change durable.");
            return Err(err.code());
        }
        self.meta = Some(meta);
        Ok(())
    }

    async fn init_producer_id(
        &mut self,
        myself: &ActorRef<TxnMsg>,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> TxnResult<(i64, i16)> {
        if timeout_ms <= 0 || timeout_ms as u128 > self.deps.max_timeout.as_millis() {
            return Err(code(ResponseError::InvalidTransactionTimeout));
        }
        if let (Some(meta), Some((producer_id, epoch))) = (&self.meta, expected) {
            if producer_id != meta.producer_id {
                return Err(code(ResponseError::InvalidProducerIdMapping));
            }
            if epoch != meta.producer_epoch && epoch != meta.last_producer_epoch {
                return Err(code(ResponseError::ProducerFenced));
            }
        }
        match self.meta.as_ref().map(|m| m.state) {
            Some(TxnStatus::PrepareCommit | TxnStatus::PrepareAbort) => {
                self.complete(myself)
                    .await
                    .map_err(|_| code(ResponseError::ConcurrentTransactions))?;
            }
            Some(TxnStatus::Ongoing) => {
                // A new incarnation of the producer: the old one's transaction is aborted
                // with a bumped epoch, which fences it everywhere the markers go.
                self.prepare_and_complete(myself, false, true)
                    .await
                    .map_err(|_| code(ResponseError::ConcurrentTransactions))?;
            }
            _ => {}
        }
        let (producer_id, producer_epoch) = match &self.meta {
            Some(meta) if meta.producer_epoch < i16::MAX - 1 => {
                (meta.producer_id, meta.producer_epoch + 1)
            }
            // The first InitProducerId, or an epoch about to run out: a new producer id.
            _ => (self.allocate_producer_id().await?, 0),
        };
        let meta = TxnMetadata {
            transactional_id: self.transactional_id.clone(),
            producer_id,
            producer_epoch,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnStatus::Empty,
            partitions: Default::default(),
            groups: Default::default(),
            start_ms: -1,
            last_update_ms: wall_clock_ms(),
        };
        let answer = (meta.producer_id, meta.producer_epoch);
        self.persist(meta).await?;
        debug!(transactional_id = %self.transactional_id, producer_id = answer.0,
            epoch = answer.1, "Initialised a transactional producer.");
        Ok(answer)
    }

    async fn allocate_producer_id(&self) -> TxnResult<i64> {
        let allocate = |reply| MetadataMsg::AllocateProducerId { reply };
        match call(&self.deps.metadata, allocate, Duration::from_secs(10)).await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(err)) => Err(err.code()),
            Err(_) => Err(code(ResponseError::CoordinatorNotAvailable)),
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `add` puts the new members into the
    /// transaction and says whether anything changed. Begins a transaction if none is open.
    async fn add(
        &mut self,
        myself: &ActorRef<TxnMsg>,
        producer_id: i64,
        producer_epoch: i16,
        add: impl FnOnce(&mut TxnMetadata) -> bool,
    ) -> TxnResult<()> {
        let mut meta = self.check(producer_id, producer_epoch)?.clone();
        match meta.state {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                return Err(code(ResponseError::ConcurrentTransactions));
            }
            TxnStatus::Ongoing => {}
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
                meta.state = TxnStatus::Ongoing;
                meta.partitions.clear();
                meta.groups.clear();
                meta.start_ms = wall_clock_ms();
                self.txn += 1;
                let txn = self.txn;
                let timeout = Duration::from_millis(meta.timeout_ms.max(0) as u64);
                myself.send_after(timeout, move || TxnMsg::TimeoutCheck { txn });
            }
        }
        let began = self.meta.as_ref().is_some_and(|m| m.state != meta.state);
        if !add(&mut meta) && !began {
            return Ok(());
        }
        meta.last_update_ms = wall_clock_ms();
        self.persist(meta).await
    }

    async fn end_txn(
        &mut self,
        myself: &ActorRef<TxnMsg>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> TxnResult<()> {
        let state = self.check(producer_id, producer_epoch)?.state;
        match (state, commit) {
            (TxnStatus::Ongoing, _) => self.prepare_and_complete(myself, commit, false).await,
            // A retry of an EndTxn whose markers were not all written yet.
            (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
                self.complete(myself).await
            }
            // A retry of one already done.
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(()),
            _ => Err(code(ResponseError::InvalidTxnState)),
        }
    }

    /// Records the decision durably, then writes the markers. `bump`: the coordinator ends
    /// the transaction on its own (timeout, new producer incarnation) and fences the producer.
    async fn prepare_and_complete(
        &mut self,
        myself: &ActorRef<TxnMsg>,
        commit: bool,
        bump: bool,
    ) -> TxnResult<()> {
        let Some(mut meta) = self.meta.clone() else {
            return Err(code(ResponseError::InvalidProducerIdMapping));
        };
        if bump {
            meta.last_producer_epoch = meta.producer_epoch;
            meta.producer_epoch = meta.producer_epoch.saturating_add(1);
        }
        meta.state = if commit {
            TxnStatus::PrepareCommit
        } else {
            TxnStatus::PrepareAbort
        };
        meta.last_update_ms = wall_clock_ms();
        self.persist(meta).await?;
        self.complete(myself).await
    }

    /// Writes the markers of a PrepareCommit/PrepareAbort transaction into each partition
    /// and ends its offsets in each group; once all are durable, records the completion.
    async fn complete(&mut self, myself: &ActorRef<TxnMsg>) -> TxnResult<()> {
        let Some(meta) = self.meta.clone() else {
            return Ok(());
        };
        let commit = match meta.state {
            TxnStatus::PrepareCommit => true,
            TxnStatus::PrepareAbort => false,
            _ => return Ok(()),
        };
        let routes = self.deps.routing.borrow().clone();
        let timeout = self.deps.marker_timeout;
        let connector = &self.deps.connector;
        let plan = MarkerPlan::new(&routes, &meta.partitions, &meta.groups);
        let coordinator_epoch = self.coordinator_epoch;
        let markers = plan.local.into_iter().map(|(topic, partition, actor)| {
            let write = move |reply| PartitionMsg::WriteTxnMarker {
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                commit,
                coordinator_epoch,
                reply,
            };
            async move {
                match call(&actor, write, timeout).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(format!("{topic}-{partition}: {err}")),
                    Err(err) => Err(format!("{topic}-{partition}: {err}")),
                }
            }
        });
        let marker = Marker {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            commit,
            coordinator_epoch: self.coordinator_epoch,
        };
        let remote = plan.remote.iter().map(|(address, partitions)| {
            write_remote(connector, address, marker, partitions, timeout)
        });
        let groups = plan.local_groups.iter().map(|group_id| {
            let registry = self.deps.groups.clone();
            let producer_id = meta.producer_id;
            async move {
                let get = |reply| GroupRegistryMsg::Get {
                    group_id: group_id.clone(),
                    create: true,
                    reply,
                };
                let group = match call(&registry, get, timeout).await {
                    Ok(Ok(Some(group))) => group,
                    _ => return Err(format!("group {group_id}: no coordinator")),
                };
                let end = |reply| GroupMsg::TxnEnd {
                    producer_id,
                    commit,
                    reply,
                };
                match call(&group, end, timeout).await {
                    Ok(0) => Ok(()),
                    Ok(error) => Err(format!("group {group_id}: error {error}")),
                    Err(err) => Err(format!("group {group_id}: {err}")),
                }
            }
        });
        let (marker_results, group_results, remote_results) =
            futures::join!(join_all(markers), join_all(groups), join_all(remote));
        let failures: Vec<String> = marker_results
            .into_iter()
            .chain(group_results)
            .filter_map(Result::err)
            .chain(remote_results.into_iter().flatten())
            .chain(
                plan.leaderless
                    .into_iter()
                    .map(|p| format!("{p}: no leader")),
            )
            .collect();
        if !failures.is_empty() {
            warn!(transactional_id = %self.transactional_id, failures = ?failures,
                "Could not write every transaction marker; trying again shortly.");
            if !self.resume_scheduled {
                self.resume_scheduled = true;
                myself.send_after(RESUME_AFTER, || TxnMsg::Resume);
            }
            return Err(code(ResponseError::CoordinatorNotAvailable));
        }
        let done = TxnMetadata {
            state: if commit {
                TxnStatus::CompleteCommit
            } else {
                TxnStatus::CompleteAbort
            },
            partitions: Default::default(),
            groups: Default::default(),
            start_ms: -1,
            last_update_ms: wall_clock_ms(),
            ..meta
        };
        debug!(transactional_id = %self.transactional_id, commit, "Completed a transaction.");
        self.persist(done).await
    }
}
