//! Offsets committed inside a transaction (TxnOffsetCommit): the group coordinator keeps
//! them pending, durably, until the transaction coordinator ends the transaction, then
//! makes them committed (commit) or drops them (abort). Until then OffsetFetch with
//! require_stable answers UNSTABLE_OFFSET_COMMIT for those partitions, as Kafka does.

use kafka_protocol::ResponseError;
use ractor::ActorRef;
use tracing::{debug, warn};

use super::group::GroupCoordinatorState;
use super::group_messages::{GroupMsg, GroupState};
use crate::coordinator::group_store::{apply, CommittedOffset, GroupRecord, TopicPartition};

impl GroupCoordinatorState {
    pub(super) async fn txn_commit(
        &mut self,
        producer_id: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        // A producer that is not a group member (generation -1, no member id) may commit
        // for the group, as with a standalone OffsetCommit; a member is checked.
        let member = generation >= 0 || !member_id.is_empty();
        if member {
            // A consumer group (KIP-848) checks the member epoch: STALE_MEMBER_EPOCH.
            let checked = match self.check_consumer_commit(member_id, generation) {
                Some(0) => Ok(()),
                Some(error) => Err(error),
                None => self.check_member(member_id, instance_id, generation),
            };
            if let Err(error) = checked {
                return error;
            }
        }
        let record = GroupRecord::TxnPending {
            producer_id,
            entries: offsets.into_iter().map(|((t, p), o)| (t, p, o)).collect(),
        };
        self.persist(record, "Could not make transactional offsets durable.")
            .await
    }

    pub(super) async fn txn_end(
        &mut self,
        myself: &ActorRef<GroupMsg>,
        producer_id: i64,
        commit: bool,
    ) -> i16 {
        if !self.offsets.pending.contains_key(&producer_id) {
            // Nothing pending: a retried marker, or a transaction that committed no offsets.
            return 0;
        }
        let record = GroupRecord::TxnEnded {
            producer_id,
            commit,
        };
        let result = self
            .persist(record, "Could not record the end of a transaction.")
            .await;
        debug!(group = %self.group_id, producer_id, commit, "Ended a transaction's offsets.");
        if result == 0 && commit && self.state == GroupState::Empty {
            self.empty_since = Some(tokio::time::Instant::now());
            myself.send_after(self.settings.offsets_retention, || GroupMsg::RetentionCheck);
        }
        result
    }

    pub(super) fn unstable_partitions(&self) -> Vec<TopicPartition> {
        self.offsets
            .pending
            .values()
            .flatten()
            .map(|(t, p, _)| (t.clone(), *p))
            .collect()
    }

    /// Appends a record durably, then applies it; answers an error code.
    async fn persist(&mut self, record: GroupRecord, failure: &str) -> i16 {
        let mut next = self.offsets.clone();
        apply(&mut next, record.clone());
        let appended = self
            .store
            .append(&self.group_id, record, &self.offsets, &next)
            .await;
        if let Err(err) = appended {
            warn!(group = %self.group_id, %err, "{failure}");
            return err.code();
        }
        self.offsets = next;
        0
    }
}
