//! What transactions ask of the partition actor (a child module of `partition`): the
//! bound a fetch reads to (high watermark, or last stable offset for read_committed),
//! waking parked fetches when either moves, and writing markers.

use ractor::{ActorRef, RpcReplyPort};
use tracing::debug;

use super::{ParkedAppend, ParkedReply, PartitionMsg, PartitionState};
use crate::config::FlushPolicy;
use crate::error::PartitionError;
use crate::storage::StorageError;

impl PartitionState {
    /// Where a fetch stops: the high watermark, or the last stable offset for read_committed.
    pub(super) fn fetch_bound(&self, read_committed: bool) -> i64 {
        if read_committed {
            self.log.last_stable_offset(self.high_watermark)
        } else {
            self.high_watermark
        }
    }

    /// Wakes parked fetches whose bound (high watermark or last stable offset) passed them.
    pub(super) fn wake_fetches(&mut self) {
        if self.parked_fetches.is_empty() {
            return;
        }
        let hw = self.high_watermark;
        let lso = self.log.last_stable_offset(hw);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked_fetches)
            .into_iter()
            .partition(|f| f.offset < if f.read_committed { lso } else { hw });
        self.parked_fetches = waiting;
        for fetch in ready {
            let _ = fetch.notify.send(());
        }
    }

    /// A transaction marker is always fsynced before the coordinator hears it is written:
    /// the coordinator completes the transaction only once every marker is durable.
    pub(super) fn write_marker(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        reply: RpcReplyPort<Result<(), PartitionError>>,
    ) {
        if self.failed || self.log.is_failed() {
            let _ = reply.send(Err(PartitionError::StorageFailed));
            return;
        }
        // Kafka writes markers with acks=all: a follower refuses, a leader needs the ISR.
        if let Err(err) = self.admit_produce(-1) {
            let _ = reply.send(Err(err));
            return;
        }
        let leader_epoch = self.stamping_epoch();
        match self.log.append_marker_in(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            leader_epoch,
        ) {
            Ok(info) => {
                debug!(topic = %self.args.topic, partition = self.args.partition, producer_id,
                    commit, offset = info.base_offset, "Wrote a transaction marker.");
                if self.args.flush_policy != FlushPolicy::Always {
                    self.advance_high_watermark(self.log.log_end_offset());
                }
                // The transaction's end may move the last stable offset on its own.
                self.wake_fetches();
                if self.replication.is_some() {
                    // Fsynced and on every ISR member before the coordinator hears of it.
                    self.wake_replica_fetches();
                    let reply = ParkedReply::Marker(reply);
                    self.park_for_isr(myself, info.last_offset, true, reply);
                    return;
                }
                self.parked_appends.push(ParkedAppend {
                    last_offset: info.last_offset,
                    reply: ParkedReply::Marker(reply),
                });
                self.start_flush(myself);
            }
            Err(err @ StorageError::Sequence(_)) => {
                let _ = reply.send(Err(err.into()));
            }
            Err(err) if err.is_no_space() && !self.log.is_failed() => {
                let _ = reply.send(Err(PartitionError::StorageFailed));
            }
            Err(err) => {
                self.fail(&err);
                let _ = reply.send(Err(PartitionError::StorageFailed));
            }
        }
    }
}
