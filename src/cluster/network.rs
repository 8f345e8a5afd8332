//! How quorum members reach each other. `InProcessNetwork` connects members running in
//! one process (tests, and the shape a TCP transport over the inter-broker listener
//! fills in next): a call goes straight to the target's Raft handle. The member table is
//! a watch channel, replaced whole on a change, so no lock is held around it; a member
//! not in it (stopped, or cut off by a test) is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Snapshot, Vote};
use tokio::sync::watch;

use super::{MetadataRaft, MetadataTypes, NodeId};

#[derive(Default, Clone)]
struct Members {
    rafts: BTreeMap<NodeId, MetadataRaft>,
    /// Members cut off from every other (a network partition around each).
    isolated: BTreeSet<NodeId>,
}

#[derive(Clone)]
pub struct InProcessNetwork {
    members: Arc<watch::Sender<Members>>,
}

impl Default for InProcessNetwork {
    fn default() -> Self {
        Self {
            members: Arc::new(watch::Sender::new(Members::default())),
        }
    }
}

impl InProcessNetwork {
    pub fn register(&self, id: NodeId, raft: MetadataRaft) {
        self.members.send_modify(|m| {
            m.rafts.insert(id, raft);
        });
    }

    pub fn remove(&self, id: NodeId) {
        self.members.send_modify(|m| {
            m.rafts.remove(&id);
        });
    }

    /// Cuts a member off from every other, or heals it.
    pub fn isolate(&self, id: NodeId, isolated: bool) {
        self.members.send_modify(|m| {
            if isolated {
                m.isolated.insert(id);
            } else {
                m.isolated.remove(&id);
            }
        });
    }

    /// The target's Raft handle, when `from` can reach it.
    fn route(&self, from: NodeId, target: NodeId) -> Result<MetadataRaft, Unreachable> {
        let members = self.members.borrow();
        if members.isolated.contains(&from) || members.isolated.contains(&target) {
            return Err(Unreachable::new(&NetworkError::new(
                &std::io::Error::other("the network between these members is cut"),
            )));
        }
        members
            .rafts
            .get(&target)
            .cloned()
            .ok_or_else(|| Unreachable::new(&std::io::Error::other("the member is not running")))
    }
}

/// A factory per member: connections know who sends, so isolation applies both ways.
pub struct MemberNetwork {
    from: NodeId,
    network: InProcessNetwork,
}

impl InProcessNetwork {
    pub fn for_member(&self, from: NodeId) -> MemberNetwork {
        MemberNetwork {
            from,
            network: self.clone(),
        }
    }
}

pub struct Connection {
    from: NodeId,
    target: NodeId,
    network: InProcessNetwork,
}

impl RaftNetworkFactory<MetadataTypes> for MemberNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            from: self.from,
            target,
            network: self.network.clone(),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<MetadataTypes> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataTypes>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let raft = self.network.route(self.from, self.target)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RemoteError::new(self.target, e).into())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<MetadataTypes>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        // Snapshots go whole through `full_snapshot`.
        Err(RPCError::Unreachable(Unreachable::new(
            &std::io::Error::other("chunked snapshots are not used"),
        )))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let raft = self.network.route(self.from, self.target)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RemoteError::new(self.target, e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<MetadataTypes>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<MetadataTypes, Fatal<NodeId>>> {
        let raft = self.network.route(self.from, self.target)?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| RemoteError::new(self.target, e).into())
    }
}
