//! The leader's side of AlterPartition (a child module of `partition`; Kafka's
//! `Partition` ISR updates and `AlterPartitionManager`): the ISR changes it asks the
//! controller for, each at the leader epoch and partition epoch of the state it works
//! from, and the controller's answers: the partition's newer state (`UpdateIsr`), or a
//! refusal (`IsrChangeRefused`).
//!
//! One change is pending at a time, and while it is, the maximal ISR (KIP-497: the ISR in
//! force with the members the change adds) bounds the high watermark, since the controller
//! may commit it any time. It stops being pending when the controller refuses it, or when
//! a newer partition state arrives: the controller takes a change only at the current
//! partition epoch, so one asked from an older state can never be committed after that.
//! A refusal because the partition moved on (INVALID_UPDATE_VERSION) leaves the change
//! pending until the newer state arrives, as Kafka's leader does: asked again before
//! then, the stale change would only be refused again, and a retry of it that the
//! controller did commit must go on bounding the high watermark until its ISR is known.

use std::time::Duration;

use ractor::ActorRef;
use tracing::{debug, info};

use super::replication::Role;
use super::replication_messages::{AlterPartitionRequest, IsrRefusal, ReplicationMsg};
use super::{PartitionMsg, PartitionState};

impl PartitionState {
    /// A newer state of the partition in this leader epoch: its ISR is the one in force,
    /// and a pending change (asked from an older state) is dropped.
    pub(super) fn update_isr(
        &mut self,
        (leader_epoch, partition_epoch): (i32, i32),
        isr: Vec<i32>,
    ) {
        let Some(Role::Leader(l)) = self.replication.as_mut().map(|r| &mut r.role) else {
            return;
        };
        if l.leader_epoch != leader_epoch || l.partition_epoch >= partition_epoch {
            return;
        }
        info!(topic = %self.args.topic, partition = self.args.partition, ?isr,
            partition_epoch, "The partition changed; this ISR is in force.");
        l.isr = isr;
        l.partition_epoch = partition_epoch;
        l.proposed = None;
        self.advance_high_watermark(self.leader_offset());
        self.release_acks();
    }

    /// The controller refused the change asked at these epochs; see the module header.
    pub(super) fn isr_change_refused(
        &mut self,
        (leader_epoch, partition_epoch): (i32, i32),
        new_isr: Vec<i32>,
        why: IsrRefusal,
    ) {
        let Some(Role::Leader(l)) = self.replication.as_mut().map(|r| &mut r.role) else {
            return;
        };
        let asked_now = l.leader_epoch == leader_epoch && l.partition_epoch == partition_epoch;
        if !asked_now || l.proposed.as_ref() != Some(&new_isr) {
            return;
        }
        if why == IsrRefusal::NewerPartitionState {
            info!(topic = %self.args.topic, partition = self.args.partition, ?new_isr,
                partition_epoch, "The controller refused the ISR change because the partition \
                changed since; it stays pending until the new state arrives.");
            return;
        }
        info!(topic = %self.args.topic, partition = self.args.partition, ?new_isr,
            "The controller refused the ISR change; it may be asked again.");
        l.proposed = None;
        self.advance_high_watermark(self.leader_offset());
        self.release_acks();
    }

    pub(super) fn check_isr(&mut self, now_ms: i64) -> Option<AlterPartitionRequest> {
        let r = self.replication.as_ref()?;
        let lag_ms = r.args.replica_lag_time_max.as_millis() as i64;
        let new_isr = r.leadership()?.shrink_proposal(now_ms, lag_ms)?;
        info!(topic = %self.args.topic, partition = self.args.partition, ?new_isr,
            "Followers lag by more than replica.lag.time.max.ms; asking to shrink the ISR.");
        self.ask_controller(new_isr)
    }

    /// Sends an ISR proposal to the controller side; remembered so it is asked once.
    pub(super) fn ask_controller(&mut self, new_isr: Vec<i32>) -> Option<AlterPartitionRequest> {
        let topic = self.args.topic.clone();
        let partition = self.args.partition;
        let r = self.replication.as_mut()?;
        let Role::Leader(l) = &mut r.role else {
            return None;
        };
        let request = AlterPartitionRequest {
            topic,
            partition,
            leader_id: r.args.broker_id,
            leader_epoch: l.leader_epoch,
            new_isr: new_isr.clone(),
            partition_epoch: l.partition_epoch,
        };
        match r.args.alter_partition.try_send(request.clone()) {
            Ok(()) => {
                l.proposed = Some(new_isr);
                Some(request)
            }
            Err(err) => {
                // Full or closed: asked again on the next check or fetch.
                debug!(topic = %request.topic, partition, %err, "Could not ask for an ISR change yet.");
                None
            }
        }
    }

    pub(super) fn schedule_isr_tick(&mut self, myself: &ActorRef<PartitionMsg>, fired: bool) {
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        if fired {
            r.isr_tick_scheduled = false;
        }
        if r.isr_tick_scheduled || r.leadership().is_none() {
            return;
        }
        r.isr_tick_scheduled = true;
        // Kafka checks every half of replica.lag.time.max.ms.
        let every = (r.args.replica_lag_time_max / 2).max(Duration::from_millis(10));
        myself.send_after(every, || {
            PartitionMsg::Replication(ReplicationMsg::CheckIsr {
                now_ms: 0,
                reply: None,
            })
        });
    }
}
