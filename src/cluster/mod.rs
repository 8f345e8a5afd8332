//! The metadata quorum (the role KRaft plays in Kafka), on openraft.
//!
//! Voters replicate `MetadataRecord`s through Raft; each applies the committed ones to a
//! `MetadataImage` (`state_machine`). The Raft log, vote and committed id live in
//! `storage::raft_log`, snapshots (the serialized image) in `storage::raft_snapshot`, both
//! on the storage seam under `<data dir>/__cluster_metadata`. Members reach each other
//! through `network` (in one process) or `tcp_transport` (framed rmp-serde over TCP; not
//! yet on the broker's own inter-broker listener). Single-node mode does not use any of
//! this yet.

pub mod alter_partition;
pub mod bootstrap;
#[cfg(test)]
mod bootstrap_tests;
pub mod broker_client;
pub mod controller;
#[cfg(test)]
mod controller_tests;
pub mod elections;
pub mod liveness;
pub mod network;
pub mod node;
pub mod placement;
pub mod quorum_description;
pub mod quorum_voters;
pub mod reassignment;
pub mod rpc;
pub mod state_machine;
#[cfg(test)]
mod state_machine_tests;
pub mod tcp_transport;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::network::RaftNetworkFactory;
use openraft::{BasicNode, Config, Raft};
use tokio::sync::watch;

use crate::actors::metadata::MetadataRecord;
use crate::storage::raft_log::RaftLogStore;
use crate::storage::{Storage, StorageError};
pub use network::InProcessNetwork;
pub use state_machine::{AppliedImage, MetadataStateMachine};

openraft::declare_raft_types!(
    /// The metadata quorum's Raft types: entries carry metadata records; a snapshot is the
    /// serialized image, handed over whole.
    pub MetadataTypes:
        D = MetadataRecord,
        R = (),
        SnapshotData = Vec<u8>,
);

pub type NodeId = u64;
pub type MetadataRaft = Raft<MetadataTypes>;

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("raft: {0}")]
    Raft(String),
    /// The controller refused the request (nothing was written).
    #[error("the controller refused: {0}")]
    Refused(rpc::Rejected),
}

/// Where a member keeps its Raft log and snapshots.
pub fn quorum_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster_metadata")
}

/// Raft timings near Kafka's controller.quorum.* defaults (a follower that has not heard
/// from the leader for controller.quorum.fetch.timeout.ms, 2 s, starts an election).
/// openraft waits its leader lease (election_timeout_max) and then a random election
/// timeout after the last word from the leader: 1.5 to 2 s here. (With 1 to 2 s it was 3 to
/// 4 s, which a dead controller added to every failover it took part in.) The leader
/// heartbeats every 150 ms (fetch-based in KRaft, pushed here).
pub fn default_config() -> Config {
    Config {
        cluster_name: "metadata".into(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        ..Default::default()
    }
}

/// One running quorum member.
pub struct QuorumMember {
    pub id: NodeId,
    pub raft: MetadataRaft,
    /// The image as of the last applied entry.
    pub applied: watch::Receiver<Arc<AppliedImage>>,
}

impl QuorumMember {
    /// Opens the member's log and snapshot under `data_dir` and starts its Raft on the
    /// in-process network.
    pub async fn start(
        id: NodeId,
        config: Config,
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        network: InProcessNetwork,
    ) -> Result<Self, QuorumError> {
        let member = Self::start_on(id, config, storage, data_dir, network.for_member(id)).await?;
        network.register(id, member.raft.clone());
        Ok(member)
    }

    /// As `start`, on any network (`tcp_transport::TcpNetwork` between processes).
    pub async fn start_on<N: RaftNetworkFactory<MetadataTypes>>(
        id: NodeId,
        config: Config,
        storage: Arc<dyn Storage>,
        data_dir: &Path,
        network: N,
    ) -> Result<Self, QuorumError> {
        let dir = quorum_dir(data_dir);
        let log = RaftLogStore::<MetadataTypes>::open(storage.clone(), &dir)?;
        let (state_machine, applied) = MetadataStateMachine::open(storage, dir)?;
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| QuorumError::Raft(e.to_string()))?,
        );
        let raft = Raft::new(id, config, network, log, state_machine)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        Ok(Self { id, raft, applied })
    }

    /// Forms a new quorum of `voters` (once, on one member; a no-op where it already is).
    pub async fn initialize(&self, voters: &[NodeId]) -> Result<(), QuorumError> {
        let members = voters.iter().map(|id| (*id, BasicNode::default()));
        self.initialize_with(members.collect()).await
    }

    /// As `initialize`, with each voter's address (for `tcp_transport`).
    pub async fn initialize_with(
        &self,
        voters: BTreeMap<NodeId, BasicNode>,
    ) -> Result<(), QuorumError> {
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(()),
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// Writes a record through this member, which must be the leader; returns once a
    /// majority holds it and it is applied here.
    pub async fn write(&self, record: MetadataRecord) -> Result<u64, QuorumError> {
        let response = self
            .raft
            .client_write(record)
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        Ok(response.log_id.index)
    }

    /// Stops the member's Raft and takes it off the network.
    pub async fn stop(self, network: &InProcessNetwork) {
        network.remove(self.id);
        if let Err(err) = tokio::time::timeout(Duration::from_secs(10), self.raft.shutdown()).await
        {
            tracing::warn!(%err, "A quorum member did not stop in time.");
        }
    }
}
