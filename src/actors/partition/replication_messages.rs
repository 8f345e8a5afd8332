//! The messages and public types of a replicated partition (see `replication`): what the
//! controller side, the replica fetcher and the Fetch handler send, and what they get back.

use std::time::Duration;

use bytes::Bytes;
use ractor::RpcReplyPort;
use tokio::sync::mpsc;

use crate::error::PartitionError;

/// What a replicated partition is given at spawn.
#[derive(Debug, Clone)]
pub struct ReplicaArgs {
    /// This broker's id (Kafka's broker.id / node.id).
    pub broker_id: i32,
    /// The topic's min.insync.replicas.
    pub min_insync_replicas: i32,
    /// A follower not caught up for this long leaves the ISR (replica.lag.time.max.ms).
    pub replica_lag_time_max: Duration,
    /// Where the leader asks the controller for ISR changes; the controller side drains it.
    pub alter_partition: mpsc::Sender<AlterPartitionRequest>,
}

/// An ISR change the leader asks for (AlterPartition's semantics), from the state of the
/// partition at `partition_epoch`. The controller answers by sending the partition
/// `UpdateIsr` (or a new `BecomeLeader`), or `IsrChangeRefused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub topic: String,
    pub partition: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<i32>,
    pub partition_epoch: i32,
}

/// Why the controller refused an ISR change (nothing was written either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrRefusal {
    /// The partition changed after the state the change was asked from (Kafka's
    /// INVALID_UPDATE_VERSION, the controller being ahead): its new state is on its way to
    /// the leader, which keeps the change pending until it arrives, as Kafka's leader does,
    /// instead of asking the stale change again.
    NewerPartitionState,
    /// A stale leader epoch, or an ISR that is not valid: the change is no longer pending.
    Refused,
}

/// What a follower's fetch gets: records up to the leader's log end.
#[derive(Debug, Clone)]
pub struct ReplicaReadOutcome {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Size of the batch at the fetch offset when nothing fitted (KIP-74, as for consumers).
    pub next_batch_bytes: usize,
}

/// What a client's read (Fetch, ListOffsets) says of the partition's leadership (KIP-320),
/// checked before it is served: its current leader epoch (-1: unchecked) and whether only
/// the leader may answer (Kafka's fetchOnlyFromLeader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderCheck {
    pub current_leader_epoch: i32,
    pub leader_only: bool,
}

impl LeaderCheck {
    /// No check: reads inside the broker (the replay of an internal topic it leads).
    pub const NONE: LeaderCheck = LeaderCheck {
        current_leader_epoch: -1,
        leader_only: false,
    };
}

/// A follower's offsets after it took a leader's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerOffsets {
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// A replica's role as it stands (for Metadata answers and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    /// The leader's broker id; None until the controller assigned a role.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    /// A leader's partition epoch (-1 elsewhere).
    pub partition_epoch: i32,
    /// A leader's replicas and ISR; empty on a follower.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// A leader's followers as their fetches report them.
    pub followers: Vec<(i32, super::ReplicaState)>,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub log_start_offset: i64,
    /// The newest epoch in the log's epoch cache (-1: none); a follower asks its leader
    /// where that epoch ends before fetching (KIP-279).
    pub latest_epoch: i32,
}

/// What the controller side, the replica fetcher and the Fetch handler ask of a replicated
/// partition, sent as `PartitionMsg::Replication`; a single-node partition refuses them all.
pub enum ReplicationMsg {
    /// From the controller side: lead at `leader_epoch` with this ISR and these replicas
    /// (this broker included), as of `partition_epoch`. A lower epoch than the current
    /// leadership's is ignored.
    BecomeLeader {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        replicas: Vec<i32>,
    },
    /// From the controller side: follow `leader` at `leader_epoch`. Waiting acks=all
    /// produces get NOT_LEADER_OR_FOLLOWER; the replica fetcher is told separately.
    BecomeFollower { leader: i32, leader_epoch: i32 },
    /// A newer state of the partition in the same leader epoch (the controller's answer to
    /// an `AlterPartitionRequest`, or another change): the ISR now in force, as of
    /// `partition_epoch`. A change still pending was asked from an older state and can no
    /// longer be committed, so it is dropped. An older partition epoch is ignored.
    UpdateIsr {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// The controller refused the ISR change asked at `leader_epoch` and `partition_epoch`
    /// (nothing was written). Refused: it is no longer pending, so the maximal ISR drops
    /// the members it would have added and the next ISR check may ask again. Refused for a
    /// newer partition state: pending until that state arrives (`UpdateIsr`).
    IsrChangeRefused {
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
        why: IsrRefusal,
    },
    /// A follower's fetch (Fetch with replica_id >= 0), at the leader: records up to the
    /// log end; the fetch offset is that follower's log end offset.
    ReplicaFetch {
        replica_id: i32,
        fetch_offset: i64,
        current_leader_epoch: i32,
        max_bytes: usize,
        /// When the fetch arrived (`lag_clock_ms`), for the follower's lag.
        now_ms: i64,
        /// The fetch's long poll, in the same message as its read: when the read found
        /// nothing past `fetch_offset`, parked and answered once the log end passes it
        /// (or at once when this replica does not lead); otherwise dropped at once.
        on_append: Option<RpcReplyPort<()>>,
        reply: RpcReplyPort<Result<ReplicaReadOutcome, PartitionError>>,
    },
    /// At a follower: the leader's batches as fetched, and the leader's high watermark.
    AppendAsFollower {
        records: Bytes,
        leader_epoch: i32,
        leader_high_watermark: i64,
        reply: RpcReplyPort<Result<FollowerOffsets, PartitionError>>,
    },
    /// At a follower: cut the log at `offset` (KIP-279), or with `fully` empty it and
    /// restart it at `offset` (below the leader's log start).
    TruncateTo {
        offset: i64,
        fully: bool,
        reply: RpcReplyPort<Result<FollowerOffsets, PartitionError>>,
    },
    /// OffsetForLeaderEpoch, from a consumer or a follower: (the largest epoch <=
    /// `leader_epoch`, where it ends), answered by the leader only (NOT_LEADER_OR_FOLLOWER
    /// elsewhere) after checking `current_leader_epoch` (FENCED_LEADER_EPOCH when older,
    /// UNKNOWN_LEADER_EPOCH when newer, -1 unchecked). A single-node partition answers too.
    EndOffsetForEpoch {
        current_leader_epoch: i32,
        leader_epoch: i32,
        reply: RpcReplyPort<Result<(i32, i64), PartitionError>>,
    },
    /// Look for followers past replica.lag.time.max.ms as of `now_ms` (the timer sends
    /// it without a reply and `lag_clock_ms` is used); answers the shrink asked, if any.
    CheckIsr {
        now_ms: i64,
        reply: Option<RpcReplyPort<Option<AlterPartitionRequest>>>,
    },
    /// The role, ISR, followers and offsets as they stand.
    DescribeRole { reply: RpcReplyPort<RoleView> },
    /// The topic's min.insync.replicas changed (AlterConfigs): applies from now on.
    UpdateMinInsyncReplicas { min_insync_replicas: i32 },
}

impl ReplicationMsg {
    /// Answers the request with `err` (a partition that has no roles or no log).
    pub fn refuse(self, err: PartitionError) {
        match self {
            ReplicationMsg::ReplicaFetch { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            ReplicationMsg::AppendAsFollower { reply, .. }
            | ReplicationMsg::TruncateTo { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            ReplicationMsg::EndOffsetForEpoch { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            ReplicationMsg::CheckIsr {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(None);
            }
            ReplicationMsg::DescribeRole { reply } => {
                drop(reply);
            }
            _ => {}
        }
    }
}
