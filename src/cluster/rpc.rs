//! What brokers ask of the metadata quorum besides Raft itself, over the same transport:
//! a metadata write, forwarded to the leader wherever it is made, and a broker's
//! heartbeat to the controller (the leader's). `QuorumClient` finds the leader from the
//! local member's Raft metrics, or tries the voters in turn where it does not know it
//! (a non-voting broker not yet a learner), and follows a rejection's leader hint.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::debug;

use super::controller::{ControllerMsg, ReassignmentOutcome};
use super::elections::{ElectLeaders, ElectionOutcome};
use super::quorum_description::QuorumDescription;
use super::reassignment::Reassignment;
use super::tcp_transport::{
    read_frame, write_frame, Connect, QuorumConnect, RaftRequest, RaftResponse,
};
use super::{MetadataRaft, NodeId, QuorumError};
use crate::actors::metadata::MetadataRecord;

/// A broker's periodic heartbeat: who it is and where clients and the quorum reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// This broker's Raft transport (a non-voter is added there as a learner).
    pub controller_addr: String,
    /// Sent until this process's first heartbeat is answered: a new incarnation of the
    /// broker, whose log may have lost an unsynced tail (a power cut).
    #[serde(default)]
    pub starting: bool,
    /// Every client listener's advertised address, by name (Kafka's endpoints).
    #[serde(default)]
    pub listeners: Vec<crate::actors::metadata::BrokerListener>,
}

/// A partition leader asks for a new ISR (Kafka's AlterPartition), at its leader epoch and
/// the partition epoch of the state it works from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The partition epoch of the ISR the leader changes (absent, 0, from brokers before).
    #[serde(default)]
    pub partition_epoch: i32,
}

/// Why a node did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejected {
    #[error("this node is not the quorum's leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// An AlterPartition from a leader that is not the partition's leader at that epoch
    /// any more (FENCED_LEADER_EPOCH), or for a partition that is gone.
    #[error("stale ISR change: {0}")]
    Stale(String),
    #[error("{0}")]
    Failed(String),
    /// The controller checked the request and refused it (an ISR that is not the leader
    /// and live replicas): nothing was written, and asking again will not help.
    #[error("refused: {0}")]
    Invalid(String),
    /// An AlterPartition asked from another state of the partition than the controller's
    /// (Kafka's INVALID_UPDATE_VERSION): `asked` is the request's partition epoch,
    /// `current` the controller's.
    #[error("the ISR change was asked at partition epoch {asked}, not the current {current}")]
    InvalidUpdateVersion { asked: i32, current: i32 },
}

/// Writes through the local Raft, which must lead; the committed entry's index.
pub(super) async fn local_write(
    raft: &MetadataRaft,
    record: MetadataRecord,
) -> Result<u64, Rejected> {
    match raft.client_write(record).await {
        Ok(response) => Ok(response.log_id.index),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            Err(Rejected::NotLeader {
                leader: forward.leader_id,
            })
        }
        Err(err) => Err(Rejected::Failed(err.to_string())),
    }
}

/// Answers a request from a broker (not Raft's own) on this node: the leader does it,
/// another node says it is not the leader.
pub(super) async fn answer(
    raft: &MetadataRaft,
    controller: Option<&ActorRef<ControllerMsg>>,
    request: &RaftRequest,
) -> RaftResponse {
    let no_controller = || Rejected::NotLeader { leader: None };
    match request {
        RaftRequest::Write(record) => RaftResponse::Write(local_write(raft, record.clone()).await),
        RaftRequest::Heartbeat(heartbeat) => RaftResponse::Heartbeat(match controller {
            Some(controller) => super::controller::heartbeat(controller, heartbeat.clone()).await,
            None => Err(no_controller()),
        }),
        RaftRequest::AlterPartition(change) => RaftResponse::AlterPartition(match controller {
            Some(controller) => {
                super::controller::alter_partition(controller, change.clone()).await
            }
            None => Err(no_controller()),
        }),
        RaftRequest::ElectLeaders(election) => RaftResponse::ElectLeaders(match controller {
            Some(controller) => {
                super::controller::elect_leaders(controller, election.clone()).await
            }
            None => Err(no_controller()),
        }),
        RaftRequest::AlterReassignments(requests) => {
            RaftResponse::AlterReassignments(match controller {
                Some(controller) => {
                    super::controller::alter_reassignments(controller, requests.clone()).await
                }
                None => Err(no_controller()),
            })
        }
        RaftRequest::DescribeQuorum => {
            let me = raft.metrics().borrow().id;
            RaftResponse::DescribeQuorum(super::quorum_description::describe(raft, me))
        }
        _ => RaftResponse::Write(Err(Rejected::Failed("not a client request".into()))),
    }
}

/// How long a write or heartbeat keeps looking for a leader before it fails.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// One exchange with one node.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Between attempts while no leader answers (an election takes 1 to 2 s).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Sends writes and heartbeats to the quorum's leader, from any node.
#[derive(Clone)]
pub struct QuorumClient {
    id: NodeId,
    raft: MetadataRaft,
    voters: BTreeMap<NodeId, String>,
    controller: Option<ActorRef<ControllerMsg>>,
    network: QuorumConnect,
}

impl QuorumClient {
    pub fn new(
        id: NodeId,
        raft: MetadataRaft,
        voters: BTreeMap<NodeId, String>,
        controller: Option<ActorRef<ControllerMsg>>,
        network: QuorumConnect,
    ) -> Self {
        Self {
            id,
            raft,
            voters,
            controller,
            network,
        }
    }

    /// Commits a record; returns its log index once a majority holds it.
    pub async fn write(&self, record: MetadataRecord) -> Result<u64, QuorumError> {
        match self.to_leader(RaftRequest::Write(record)).await? {
            RaftResponse::Write(Ok(index)) => Ok(index),
            _ => Err(QuorumError::Raft("a response of the wrong kind".into())),
        }
    }

    /// Tells the controller this broker is alive; the metadata index the controller had
    /// applied once it took the heartbeat (an image at least that new is a current one).
    pub async fn heartbeat(&self, heartbeat: BrokerHeartbeat) -> Result<u64, QuorumError> {
        match self.to_leader(RaftRequest::Heartbeat(heartbeat)).await? {
            RaftResponse::Heartbeat(Ok(index)) => Ok(index),
            _ => Err(QuorumError::Raft("a response of the wrong kind".into())),
        }
    }

    /// Asks the controller for a partition's new ISR.
    pub async fn alter_partition(&self, change: IsrChange) -> Result<(), QuorumError> {
        match self.to_leader(RaftRequest::AlterPartition(change)).await? {
            RaftResponse::AlterPartition(Ok(())) => Ok(()),
            _ => Err(QuorumError::Raft("a response of the wrong kind".into())),
        }
    }

    /// Runs an election through the controller; each partition's outcome.
    pub async fn elect_leaders(
        &self,
        request: ElectLeaders,
    ) -> Result<Vec<ElectionOutcome>, QuorumError> {
        match self.to_leader(RaftRequest::ElectLeaders(request)).await? {
            RaftResponse::ElectLeaders(Ok(outcomes)) => Ok(outcomes),
            _ => Err(QuorumError::Raft("a response of the wrong kind".into())),
        }
    }

    /// Starts or cancels reassignments through the controller; each partition's outcome.
    pub async fn alter_reassignments(
        &self,
        requests: Vec<Reassignment>,
    ) -> Result<Vec<ReassignmentOutcome>, QuorumError> {
        match self
            .to_leader(RaftRequest::AlterReassignments(requests))
            .await?
        {
            RaftResponse::AlterReassignments(Ok(outcomes)) => Ok(outcomes),
            _ => Err(QuorumError::Raft("a response of the wrong kind".into())),
        }
    }

    /// The quorum's voters, observers and their progress, from the leader.
    pub async fn describe_quorum(&self) -> Result<QuorumDescription, QuorumError> {
        match self.to_leader(RaftRequest::DescribeQuorum).await? {
            RaftResponse::DescribeQuorum(Ok(description)) => Ok(description),
            _ => Err(QuorumError::Raft("a response of the wrong kind".into())),
        }
    }

    /// Runs a request here, as the leader would.
    async fn local(&self, request: &RaftRequest) -> RaftResponse {
        answer(&self.raft, self.controller.as_ref(), request).await
    }

    /// Runs `request` on the leader, following hints and retrying until `LEADER_WAIT`.
    async fn to_leader(&self, request: RaftRequest) -> Result<RaftResponse, QuorumError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut hint = None;
        let mut attempt = 0usize;
        loop {
            let leader = hint
                .take()
                .or_else(|| self.raft.metrics().borrow().current_leader);
            // No leader known here: ask the voters in turn, who know it.
            let target = leader.or_else(|| {
                let voters = self.voters.len().max(1);
                self.voters.keys().nth(attempt % voters).copied()
            });
            let result = match target {
                Some(target) if target == self.id => Ok(self.local(&request).await),
                Some(target) => self.call(target, &request).await,
                None => Err(Rejected::NotLeader { leader: None }),
            };
            let rejected = match result {
                Ok(
                    RaftResponse::Write(Err(err))
                    | RaftResponse::Heartbeat(Err(err))
                    | RaftResponse::AlterPartition(Err(err))
                    | RaftResponse::ElectLeaders(Err(err))
                    | RaftResponse::DescribeQuorum(Err(err))
                    | RaftResponse::AlterReassignments(Err(err)),
                ) => err,
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            // Not worth retrying: the partition moved on, or the request is not valid.
            if let Rejected::Stale(_)
            | Rejected::Invalid(_)
            | Rejected::InvalidUpdateVersion { .. } = rejected
            {
                return Err(QuorumError::Refused(rejected));
            }
            if Instant::now() + RETRY_BACKOFF >= deadline {
                return Err(QuorumError::Raft(format!(
                    "no quorum leader took the request within {LEADER_WAIT:?}: {rejected}"
                )));
            }
            if let Rejected::NotLeader { leader: Some(next) } = rejected {
                if Some(next) != target {
                    // A leader named by a node that knows it: straight there.
                    hint = Some(next);
                    continue;
                }
            }
            attempt += 1;
            debug!(err = %rejected, "A quorum request found no leader; trying again.");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// One exchange with one node, on a connection of its own (metadata writes and
    /// heartbeats are rare).
    async fn call(&self, target: NodeId, request: &RaftRequest) -> Result<RaftResponse, Rejected> {
        let Some(addr) = self.voters.get(&target) else {
            return Err(Rejected::Failed(format!("node {target} is not a voter")));
        };
        let exchange = async {
            let mut stream = Connect::connect(&self.network, addr).await?;
            write_frame(&mut stream, request).await?;
            read_frame::<RaftResponse>(&mut stream)
                .await?
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(Rejected::Failed(format!("node {target}: {err}"))),
            Err(_) => Err(Rejected::Failed(format!(
                "node {target} did not answer in time"
            ))),
        }
    }
}
