//! DescribeQuorum's answer, read on the quorum's leader from openraft's metrics: the
//! leader, its term (Kafka's leader epoch), the committed index (the high watermark), and
//! per voter and per observer (learner) its log end offset as the leader knows it.
//!
//! Raft log indexes are the offsets: an entry at index `i` ends the log at `i + 1`. A
//! member whose progress the leader does not know yet has log end offset -1, as Kafka's.
//! openraft keeps no fetch times, so the timestamps are -1 (Kafka's "unknown").

use serde::{Deserialize, Serialize};

use super::rpc::Rejected;
use super::{MetadataRaft, NodeId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader: NodeId,
    pub term: u64,
    /// One past the last entry the leader knows committed (-1: none yet).
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    pub observers: Vec<ReplicaProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub id: NodeId,
    /// -1 where the leader does not know it.
    pub log_end_offset: i64,
}

impl QuorumDescription {
    /// How far a member's log is behind the leader's (None: unknown).
    pub fn lag(&self, id: NodeId) -> Option<i64> {
        let leader = self.progress(self.leader)?.log_end_offset;
        let member = self.progress(id)?.log_end_offset;
        (leader >= 0 && member >= 0).then(|| leader - member)
    }

    fn progress(&self, id: NodeId) -> Option<&ReplicaProgress> {
        self.voters
            .iter()
            .chain(&self.observers)
            .find(|p| p.id == id)
    }
}

/// This node's view, which only the leader can give (NotLeader elsewhere, with the hint).
pub fn describe(raft: &MetadataRaft, me: NodeId) -> Result<QuorumDescription, Rejected> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(me) {
        return Err(Rejected::NotLeader {
            leader: metrics.current_leader,
        });
    }
    let end = |index: Option<u64>| index.map_or(-1, |i| i as i64 + 1);
    let replication = metrics.replication.clone().unwrap_or_default();
    let progress = |id: NodeId| ReplicaProgress {
        id,
        log_end_offset: if id == me {
            end(metrics.last_log_index)
        } else {
            end(replication
                .get(&id)
                .copied()
                .flatten()
                .map(|log_id| log_id.index))
        },
    };
    let membership = metrics.membership_config.membership();
    Ok(QuorumDescription {
        leader: me,
        term: metrics.current_term,
        high_watermark: end(metrics.last_applied.map(|l| l.index)),
        voters: membership.voter_ids().map(progress).collect(),
        observers: membership.learner_ids().map(progress).collect(),
    })
}
