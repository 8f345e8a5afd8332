//! Partition actor: one per topic-partition.
//!
//! Owns the partition's log (which is its write-ahead log), and with it the log start
//! offset, log end offset and high watermark, the produce requests parked until an fsync
//! covers them (acks=all, or every produce under the `always` flush policy) and the fetches
//! parked until the high watermark passes their offset.
//!
//! Accepts `PartitionMsg`; called by connection handlers (produce, fetch, list offsets)
//! and by the metadata actor (flush at shutdown, delete). It never calls anybody back.
//!
//! Invariants: log start offset <= high watermark <= log end offset; the high watermark
//! never moves back; an append is acknowledged only after its bytes are in the log, and
//! only after an fsync when the flush policy or acks=all demands one; a failed write or
//! fsync fails the log for writes (KAFKA_STORAGE_ERROR) and is never acknowledged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{debug, error, info, warn};

use crate::config::FlushPolicy;
use crate::error::PartitionError;
use crate::storage::batch::{set_log_append_time, set_partition_leader_epoch, split_batches};
use crate::storage::cleaner::CleanOutcome;
use crate::storage::error::Pressure;
use crate::storage::log::wall_clock_ms;
use crate::storage::producer_state::ProducerSummary;
use crate::storage::txn_state::AbortedTxn;
use crate::storage::{LogConfig, PartitionLog, Storage, StorageError};

/// An append that is acknowledged once an fsync covers `last_offset`.
struct ParkedAppend {
    last_offset: i64,
    reply: ParkedReply,
}

enum ParkedReply {
    Append {
        outcome: AppendOutcome,
        reply: RpcReplyPort<Result<AppendOutcome, PartitionError>>,
    },
    Marker(RpcReplyPort<Result<(), PartitionError>>),
}

impl ParkedReply {
    fn ok(self) {
        match self {
            ParkedReply::Append { outcome, reply } => {
                let _ = reply.send(Ok(outcome));
            }
            ParkedReply::Marker(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn fail(self, err: PartitionError) {
        match self {
            ParkedReply::Append { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            ParkedReply::Marker(reply) => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

/// A fetch waiting for data: woken once its bound passes `offset`.
struct ParkedFetch {
    offset: i64,
    read_committed: bool,
    notify: RpcReplyPort<()>,
}

pub struct PartitionState {
    args: PartitionArgs,
    log: PartitionLog,
    high_watermark: i64,
    parked_appends: Vec<ParkedAppend>,
    parked_fetches: Vec<ParkedFetch>,
    flush_in_flight: bool,
    /// Shutdown flushes asked for while a background flush ran: answered once it is done
    /// (one flush at a time).
    waiting_flushes: Vec<RpcReplyPort<Result<(), PartitionError>>>,
    tick_scheduled: bool,
    /// Set once a write or fsync failed; the cause was logged then.
    failed: bool,
    /// The last append hit a passing shortage (ENOSPC, or EMFILE on a roll); logged once
    /// per episode.
    pressure: Option<Pressure>,
    /// A cleaning pass is running on a blocking thread.
    cleaning: bool,
    gauges: crate::metrics::PartitionGauges,
    handle_timer: crate::metrics::HandleTimer,
    /// Roles and followers of a replicated partition; None for single-node.
    replication: Option<replication::Replication>,
}

pub struct Partition;

mod alter_partition;
mod flush;
mod follower;
mod isr;
mod maintenance;
mod messages;
mod producer_expiry;
mod reads;
mod record_checks;
mod replication;
mod replication_messages;
mod txn;

pub use isr::{lag_clock_ms, ReplicaState};
pub use messages::{
    AppendOutcome, PartitionArgs, PartitionMsg, PartitionOffsets, ReadOutcome,
    EARLIEST_LOCAL_TIMESTAMP, EARLIEST_TIMESTAMP, LATEST_TIERED_TIMESTAMP, LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
};
pub use producer_expiry::ProducerExpiry;
pub use replication_messages::{
    AlterPartitionRequest, FollowerOffsets, IsrRefusal, LeaderCheck, ReplicaArgs,
    ReplicaReadOutcome, ReplicationMsg, RoleView,
};

impl Actor for Partition {
    type Msg = PartitionMsg;
    type State = PartitionState;
    type Arguments = PartitionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PartitionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let storage = args.storage.clone();
        let dir = args.dir.clone();
        let config = args.log.clone();
        let (log, report) = PartitionLog::open(storage, dir, config)?;
        info!(
            topic = %args.topic,
            partition = args.partition,
            segments = report.segments,
            batches = report.batches,
            log_start_offset = report.log_start_offset,
            log_end_offset = report.log_end_offset,
            bytes_truncated = report.bytes_truncated,
            bytes_trusted = report.bytes_trusted,
            "Partition recovered its log."
        );
        // Everything recovered from the file is what a restart can serve; it counts as
        // durable from here on (the log takes it as flushed).
        let high_watermark = log.log_end_offset();
        myself.send_after(args.retention_check_interval, || {
            PartitionMsg::RetentionTick
        });
        let interval = args.producer_expiry.check_interval;
        myself.send_after(interval, || PartitionMsg::ProducerExpiryTick);
        Ok(PartitionState {
            gauges: crate::metrics::PartitionGauges::new(&args.topic, args.partition),
            handle_timer: crate::metrics::HandleTimer::new::<PartitionMsg>(),
            replication: args.replica.clone().map(replication::Replication::new),
            args,
            log,
            high_watermark,
            parked_appends: Vec::new(),
            parked_fetches: Vec::new(),
            flush_in_flight: false,
            waiting_flushes: Vec::new(),
            tick_scheduled: false,
            failed: false,
            pressure: None,
            cleaning: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let started = std::time::Instant::now();
        let result = state.handle_message(myself, message).await;
        state.handle_timer.record(started);
        state.gauges.set(
            state.log.log_start_offset(),
            state.high_watermark,
            state.log.log_end_offset(),
            state.log.size_bytes(),
        );
        result
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for parked in state.parked_appends.drain(..) {
            parked.reply.fail(PartitionError::NotAvailable);
        }
        for reply in state.waiting_flushes.drain(..) {
            let _ = reply.send(Err(PartitionError::NotAvailable));
        }
        state.fail_waiting_acks(PartitionError::NotAvailable);
        Ok(())
    }
}

impl PartitionState {
    async fn handle_message(
        &mut self,
        myself: ActorRef<PartitionMsg>,
        message: PartitionMsg,
    ) -> Result<(), ActorProcessingErr> {
        let state = self;
        match message {
            PartitionMsg::Append {
                records,
                acks,
                reply,
            } => state.append(&myself, records, acks, reply),
            PartitionMsg::QueuedAppend {
                records,
                acks,
                reply,
                admission,
            } => {
                if admission.expired() {
                    let _ = reply.send(Err(PartitionError::TimedOut));
                } else {
                    drop(admission);
                    state.append(&myself, records, acks, reply)
                }
            }
            PartitionMsg::Read {
                offset,
                max_bytes,
                min_one,
                read_committed,
                check,
                reply,
            } => {
                let read = state
                    .admit_read(check)
                    .and_then(|()| state.read(offset, max_bytes, min_one, read_committed));
                let _ = reply.send(read);
            }
            PartitionMsg::WaitForData {
                offset,
                read_committed,
                notify,
            } => {
                if offset < state.fetch_bound(read_committed)
                    || offset < state.log.log_start_offset()
                {
                    let _ = notify.send(());
                } else {
                    state.parked_fetches.retain(|f| !f.notify.is_closed());
                    state.parked_fetches.push(ParkedFetch {
                        offset,
                        read_committed,
                        notify,
                    });
                }
            }
            PartitionMsg::ListOffset {
                timestamp,
                read_committed,
                check,
                reply,
            } => {
                let listed = state
                    .admit_read(check)
                    .and_then(|()| state.list_offset(timestamp, read_committed));
                let _ = reply.send(listed);
            }
            PartitionMsg::WriteTxnMarker {
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                reply,
            } => state.write_marker(
                &myself,
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                reply,
            ),
            PartitionMsg::Producers { reply } => {
                let _ = reply.send(state.log.producer_summaries());
            }
            PartitionMsg::Offsets { reply } => {
                let _ = reply.send(state.offsets());
            }
            PartitionMsg::Flush { reply } => state.flush_requested(reply),
            PartitionMsg::Delete { reply } => {
                state.delete();
                state.gauges.remove();
                let _ = reply.send(());
                myself.stop(Some("topic deleted".into()));
            }
            PartitionMsg::FlushDone { up_to, result } => {
                state.flush_done(&myself, up_to, result);
            }
            PartitionMsg::FlushTick => {
                state.tick_scheduled = false;
                state.start_flush(&myself);
            }
            PartitionMsg::RetentionTick => {
                let now_ms = wall_clock_ms();
                state.apply_retention(now_ms);
                state.maybe_clean(&myself, now_ms);
                let interval = state.args.retention_check_interval;
                myself.send_after(interval, || PartitionMsg::RetentionTick);
            }
            PartitionMsg::ApplyRetention { now_ms, reply } => {
                let deleted = state.apply_retention(now_ms);
                let _ = reply.send((deleted, state.log.log_start_offset()));
            }
            PartitionMsg::UpdateConfig { log } => {
                state.args.log = log.clone();
                state.log.set_config(log);
            }
            PartitionMsg::CleaningDone { outcome, started } => {
                state.cleaning_done(outcome, started);
            }
            PartitionMsg::DeleteRecords { offset, reply } => {
                let _ = reply.send(state.delete_records(offset));
            }
            PartitionMsg::ProducerExpiryTick => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                state.expire_producers(&myself, now_ms);
                let interval = state.args.producer_expiry.check_interval;
                myself.send_after(interval, || PartitionMsg::ProducerExpiryTick);
            }
            PartitionMsg::ExpireProducers { now_ms, reply } => {
                let _ = reply.send(state.expire_producers(&myself, now_ms));
            }
            PartitionMsg::Replication(message) => state.replication_message(&myself, message),
        }
        Ok(())
    }

    fn append(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        records: Bytes,
        acks: i16,
        reply: RpcReplyPort<Result<AppendOutcome, PartitionError>>,
    ) {
        if self.failed || self.log.is_failed() {
            let _ = reply.send(Err(PartitionError::StorageFailed));
            return;
        }
        if let Err(err) = self.admit_produce(acks) {
            let _ = reply.send(Err(err));
            return;
        }
        // Check every batch before writing any, so a request is taken whole or not at all.
        let batches = match split_batches(&records, self.args.log.max_batch_bytes) {
            Ok(batches) => batches,
            Err(err) => {
                debug!(topic = %self.args.topic, partition = self.args.partition, %err, "Rejected a produce.");
                let _ = reply.send(Err(err.into()));
                return;
            }
        };
        if let Err(err) = self.check_records(&records, &batches) {
            debug!(topic = %self.args.topic, partition = self.args.partition, %err, "Refused a produce.");
            let _ = reply.send(Err(err));
            return;
        }
        // One copy of the request's bytes: the base offset is rewritten in place.
        let mut buf = BytesMut::from(&records[..]);
        // One stamp for the whole request, as Kafka's LogValidator takes one `now`.
        let log_append_time = self.args.log.log_append_time.then(wall_clock_ms);
        let leader_epoch = self.stamping_epoch();
        let mut first: Option<i64> = None;
        let mut last = -1;
        for (_, range) in batches {
            if let Some(now) = log_append_time {
                set_log_append_time(&mut buf[range.clone()], now);
            }
            if let Some(epoch) = leader_epoch {
                set_partition_leader_epoch(&mut buf[range.clone()], epoch);
            }
            match self.log.append(&mut buf[range]) {
                Ok(info) => {
                    if info.duplicate {
                        debug!(topic = %self.args.topic, partition = self.args.partition,
                            base_offset = info.base_offset, "Answered a retried batch with its original offsets.");
                    }
                    first.get_or_insert(info.base_offset);
                    last = info.last_offset;
                }
                Err(err @ StorageError::Sequence(_)) => {
                    debug!(topic = %self.args.topic, partition = self.args.partition, %err, "Refused a produce.");
                    let _ = reply.send(Err(err.into()));
                    return;
                }
                Err(err) if !self.log.is_failed() && err.pressure().is_some() => {
                    // A full disk or a connection flood: earlier batches of this request
                    // may be in, none is acknowledged; the log is intact and the next
                    // append tries again (KAFKA_STORAGE_ERROR is retriable for clients).
                    let pressure = err.pressure();
                    if self.pressure != pressure {
                        warn!(topic = %self.args.topic, partition = self.args.partition, %err,
                            "Produces to this partition fail until the shortage passes: {}.",
                            pressure.map(|p| p.to_string()).unwrap_or_default());
                    }
                    self.pressure = pressure;
                    let _ = reply.send(Err(PartitionError::StorageFailed));
                    return;
                }
                Err(err) => {
                    self.fail(&err);
                    let _ = reply.send(Err(PartitionError::StorageFailed));
                    return;
                }
            }
        }
        if let Some(pressure) = self.pressure.take() {
            info!(topic = %self.args.topic, partition = self.args.partition,
                "Appends succeed again; it was {pressure}.");
        }
        let outcome = AppendOutcome {
            base_offset: first.unwrap_or(last),
            last_offset: last,
            log_start_offset: self.log.log_start_offset(),
            log_append_time_ms: log_append_time.unwrap_or(-1),
        };
        let needs_fsync = match self.args.flush_policy {
            FlushPolicy::Always => true,
            FlushPolicy::AcksAll => acks == -1,
            FlushPolicy::Interval => false,
        };
        if self.args.flush_policy != FlushPolicy::Always {
            self.advance_high_watermark(self.log.log_end_offset());
        }
        if self.replication.is_some() {
            self.wake_replica_fetches();
            if acks == -1 {
                let reply = ParkedReply::Append { outcome, reply };
                // As before: fsynced first unless the flush policy is `interval`.
                let fsync = self.args.flush_policy != FlushPolicy::Interval;
                self.park_for_isr(myself, outcome.last_offset, fsync, reply);
                return;
            }
        }
        if needs_fsync && outcome.last_offset < self.log.flushed_offset() {
            // A retried batch that an earlier fsync already covered.
            if self.args.flush_policy != FlushPolicy::Always
                || outcome.last_offset < self.high_watermark
            {
                let _ = reply.send(Ok(outcome));
                return;
            }
        }
        if needs_fsync {
            self.parked_appends.push(ParkedAppend {
                last_offset: outcome.last_offset,
                reply: ParkedReply::Append { outcome, reply },
            });
            self.start_flush(myself);
        } else {
            let _ = reply.send(Ok(outcome));
            self.schedule_tick(myself);
        }
    }

    fn advance_high_watermark(&mut self, offset: i64) {
        // A replicated leader's high watermark is also bounded by its ISR.
        let offset = self.high_watermark_bound(offset);
        if offset <= self.high_watermark {
            return;
        }
        self.high_watermark = offset;
        self.wake_fetches();
        self.release_acks();
    }

    fn schedule_tick(&mut self, myself: &ActorRef<PartitionMsg>) {
        if self.tick_scheduled || self.args.flush_policy == FlushPolicy::Always {
            return;
        }
        self.tick_scheduled = true;
        myself.send_after(self.args.flush_interval, || PartitionMsg::FlushTick);
    }

    /// A write or fsync failed: never retried as if it worked, never acknowledged.
    fn fail(&mut self, err: &crate::storage::StorageError) {
        if !self.failed {
            error!(
                topic = %self.args.topic,
                partition = self.args.partition,
                %err,
                "Partition log failed; it refuses writes until the broker restarts and recovers it."
            );
        }
        self.failed = true;
        for parked in self.parked_appends.drain(..) {
            parked.reply.fail(PartitionError::StorageFailed);
        }
        for reply in self.waiting_flushes.drain(..) {
            let _ = reply.send(Err(PartitionError::StorageFailed));
        }
        self.fail_waiting_acks(PartitionError::StorageFailed);
    }
}
