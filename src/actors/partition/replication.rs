//! Partition roles (a child module of `partition`), as Kafka's `Partition`: the controller
//! makes a replica leader or follower for a leader epoch.
//!
//! - Leader: stamps its epoch on appended batches; learns each follower's log end offset
//!   from its fetches (served up to the log end, not the high watermark); the high
//!   watermark is the smallest log end offset over the ISR; acks=all is answered once the
//!   ISR has the batch. ISR changes are asked of the controller through the channel in
//!   `ReplicaArgs` (the partition never calls anybody) and applied when it answers
//!   (`UpdateIsr`, or a new `BecomeLeader`).
//! - Follower: refuses produces and consumer reads (NOT_LEADER_OR_FOLLOWER); takes the
//!   leader's batches as they are from the replica fetcher, truncates when told (KIP-279)
//!   and follows the leader's high watermark.
//!
//! A partition spawned without `ReplicaArgs` is single-node and none of this applies.
//! The follower's methods are in `follower`, the leader's ISR changes in `alter_partition`,
//! the messages in `replication_messages`.

use ractor::{ActorRef, RpcReplyPort};
use tracing::{debug, info};

use super::isr::{lag_clock_ms, Leadership};
use super::replication_messages::{
    FollowerOffsets, LeaderCheck, ReplicaArgs, ReplicaReadOutcome, ReplicationMsg, RoleView,
};
use super::{ParkedReply, PartitionMsg, PartitionState};
use crate::config::FlushPolicy;
use crate::error::PartitionError;

#[derive(Debug)]
pub(super) enum Role {
    /// Replicated, and the controller has not said which role yet.
    Unassigned,
    Leader(Leadership),
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
}

/// An acks=all append waiting for the ISR (and, when the flush policy asks, an fsync).
struct WaitingAck {
    last_offset: i64,
    needs_fsync: bool,
    reply: ParkedReply,
}

/// A truncation asked while a flush job ran: done once it completes.
type Truncation = (
    i64,
    bool,
    RpcReplyPort<Result<FollowerOffsets, PartitionError>>,
);

pub(super) struct Replication {
    pub(super) args: ReplicaArgs,
    pub(super) role: Role,
    waiting_acks: Vec<WaitingAck>,
    /// Follower fetches waiting for the log end to pass their offset (long polls).
    parked_replica_fetches: Vec<(i64, RpcReplyPort<()>)>,
    pub(super) pending_truncation: Option<Truncation>,
    pub(super) isr_tick_scheduled: bool,
}

impl Replication {
    pub(super) fn new(args: ReplicaArgs) -> Replication {
        Replication {
            args,
            role: Role::Unassigned,
            waiting_acks: Vec::new(),
            parked_replica_fetches: Vec::new(),
            pending_truncation: None,
            isr_tick_scheduled: false,
        }
    }

    pub(super) fn leadership(&self) -> Option<&Leadership> {
        match &self.role {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }
}

impl PartitionState {
    pub(super) fn replication_message(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        message: ReplicationMsg,
    ) {
        if self.replication.is_none() {
            // A single-node partition has no roles: every such request is refused, but a
            // consumer's OffsetForLeaderEpoch, answered for its one epoch.
            match message {
                ReplicationMsg::EndOffsetForEpoch {
                    current_leader_epoch,
                    leader_epoch,
                    reply,
                } => {
                    let _ =
                        reply.send(self.single_node_end_offset(current_leader_epoch, leader_epoch));
                }
                other => other.refuse(PartitionError::NotAvailable),
            }
            return;
        }
        match message {
            ReplicationMsg::BecomeLeader {
                leader_epoch,
                partition_epoch,
                isr,
                replicas,
            } => self.become_leader(myself, (leader_epoch, partition_epoch), isr, replicas),
            ReplicationMsg::BecomeFollower {
                leader,
                leader_epoch,
            } => self.become_follower(leader, leader_epoch),
            ReplicationMsg::UpdateIsr {
                leader_epoch,
                partition_epoch,
                isr,
            } => self.update_isr((leader_epoch, partition_epoch), isr),
            ReplicationMsg::IsrChangeRefused {
                leader_epoch,
                partition_epoch,
                new_isr,
                why,
            } => self.isr_change_refused((leader_epoch, partition_epoch), new_isr, why),
            ReplicationMsg::ReplicaFetch {
                replica_id,
                fetch_offset,
                current_leader_epoch,
                max_bytes,
                now_ms,
                on_append,
                reply,
            } => {
                let fetch = (replica_id, fetch_offset, current_leader_epoch);
                let result = self.replica_fetch(fetch, max_bytes, now_ms);
                if let (Ok(read), Some(notify)) = (&result, on_append) {
                    if read.records.is_empty() {
                        self.park_replica_fetch(fetch_offset, notify);
                    }
                }
                let _ = reply.send(result);
            }
            ReplicationMsg::AppendAsFollower {
                records,
                leader_epoch,
                leader_high_watermark,
                reply,
            } => {
                let result =
                    self.append_as_follower(myself, records, leader_epoch, leader_high_watermark);
                let _ = reply.send(result);
            }
            ReplicationMsg::TruncateTo {
                offset,
                fully,
                reply,
            } => {
                if !matches!(self.role(), Some(Role::Follower { .. })) {
                    let _ = reply.send(Err(PartitionError::NotAvailable));
                } else if self.flush_in_flight {
                    if let Some(r) = self.replication.as_mut() {
                        if let Some((_, _, old)) =
                            r.pending_truncation.replace((offset, fully, reply))
                        {
                            let _ = old.send(Err(PartitionError::NotAvailable));
                        }
                    }
                } else {
                    let _ = reply.send(self.truncate(offset, fully));
                }
            }
            ReplicationMsg::EndOffsetForEpoch {
                current_leader_epoch,
                leader_epoch,
                reply,
            } => {
                // Kafka answers from the leader only, the epoch checked first.
                let result =
                    self.check_leader_epoch(current_leader_epoch)
                        .and_then(|()| match self.role() {
                            Some(Role::Leader(_)) => {
                                Ok(self.log.end_offset_for_epoch(leader_epoch))
                            }
                            _ => Err(PartitionError::NotAvailable),
                        });
                let _ = reply.send(result);
            }
            ReplicationMsg::DescribeRole { reply } => {
                let _ = reply.send(self.role_view());
            }
            ReplicationMsg::UpdateMinInsyncReplicas {
                min_insync_replicas,
            } => {
                if let Some(r) = self.replication.as_mut() {
                    r.args.min_insync_replicas = min_insync_replicas;
                }
            }
            ReplicationMsg::CheckIsr { now_ms, reply } => {
                // The timer's check goes by `lag_clock_ms`; tests give theirs.
                let now_ms = if reply.is_some() {
                    now_ms
                } else {
                    lag_clock_ms()
                };
                let asked = self.check_isr(now_ms);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(asked);
                    }
                    None => self.schedule_isr_tick(myself, true),
                }
            }
        }
    }

    fn role_view(&self) -> RoleView {
        let mut view = RoleView {
            leader: None,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            followers: Vec::new(),
            high_watermark: self.high_watermark,
            log_end_offset: self.log.log_end_offset(),
            log_start_offset: self.log.log_start_offset(),
            latest_epoch: self.log.latest_epoch().unwrap_or(-1),
        };
        match self
            .replication
            .as_ref()
            .map(|r| (&r.role, r.args.broker_id))
        {
            Some((Role::Leader(l), me)) => {
                view.leader = Some(me);
                view.leader_epoch = l.leader_epoch;
                view.partition_epoch = l.partition_epoch;
                view.replicas = l.replicas.clone();
                view.isr = l.isr.clone();
                view.followers = l.followers.iter().map(|(r, s)| (*r, *s)).collect();
            }
            Some((
                Role::Follower {
                    leader,
                    leader_epoch,
                },
                _,
            )) => {
                view.leader = Some(*leader);
                view.leader_epoch = *leader_epoch;
            }
            _ => {}
        }
        view
    }

    pub(super) fn role(&self) -> Option<&Role> {
        self.replication.as_ref().map(|r| &r.role)
    }

    /// The epoch to stamp on appended batches: Some while leading a replicated partition.
    pub(super) fn stamping_epoch(&self) -> Option<i32> {
        self.replication
            .as_ref()
            .and_then(|r| r.leadership())
            .map(|l| l.leader_epoch)
    }

    /// Refuses a produce this replica may not take: not the leader (NOT_LEADER_OR_FOLLOWER),
    /// or acks=all with an ISR below min.insync.replicas (NOT_ENOUGH_REPLICAS, nothing
    /// appended).
    pub(super) fn admit_produce(&self, acks: i16) -> Result<(), PartitionError> {
        let Some(r) = &self.replication else {
            return Ok(());
        };
        let Some(leadership) = r.leadership() else {
            return Err(PartitionError::NotAvailable);
        };
        if acks == -1 && (leadership.isr.len() as i32) < r.args.min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// A client's read, as Kafka's Partition.getLocalLog: the client's current leader
    /// epoch is checked first (KIP-320), then the role. A leader serves, and so does a
    /// follower (below its high watermark, which only holds what the leader committed)
    /// unless `leader_only`: the protocol layer lets only Fetch v11+ read from one
    /// (KIP-392). A single-node partition has one leader epoch, 0.
    pub(super) fn admit_read(&self, check: LeaderCheck) -> Result<(), PartitionError> {
        let Some(role) = self.role() else {
            return match check.current_leader_epoch {
                e if e > 0 => Err(PartitionError::UnknownLeaderEpoch),
                _ => Ok(()),
            };
        };
        self.check_leader_epoch(check.current_leader_epoch)?;
        match role {
            Role::Leader(_) => Ok(()),
            Role::Follower { .. } if !check.leader_only => Ok(()),
            _ => Err(PartitionError::NotAvailable),
        }
    }

    /// The leader epoch `offset` was written in, as the epoch cache says (-1: none); on a
    /// single-node partition 0, its one epoch.
    pub(super) fn epoch_of_offset(&self, offset: i64) -> i32 {
        if self.replication.is_none() {
            return 0;
        }
        self.log
            .leader_epochs()
            .entries()
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map_or(-1, |e| e.epoch)
    }

    /// Parks an acks=all produce (or a transaction marker) of a replicated leader until the
    /// ISR has it, and an fsync covers it when `needs_fsync`.
    pub(super) fn park_for_isr(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        last_offset: i64,
        needs_fsync: bool,
        reply: ParkedReply,
    ) {
        let Some(r) = self.replication.as_mut() else {
            return reply.fail(PartitionError::NotAvailable);
        };
        r.waiting_acks.push(WaitingAck {
            last_offset,
            needs_fsync,
            reply,
        });
        if needs_fsync {
            self.start_flush(myself);
        }
        self.release_acks();
    }

    /// The most the high watermark may be: a leader's ISR followers' smallest log end
    /// offset; a follower's leader's high watermark (as last fetched).
    pub(super) fn high_watermark_bound(&self, offset: i64) -> i64 {
        match self.role() {
            Some(Role::Leader(l)) => l.isr_followers_min().map_or(offset, |m| offset.min(m)),
            Some(_) => offset.min(self.high_watermark),
            None => offset,
        }
    }

    /// Whether a parked acks=all produce still waits for an fsync to cover it.
    pub(super) fn acks_wait_for_fsync(&self) -> bool {
        let flushed = self.log.flushed_offset();
        self.replication.as_ref().is_some_and(|r| {
            r.waiting_acks
                .iter()
                .any(|w| w.needs_fsync && w.last_offset >= flushed)
        })
    }

    /// The high watermark moved or an fsync finished: answers the acks=all produces the
    /// ISR now has (NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below
    /// min.insync.replicas by then), and wakes follower fetches.
    pub(super) fn release_acks(&mut self) {
        let high_watermark = self.high_watermark;
        let flushed = self.log.flushed_offset();
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        let isr_size = r.leadership().map_or(0, |l| l.isr.len() as i32);
        let enough = isr_size >= r.args.min_insync_replicas;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut r.waiting_acks)
            .into_iter()
            .partition(|w| {
                w.last_offset < high_watermark && (!w.needs_fsync || w.last_offset < flushed)
            });
        r.waiting_acks = waiting;
        for ack in done {
            if enough {
                ack.reply.ok();
            } else {
                ack.reply.fail(PartitionError::NotEnoughReplicasAfterAppend);
            }
        }
    }

    /// A follower's fetch that read nothing waits for the log end to pass `offset`
    /// (answered at once when it already has, or when this replica does not lead).
    fn park_replica_fetch(&mut self, offset: i64, notify: RpcReplyPort<()>) {
        let leading = matches!(self.role(), Some(Role::Leader(_)));
        if !leading || offset < self.log.log_end_offset() {
            let _ = notify.send(());
        } else if let Some(r) = self.replication.as_mut() {
            r.parked_replica_fetches.retain(|(_, n)| !n.is_closed());
            r.parked_replica_fetches.push((offset, notify));
        }
    }

    /// After an append: follower fetches parked at the old log end can be answered.
    pub(super) fn wake_replica_fetches(&mut self) {
        let log_end_offset = self.log.log_end_offset();
        if let Some(r) = self.replication.as_mut() {
            let (ready, parked): (Vec<_>, Vec<_>) = std::mem::take(&mut r.parked_replica_fetches)
                .into_iter()
                .partition(|(offset, _)| *offset < log_end_offset);
            r.parked_replica_fetches = parked;
            for (_, notify) in ready {
                let _ = notify.send(());
            }
        }
    }

    /// Fails every waiting acks=all produce (the leadership ended or the actor stops).
    pub(super) fn fail_waiting_acks(&mut self, err: PartitionError) {
        if let Some(r) = self.replication.as_mut() {
            for ack in r.waiting_acks.drain(..) {
                ack.reply.fail(err.clone());
            }
            for (_, notify) in r.parked_replica_fetches.drain(..) {
                let _ = notify.send(());
            }
        }
    }

    pub(super) fn leader_offset(&self) -> i64 {
        if self.args.flush_policy == FlushPolicy::Always {
            self.log.flushed_offset()
        } else {
            self.log.log_end_offset()
        }
    }

    fn become_leader(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        (leader_epoch, partition_epoch): (i32, i32),
        isr: Vec<i32>,
        replicas: Vec<i32>,
    ) {
        let Some(r) = self.replication.as_ref() else {
            return;
        };
        let me = r.args.broker_id;
        if let Role::Leader(l) = &r.role {
            if l.leader_epoch > leader_epoch {
                debug!(topic = %self.args.topic, partition = self.args.partition,
                    leader_epoch, "Ignored a leadership for an older epoch.");
                return;
            }
        }
        let log_end_offset = self.log.log_end_offset();
        if let Err(err) = self.log.assign_epoch(leader_epoch, log_end_offset) {
            self.fail(&err);
            return;
        }
        info!(topic = %self.args.topic, partition = self.args.partition, leader_epoch,
            partition_epoch, ?isr, log_end_offset, "Became the partition's leader.");
        let now = lag_clock_ms();
        let leadership = Leadership::new(me, leader_epoch, partition_epoch, isr, replicas, now);
        if let Some(r) = self.replication.as_mut() {
            r.role = Role::Leader(leadership);
        }
        self.advance_high_watermark(self.leader_offset());
        self.release_acks();
        self.schedule_isr_tick(myself, false);
    }

    fn become_follower(&mut self, leader: i32, leader_epoch: i32) {
        if let Some(Role::Follower {
            leader_epoch: e, ..
        }) = self.role()
        {
            if *e > leader_epoch {
                return;
            }
        }
        info!(topic = %self.args.topic, partition = self.args.partition, leader, leader_epoch,
            "Became a follower.");
        // A replica opened at start took its recovered log end as high watermark, which may
        // hold records never committed. As a follower it serves consumers (KIP-392) only
        // what its leader's answers then say is committed.
        if matches!(self.role(), Some(Role::Unassigned)) {
            self.high_watermark = self.log.log_start_offset();
        }
        self.fail_waiting_acks(PartitionError::NotAvailable);
        // Parked consumer fetches wake and are told this replica no longer leads.
        for fetch in self.parked_fetches.drain(..) {
            let _ = fetch.notify.send(());
        }
        if let Some(r) = self.replication.as_mut() {
            r.role = Role::Follower {
                leader,
                leader_epoch,
            };
        }
    }

    pub(super) fn check_leader_epoch(
        &self,
        current_leader_epoch: i32,
    ) -> Result<(), PartitionError> {
        let epoch = match self.role() {
            Some(Role::Leader(l)) => l.leader_epoch,
            Some(Role::Follower { leader_epoch, .. }) => *leader_epoch,
            _ => return Err(PartitionError::NotAvailable),
        };
        match current_leader_epoch {
            e if e < 0 || e == epoch => Ok(()),
            e if e < epoch => Err(PartitionError::FencedLeaderEpoch),
            _ => Err(PartitionError::UnknownLeaderEpoch),
        }
    }

    /// OffsetForLeaderEpoch on a single-node partition: there is one leader epoch, 0, and
    /// it ends at the log end. A newer current epoch than ours is UNKNOWN_LEADER_EPOCH; an
    /// epoch after ours (or none) answers (-1, -1) as Kafka does.
    fn single_node_end_offset(
        &self,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<(i32, i64), PartitionError> {
        if current_leader_epoch > 0 {
            return Err(PartitionError::UnknownLeaderEpoch);
        }
        Ok(if leader_epoch == 0 {
            (0, self.log.log_end_offset())
        } else {
            (-1, -1)
        })
    }

    /// A follower's fetch of (replica id, fetch offset, its current leader epoch).
    fn replica_fetch(
        &mut self,
        (replica_id, fetch_offset, current_leader_epoch): (i32, i64, i32),
        max_bytes: usize,
        now_ms: i64,
    ) -> Result<ReplicaReadOutcome, PartitionError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let leading =
            matches!(self.role(), Some(Role::Leader(l)) if l.followers.contains_key(&replica_id));
        if !leading {
            return Err(PartitionError::NotAvailable);
        }
        let log_start_offset = self.log.log_start_offset();
        let log_end_offset = self.log.log_end_offset();
        if fetch_offset < log_start_offset || fetch_offset > log_end_offset {
            return Err(PartitionError::OffsetOutOfRange);
        }
        let epoch_start = self.epoch_start_offset();
        if let Some(Role::Leader(l)) = self.replication.as_mut().map(|r| &mut r.role) {
            l.record_fetch(replica_id, fetch_offset, log_end_offset, now_ms);
        }
        self.advance_high_watermark(self.leader_offset());
        self.release_acks();
        let expand = match self.role() {
            Some(Role::Leader(l)) => {
                l.expand_proposal(replica_id, self.high_watermark, epoch_start)
            }
            _ => None,
        };
        if let Some(new_isr) = expand {
            self.ask_controller(new_isr);
        }
        let read = self
            .log
            .read(fetch_offset, log_end_offset, max_bytes, false)
            .map_err(PartitionError::from)?;
        Ok(ReplicaReadOutcome {
            records: read.records,
            next_batch_bytes: read.first_batch_bytes,
            high_watermark: self.high_watermark,
            log_start_offset,
            log_end_offset,
        })
    }

    /// Where the current leader epoch starts (its entry in the epoch cache).
    fn epoch_start_offset(&self) -> i64 {
        let epoch = self.stamping_epoch();
        self.log
            .leader_epochs()
            .entries()
            .iter()
            .rev()
            .find(|e| Some(e.epoch) == epoch)
            .map_or(0, |e| e.start_offset)
    }
}
