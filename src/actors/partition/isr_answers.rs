//! The controller's answers to a leader's ISR changes (a child module of `partition`):
//! the ISR it committed (`UpdateIsr`), or its refusal (`IsrChangeRefused`). Either way the
//! change is no longer pending, so the maximal ISR (KIP-497) that bounds the high
//! watermark is the ISR in force again.

use tracing::info;

use super::replication::Role;
use super::PartitionState;

impl PartitionState {
    pub(super) fn update_isr(&mut self, leader_epoch: i32, isr: Vec<i32>) {
        let Some(Role::Leader(l)) = self.replication.as_mut().map(|r| &mut r.role) else {
            return;
        };
        if l.leader_epoch != leader_epoch {
            return;
        }
        info!(topic = %self.args.topic, partition = self.args.partition, ?isr, "The ISR changed.");
        l.isr = isr;
        l.proposed = None;
        self.advance_high_watermark(self.leader_offset());
        self.release_acks();
    }

    pub(super) fn isr_change_refused(&mut self, leader_epoch: i32, new_isr: Vec<i32>) {
        let Some(Role::Leader(l)) = self.replication.as_mut().map(|r| &mut r.role) else {
            return;
        };
        if l.leader_epoch != leader_epoch || l.proposed.as_ref() != Some(&new_isr) {
            return;
        }
        info!(topic = %self.args.topic, partition = self.args.partition, ?new_isr,
            "The controller refused the ISR change; it may be asked again.");
        l.proposed = None;
        self.advance_high_watermark(self.leader_offset());
        self.release_acks();
    }
}
