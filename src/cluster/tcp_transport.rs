//! Raft messages between quorum members over TCP: each frame is `[length u32 BE]` then the
//! rmp-serde message. A sender keeps one connection per target and sends one request at a
//! time on it (openraft gives each replication stream its own client); the receiving side
//! answers each request in order from its local Raft.
//!
//! The byte streams come through `Connect` and `Accept`: tokio's sockets in the broker, a
//! simulated network (turmoil) in the deterministic simulation, over the same code. With
//! `controller_listener_names` mapped to SSL the broker's ends speak TLS: `QuorumConnect`
//! shows its certificate and checks the peer's, and `serve_with` refuses a peer whose
//! handshake (with a certificate the truststore vouches for) fails, or whose principal is
//! not admitted (`security::quorum_peers`), before reading a frame.
//!
//! Never trust the network: a length above `MAX_FRAME` closes that one connection (logged
//! once at warn) before anything is allocated, and a frame's bytes are buffered only as
//! they arrive, so a lying header costs nothing. Other connections keep being served.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Snapshot, SnapshotMeta, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use crate::security::quorum_peers::{QuorumAcceptor, RefusalLog};
use crate::security::transport_layer::TransportLayer;
use crate::sockets::{Listener, Network, Stream};

/// Opens a stream to a member's address (a `BasicNode::addr`).
pub trait Connect: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static;
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Accepts streams from other members.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

/// tokio's TCP sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioConnect;

impl Connect for TokioConnect {
    type Stream = TcpStream;

    async fn connect(&self, addr: &str) -> io::Result<TcpStream> {
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

/// The broker's sockets (`sockets::Network`): tokio's as `TokioConnect` opens them, or the
/// simulated network's.
impl Connect for Network {
    type Stream = Stream;

    async fn connect(&self, addr: &str) -> io::Result<Stream> {
        match self {
            Network::Tcp => TokioConnect.connect(addr).await.map(Stream::Tcp),
            Network::Simulated(_) => Network::connect(self, addr).await,
        }
    }
}

/// The quorum's connections as `controller_listener_names` sets them: the broker's sockets
/// (`sockets::Network`), with TLS to every peer when it maps to SSL.
#[derive(Clone, Default)]
pub struct QuorumConnect {
    network: Network,
    tls: Option<TlsConnector>,
}

impl QuorumConnect {
    pub fn new(network: Network, tls: Option<TlsConnector>) -> Self {
        Self { network, tls }
    }
}

impl Connect for QuorumConnect {
    type Stream = TransportLayer;

    async fn connect(&self, addr: &str) -> io::Result<TransportLayer> {
        let stream = Connect::connect(&self.network, addr).await?;
        TransportLayer::client(stream, self.tls.as_ref(), addr).await
    }
}

impl Accept for Listener {
    type Stream = Stream;

    async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        Listener::accept(self).await
    }
}
use tracing::{debug, warn};

use super::controller::ControllerMsg;
use super::controller::ReassignmentOutcome;
use super::elections::{ElectLeaders, ElectionOutcome};
use super::quorum_description::QuorumDescription;
use super::reassignment::Reassignment;
use super::rpc::{answer, BrokerHeartbeat, IsrChange, Rejected};
use super::{MetadataRaft, MetadataTypes, NodeId};
use crate::actors::metadata::MetadataRecord;

/// The largest frame read or written: the record files' limit, which bounds a snapshot.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
pub(super) enum RaftRequest {
    AppendEntries(AppendEntriesRequest<MetadataTypes>),
    Vote(VoteRequest<NodeId>),
    FullSnapshot {
        vote: Vote<NodeId>,
        meta: SnapshotMeta<NodeId, BasicNode>,
        data: Vec<u8>,
    },
    /// A metadata record written on another node, forwarded to the leader.
    Write(MetadataRecord),
    /// A broker's heartbeat, for the controller on the leader.
    Heartbeat(BrokerHeartbeat),
    /// A partition leader's ISR change (AlterPartition), for the controller.
    AlterPartition(IsrChange),
    /// An ElectLeaders request, for the controller.
    ElectLeaders(ElectLeaders),
    /// A DescribeQuorum request, for the leader.
    DescribeQuorum,
    /// An AlterPartitionReassignments request, for the controller.
    AlterReassignments(Vec<Reassignment>),
}

#[derive(Serialize, Deserialize)]
pub(super) enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    FullSnapshot(Result<SnapshotResponse<NodeId>, Fatal<NodeId>>),
    /// The committed record's log index.
    Write(Result<u64, Rejected>),
    /// The controller's applied metadata index once it took the heartbeat.
    Heartbeat(Result<u64, Rejected>),
    AlterPartition(Result<(), Rejected>),
    ElectLeaders(Result<Vec<ElectionOutcome>, Rejected>),
    DescribeQuorum(Result<QuorumDescription, Rejected>),
    AlterReassignments(Result<Vec<ReassignmentOutcome>, Rejected>),
}

pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    let payload = rmp_serde::to_vec(message).map_err(io::Error::other)?;
    if payload.len() > MAX_FRAME {
        return Err(io::Error::other(format!(
            "a Raft message of {} bytes is above the {MAX_FRAME}-byte frame limit",
            payload.len()
        )));
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).await?;
    stream.flush().await
}

/// Reads one frame; None at a clean end of stream between frames.
pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> io::Result<Option<T>> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} is above the {MAX_FRAME}-byte limit"),
        ));
    }
    // Grows as the bytes arrive: a header that lies about its length allocates nothing.
    let mut payload = Vec::new();
    stream.take(len as u64).read_to_end(&mut payload).await?;
    if payload.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    rmp_serde::from_slice(&payload)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Answers Raft requests arriving on `listener` from the local member, until the listener
/// task is dropped or aborted.
pub async fn serve(listener: impl Accept, raft: MetadataRaft) {
    serve_with(listener, raft, None, None).await
}

/// As `serve`, handing broker heartbeats to this node's controller (a voter's), and with
/// `tls` set, serving only peers whose TLS handshake (with a certificate the truststore
/// vouches for) succeeds and whose principal `tls` admits.
pub async fn serve_with(
    mut listener: impl Accept,
    raft: MetadataRaft,
    controller: Option<ractor::ActorRef<ControllerMsg>>,
    tls: Option<QuorumAcceptor>,
) {
    // Handshakes run on their own tasks; their refusals come back here, to one log.
    let (refused_tx, mut refused) = tokio::sync::mpsc::channel(64);
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(%err, "Could not accept a quorum connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some((peer, refusal)) = refused.recv() => {
                refusals.say(peer, &refusal);
                continue;
            }
        };
        let raft = raft.clone();
        let controller = controller.clone();
        let tls = tls.clone();
        let refused_tx = refused_tx.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => serve_connection(stream, &raft, controller.as_ref()).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => serve_connection(stream, &raft, controller.as_ref()).await,
                    Err(refusal) => {
                        // A full channel drops the line, never the accept loop's pace.
                        let _ = refused_tx.try_send((peer, refusal));
                        return;
                    }
                },
            };
            if let Err(err) = served {
                warn!(%peer, %err, "Closed a quorum connection.");
            }
        });
    }
}

async fn serve_connection(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    raft: &MetadataRaft,
    controller: Option<&ractor::ActorRef<ControllerMsg>>,
) -> io::Result<()> {
    while let Some(request) = read_frame::<RaftRequest>(&mut stream).await? {
        let response = match request {
            RaftRequest::AppendEntries(rpc) => {
                RaftResponse::AppendEntries(raft.append_entries(rpc).await)
            }
            RaftRequest::Vote(rpc) => RaftResponse::Vote(raft.vote(rpc).await),
            RaftRequest::FullSnapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: Box::new(data),
                };
                RaftResponse::FullSnapshot(raft.install_full_snapshot(vote, snapshot).await)
            }
            other => answer(raft, controller, &other).await,
        };
        write_frame(&mut stream, &response).await?;
    }
    Ok(())
}

/// Connects to members at this node's own address for each voter (its
/// `controller_quorum_voters`, as Kafka's controller.quorum.voters is each node's own),
/// else at the address in their `BasicNode`s (learners, who registered theirs).
#[derive(Debug, Clone, Default)]
pub struct TcpNetwork<C = TokioConnect> {
    connect: C,
    voters: BTreeMap<NodeId, String>,
}

impl<C: Connect> TcpNetwork<C> {
    pub fn new(connect: C) -> Self {
        Self {
            connect,
            voters: BTreeMap::new(),
        }
    }

    /// Reaches each of these voters at the address given here.
    pub fn with_voters(mut self, voters: BTreeMap<NodeId, String>) -> Self {
        self.voters = voters;
        self
    }
}

pub struct TcpConnection<C: Connect = TokioConnect> {
    target: NodeId,
    addr: String,
    connect: C,
    stream: Option<C::Stream>,
}

impl<C: Connect> RaftNetworkFactory<MetadataTypes> for TcpNetwork<C> {
    type Network = TcpConnection<C>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> TcpConnection<C> {
        TcpConnection {
            target,
            addr: self.voters.get(&target).unwrap_or(&node.addr).clone(),
            connect: self.connect.clone(),
            stream: None,
        }
    }
}

/// Why a call failed: the member could not be reached (back off) or the exchange broke.
enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl<C: Connect> TcpConnection<C> {
    async fn call(
        &mut self,
        request: &RaftRequest,
        ttl: Duration,
    ) -> Result<RaftResponse, CallError> {
        let exchange = async {
            if self.stream.is_none() {
                let stream = self
                    .connect
                    .connect(&self.addr)
                    .await
                    .map_err(CallError::Unreachable)?;
                self.stream = Some(stream);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(CallError::Unreachable(io::Error::other("no connection")));
            };
            write_frame(stream, request)
                .await
                .map_err(CallError::Network)?;
            match read_frame::<RaftResponse>(stream).await {
                Ok(Some(response)) => Ok(response),
                Ok(None) => Err(CallError::Network(io::ErrorKind::UnexpectedEof.into())),
                Err(err) => Err(CallError::Network(err)),
            }
        };
        let result = match tokio::time::timeout(ttl, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Network(io::ErrorKind::TimedOut.into())),
        };
        if result.is_err() {
            // A broken or timed-out exchange leaves the stream mid-frame: start afresh.
            self.stream = None;
            debug!(target = self.target, addr = %self.addr, "A quorum call failed.");
        }
        result
    }
}

fn rpc_error<E: std::error::Error>(err: CallError) -> RPCError<NodeId, BasicNode, E> {
    match err {
        CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&io::Error::other(
        "a response of the wrong kind",
    )))
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl<C: Connect> RaftNetwork<MetadataTypes> for TcpConnection<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataTypes>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let request = RaftRequest::AppendEntries(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(RaftResponse::AppendEntries(result)) => {
                result.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(_) => Err(unexpected()),
            Err(err) => Err(rpc_error(err)),
        }
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<MetadataTypes>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        // Snapshots go whole through `full_snapshot`.
        Err(unexpected())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(&RaftRequest::Vote(rpc), option.hard_ttl()).await {
            Ok(RaftResponse::Vote(result)) => {
                result.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(_) => Err(unexpected()),
            Err(err) => Err(rpc_error(err)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<MetadataTypes>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<MetadataTypes, Fatal<NodeId>>> {
        let request = RaftRequest::FullSnapshot {
            vote,
            meta: snapshot.meta,
            data: *snapshot.snapshot,
        };
        match self.call(&request, option.hard_ttl()).await {
            Ok(RaftResponse::FullSnapshot(result)) => {
                result.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(_) => Err(StreamingError::Network(NetworkError::new(
                &io::Error::other("a response of the wrong kind"),
            ))),
            Err(CallError::Unreachable(e)) => Err(Unreachable::new(&e).into()),
            Err(CallError::Network(e)) => Err(NetworkError::new(&e).into()),
        }
    }
}
