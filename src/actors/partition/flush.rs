//! The partition actor's flushes (a child module of `partition`): the group commit on a
//! blocking thread and the synchronous shutdown flush. One flush at a time, always: a
//! shutdown flush that arrives while a background one is in flight waits for it, since
//! flushing beside it could acknowledge appends whose fsync has not returned.

use ractor::{ActorRef, RpcReplyPort};

use super::{PartitionMsg, PartitionState};
use crate::config::FlushPolicy;
use crate::error::PartitionError;

impl PartitionState {
    /// The shutdown flush: now, or once the background flush in flight is done.
    pub(super) fn flush_requested(&mut self, reply: RpcReplyPort<Result<(), PartitionError>>) {
        if self.flush_in_flight {
            self.waiting_flushes.push(reply);
        } else {
            let _ = reply.send(self.flush_now());
        }
    }

    /// Synchronous flush used at shutdown; also releases every parked append it covers.
    pub(super) fn flush_now(&mut self) -> Result<(), PartitionError> {
        if self.failed {
            return Err(PartitionError::StorageFailed);
        }
        match self.log.flush() {
            Ok(()) => {
                let flushed = self.log.flushed_offset();
                self.released_by_flush(flushed);
                Ok(())
            }
            Err(err) => {
                self.fail(&err);
                Err(PartitionError::StorageFailed)
            }
        }
    }

    /// Group commit: one fsync, on a blocking thread, covers every append written so far.
    pub(super) fn start_flush(&mut self, myself: &ActorRef<PartitionMsg>) {
        if self.flush_in_flight || self.failed {
            return;
        }
        let Some(job) = self.log.begin_flush() else {
            return;
        };
        self.flush_in_flight = true;
        let myself = myself.clone();
        crate::storage::io::spawn_blocking(self.args.storage.as_ref(), move || {
            let result = job.run();
            let _ = myself.send_message(PartitionMsg::FlushDone {
                up_to: job.up_to,
                result,
            });
        });
    }

    pub(super) fn flush_done(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        up_to: i64,
        result: std::io::Result<()>,
    ) {
        self.flush_in_flight = false;
        match self.log.complete_flush(up_to, result) {
            Ok(()) => {
                self.released_by_flush(self.log.flushed_offset());
                if !self.waiting_flushes.is_empty() {
                    let result = self.flush_now();
                    for reply in self.waiting_flushes.drain(..) {
                        let _ = reply.send(result.clone());
                    }
                    return;
                }
                // Appends that arrived during that fsync share the next one, as do a
                // replicated leader's acks=all produces it did not cover.
                if !self.parked_appends.is_empty() || self.acks_wait_for_fsync() {
                    self.start_flush(myself);
                }
            }
            Err(err) => self.fail(&err),
        }
    }

    pub(super) fn released_by_flush(&mut self, flushed: i64) {
        if self.args.flush_policy == FlushPolicy::Always {
            self.advance_high_watermark(flushed);
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked_appends)
            .into_iter()
            .partition(|p| p.last_offset < flushed);
        self.parked_appends = waiting;
        for parked in done {
            parked.reply.ok();
        }
        // A replicated leader's acks=all produces and a follower's deferred truncation.
        self.release_acks();
        self.run_pending_truncation();
    }
}
