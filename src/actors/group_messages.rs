//! What the group coordinator accepts and answers: its messages and their results,
//! in the broker's own terms (the handlers translate to and from the wire).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::RpcReplyPort;

use crate::coordinator::consumer_group::{
    ConsumerGroupSettings, ConsumerHeartbeat, ConsumerHeartbeatResult, TopicCatalog,
};
use crate::coordinator::group_store::{CommittedOffset, TopicPartition};
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub offsets_retention: Duration,
    /// The consumer group protocol (KIP-848).
    pub consumer: ConsumerGroupSettings,
}

pub struct GroupArgs {
    pub group_id: String,
    /// Single node: the directory of the group's file, replayed at start.
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub settings: GroupSettings,
    /// Cluster mode: the group lives on `__consumer_offsets` (then `dir` is unused).
    pub log: Option<LoggedGroup>,
}

/// A group whose offsets were replayed from its `__consumer_offsets` partition, and where
/// its changes go.
pub struct LoggedGroup {
    pub log: crate::coordinator::group_log::GroupLog,
    pub offsets: crate::coordinator::group_store::GroupOffsets,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata): for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// Kafka's group types (ListGroups v5, KIP-848).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    Classic,
    Consumer,
}

impl GroupType {
    pub fn name(&self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub group_type: GroupType,
    /// The consumer group's state name (Empty, Assigning, Reconciling, Stable); None for
    /// a classic group, whose state is `state`.
    pub consumer_state: Option<&'static str>,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub generation: i32,
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    pub fn state_name(&self) -> &'static str {
        self.consumer_state.unwrap_or(self.state.name())
    }
}

/// A consumer group member as ConsumerGroupDescribe shows it (topics by id).
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: crate::coordinator::assignors::Assignment,
    pub target_assignment: crate::coordinator::assignors::Assignment,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

pub enum GroupMsg {
    /// ConsumerGroupHeartbeat (KIP-848), with the topics as the routing snapshot has them.
    ConsumerHeartbeat {
        request: ConsumerHeartbeat,
        topics: Arc<dyn TopicCatalog>,
        reply: RpcReplyPort<ConsumerHeartbeatResult>,
    },
    /// ConsumerGroupDescribe: None when the group is a classic group.
    ConsumerDescribe {
        reply: RpcReplyPort<Option<ConsumerGroupDescription>>,
    },
    /// A consumer group member's session or revocation deadline may have passed.
    ConsumerSessionCheck {
        member_id: String,
    },
    Join {
        request: JoinRequest,
        reply: RpcReplyPort<JoinResult>,
    },
    Sync {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
        reply: RpcReplyPort<SyncResult>,
    },
    Heartbeat {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        reply: RpcReplyPort<i16>,
    },
    /// (member id, instance id) per leaving member; one error code each.
    Leave {
        members: Vec<(String, Option<String>)>,
        reply: RpcReplyPort<Vec<i16>>,
    },
    Commit {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        reply: RpcReplyPort<i16>,
    },
    /// None: every committed offset.
    FetchOffsets {
        partitions: Option<Vec<TopicPartition>>,
        reply: RpcReplyPort<Vec<(TopicPartition, Option<CommittedOffset>)>>,
    },
    Describe {
        reply: RpcReplyPort<GroupDescription>,
    },
    /// DeleteGroups: only an empty group; its offsets go with it.
    Delete {
        reply: RpcReplyPort<i16>,
    },
    /// OffsetDelete: (top-level error, per-partition errors).
    DeleteOffsets {
        partitions: Vec<TopicPartition>,
        reply: RpcReplyPort<(i16, Vec<i16>)>,
    },
    SessionCheck {
        member_id: String,
    },
    RebalanceDeadline {
        rebalance: u64,
    },
    InitialDelayOver {
        rebalance: u64,
    },
    RetentionCheck,
    /// TxnOffsetCommit: offsets held back until the producer's transaction ends.
    TxnCommit {
        producer_id: i64,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        reply: RpcReplyPort<i16>,
    },
    /// The transaction coordinator ended the producer's transaction: its pending offsets
    /// become committed (commit) or are dropped (abort). Answers an error code.
    TxnEnd {
        producer_id: i64,
        commit: bool,
        reply: RpcReplyPort<i16>,
    },
    /// Partitions with transactional offsets pending (OffsetFetch require_stable).
    UnstablePartitions {
        reply: RpcReplyPort<Vec<TopicPartition>>,
    },
}

impl crate::metrics::ActorKind for GroupMsg {
    const KIND: &'static str = "group";
}
