//! The metadata quorum over TCP on 127.0.0.1 (`cluster::tcp_transport`), on the real clock
//! with short Raft timeouts; every wait is bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::actor_quorum::topic;
use broker::actors::metadata::MetadataImage;
use broker::cluster::tcp_transport::{serve, TcpNetwork, TokioConnect};
use broker::cluster::{default_config, NodeId, QuorumMember};
use broker::storage::sim::SimStorage;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::{BasicNode, Config, Vote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

fn config() -> Config {
    Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..default_config()
    }
}

struct Member {
    member: QuorumMember,
    server: JoinHandle<()>,
}

/// Members on their own SimStorage disks, each serving Raft on its own listener.
async fn start(ids: &[NodeId]) -> (BTreeMap<NodeId, Member>, BTreeMap<NodeId, BasicNode>) {
    let mut listeners = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for id in ids {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        nodes.insert(*id, BasicNode { addr });
        listeners.insert(*id, listener);
    }
    let mut members = BTreeMap::new();
    for (id, listener) in listeners {
        let disk = Arc::new(SimStorage::new());
        let member = QuorumMember::start_on(
            id,
            config(),
            disk,
            Path::new("/data"),
            TcpNetwork::new(TokioConnect),
        )
        .await
        .unwrap();
        let server = tokio::spawn(serve(listener, member.raft.clone()));
        members.insert(id, Member { member, server });
    }
    members[&ids[0]]
        .member
        .initialize_with(nodes.clone())
        .await
        .unwrap();
    (members, nodes)
}

async fn leader(members: &BTreeMap<NodeId, Member>) -> NodeId {
    let first = &members.values().next().unwrap().member;
    let found = first
        .raft
        .metrics()
        .wait_for(|m| m.current_leader.is_some_and(|l| members.contains_key(&l)))
        .await
        .unwrap()
        .current_leader
        .unwrap();
    for m in members.values() {
        let mut metrics = m.member.raft.metrics();
        metrics
            .wait_for(|x| x.current_leader == Some(found))
            .await
            .unwrap();
    }
    found
}

async fn all_applied(members: &BTreeMap<NodeId, Member>, index: u64) -> Vec<MetadataImage> {
    let mut images = Vec::new();
    for m in members.values() {
        let mut applied = m.member.applied.clone();
        let image = applied
            .wait_for(|a| a.last_applied.is_some_and(|l| l.index >= index))
            .await
            .unwrap()
            .image
            .clone();
        images.push(image);
    }
    images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_over_tcp_elect_replicate_and_survive_the_leader_stopping() {
    let (mut members, _) = start(&[1, 2, 3]).await;
    tokio::time::timeout(WAIT, async {
        let old = leader(&members).await;
        let mut records: Vec<_> = (0..5).map(topic).collect();
        for record in &records {
            members[&old].member.write(record.clone()).await.unwrap();
        }
        let stopped = members.remove(&old).unwrap();
        stopped.server.abort();
        stopped.member.raft.shutdown().await.unwrap();
        let new = leader(&members).await;
        assert_ne!(new, old);
        records.push(topic(5));
        let last = members[&new].member.write(topic(5)).await.unwrap();
        for image in all_applied(&members, last).await {
            assert_eq!(image, MetadataImage::replay(&records));
        }
    })
    .await
    .expect("the quorum over TCP settles within the bound");
    for m in members.into_values() {
        m.server.abort();
        m.member.raft.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_length_over_the_limit_closes_only_that_connection() {
    let (members, nodes) = start(&[1]).await;
    tokio::time::timeout(WAIT, async {
        assert_eq!(leader(&members).await, 1);
        let mut hostile = TcpStream::connect(&nodes[&1].addr).await.unwrap();
        hostile.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        hostile.write_all(&[0u8; 16]).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            hostile.read(&mut buf).await.unwrap_or(0),
            0,
            "closed without an answer"
        );
        // Another connection is still answered.
        let mut client = TcpNetwork::new(TokioConnect)
            .new_client(1, &nodes[&1])
            .await;
        let response = client
            .vote(
                VoteRequest::new(Vote::new(1, 2), None),
                RPCOption::new(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        assert!(!response.vote_granted, "a stale vote request is refused");
    })
    .await
    .expect("answers within the bound");
}
