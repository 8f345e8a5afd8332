//! A group's committed offsets: OffsetCommit, OffsetDelete, DeleteGroups and the expiry
//! of an empty group's offsets. Each change is made durable through the group's store
//! (its file, or `__consumer_offsets` in a cluster) before it is applied and answered.

use kafka_protocol::ResponseError;
use ractor::ActorRef;
use tokio::time::Instant;
use tracing::{info, warn};

use super::group::GroupCoordinatorState;
use super::group_messages::{GroupMsg, GroupState};
use crate::coordinator::group_store::{
    apply, CommittedOffset, GroupOffsets, GroupRecord, TopicPartition,
};

fn code(err: ResponseError) -> i16 {
    err.code()
}

impl GroupCoordinatorState {
    /// DeleteGroups: refused while the group has members; else its offsets are removed
    /// durably and the group is dead (its actor then stops).
    pub(super) async fn delete_group(&mut self) -> i16 {
        if !self.members.is_empty() || self.has_consumer_members() {
            return code(ResponseError::NonEmptyGroup);
        }
        if let Err(err) = self.store.remove(&self.group_id, &self.offsets).await {
            warn!(group = %self.group_id, %err, "Could not remove a deleted group's offsets.");
            return err.code();
        }
        self.offsets = GroupOffsets::default();
        self.state = GroupState::Dead;
        info!(group = %self.group_id, "Deleted a group and its offsets.");
        0
    }

    pub(super) async fn commit(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> i16 {
        let standalone = generation < 0 && member_id.is_empty();
        if let Some(error) = self.check_consumer_commit(member_id, generation) {
            if error != 0 {
                return error;
            }
        } else if standalone {
            if !self.members.is_empty() {
                return code(ResponseError::UnknownMemberId);
            }
        } else {
            if self.state == GroupState::CompletingRebalance && self.members.contains_key(member_id)
            {
                return code(ResponseError::RebalanceInProgress);
            }
            if let Err(error) = self.check_member(member_id, instance_id, generation) {
                return error;
            }
        }
        let entries: Vec<(String, i32, CommittedOffset)> = offsets
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, o.clone()))
            .collect();
        let mut next = self.offsets.clone();
        apply(
            &mut next,
            GroupRecord::Committed {
                entries: entries.clone(),
            },
        );
        let record = GroupRecord::Committed { entries };
        if let Err(err) = self
            .store
            .append(&self.group_id, record, &self.offsets, &next)
            .await
        {
            warn!(group = %self.group_id, %err, "Could not make committed offsets durable.");
            return err.code();
        }
        self.offsets = next;
        if self.state == GroupState::Empty && !self.has_consumer_members() {
            self.empty_since = Some(Instant::now());
            myself.send_after(self.settings.offsets_retention, || GroupMsg::RetentionCheck);
        }
        0
    }

    pub(super) async fn delete_offsets(
        &mut self,
        partitions: Vec<TopicPartition>,
    ) -> (i16, Vec<i16>) {
        if !self.members.is_empty() {
            // The members' subscriptions are opaque to the broker: refuse for any topic.
            let each = code(ResponseError::GroupSubscribedToTopic);
            return (0, partitions.iter().map(|_| each).collect());
        }
        if let Some(group) = self.consumer.as_ref() {
            // A consumer group's subscriptions are known: only those topics are refused.
            let subscribed: Vec<bool> = partitions
                .iter()
                .map(|(t, _)| group.subscribed_to(t))
                .collect();
            if subscribed.iter().any(|s| *s) {
                let free = partitions
                    .iter()
                    .zip(&subscribed)
                    .filter(|(_, s)| !**s)
                    .map(|(tp, _)| tp.clone())
                    .collect();
                let (error, _) = Box::pin(self.delete_offsets(free)).await;
                let each = |s: &bool| match s {
                    true => code(ResponseError::GroupSubscribedToTopic),
                    false => error,
                };
                return (0, subscribed.iter().map(each).collect());
            }
        }
        let record = GroupRecord::Deleted {
            partitions: partitions.clone(),
        };
        let mut next = self.offsets.clone();
        apply(&mut next, record.clone());
        let appended = self
            .store
            .append(&self.group_id, record, &self.offsets, &next)
            .await;
        match appended {
            Ok(()) => {
                self.offsets = next;
                (0, partitions.iter().map(|_| 0).collect())
            }
            Err(err) => {
                warn!(group = %self.group_id, %err, "Could not record deleted offsets.");
                (err.code(), Vec::new())
            }
        }
    }

    /// Drops the offsets of a group empty for longer than the retention; true when the
    /// group has nothing left and its actor can stop.
    pub(super) async fn expire_offsets(&mut self, myself: &ActorRef<GroupMsg>) -> bool {
        if self.state != GroupState::Empty
            || self.offsets.committed.is_empty()
            || self.has_consumer_members()
        {
            return false;
        }
        let Some(since) = self.empty_since else {
            return false;
        };
        let age = Instant::now().duration_since(since);
        if age < self.settings.offsets_retention {
            myself.send_after(self.settings.offsets_retention - age, || {
                GroupMsg::RetentionCheck
            });
            return false;
        }
        info!(group = %self.group_id, offsets = self.offsets.committed.len(), "Committed offsets of an empty group expired.");
        let live = std::mem::take(&mut self.offsets);
        if let Err(err) = self.store.remove(&self.group_id, &live).await {
            warn!(group = %self.group_id, %err, "Could not remove an expired group's offsets.");
        }
        self.state = GroupState::Dead;
        true
    }
}
