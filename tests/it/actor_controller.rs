//! The controller actor on an in-process metadata quorum (real clock, short timeouts):
//! heartbeats register brokers, a broker that stops heartbeating is fenced and each
//! leadership it held moves inside the ISR, it comes back when it heartbeats again, and a
//! controller that does not lead names the leader. Every wait is bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use broker::actors::metadata::{MetadataImage, MetadataRecord};
use broker::cluster::bootstrap::PendingBootstrap;
use broker::cluster::controller::{
    alter_partition, heartbeat, Controller, ControllerArgs, ControllerMsg, LeaderRebalance,
};
use broker::cluster::placement::place;
use broker::cluster::rpc::{BrokerHeartbeat, IsrChange, Rejected};
use broker::cluster::{default_config, InProcessNetwork, NodeId, QuorumMember};
use broker::storage::sim::SimStorage;
use openraft::Config;
use ractor::{Actor, ActorRef};

const WAIT: Duration = Duration::from_secs(30);
// Long enough that a busy CI machine (cluster tests with broker processes beside this one)
// never stalls the heartbeat task past it: a 600 ms session fenced the beating brokers too.
const SESSION: Duration = Duration::from_millis(2_000);

// Heartbeats go to one controller for the whole test, so its leadership must not move under
// load: elections only after a second of silence.
pub(crate) fn config() -> Config {
    Config {
        heartbeat_interval: 100,
        election_timeout_min: 1_000,
        election_timeout_max: 2_000,
        ..default_config()
    }
}

/// A listener that is never served: a broker registered at it answers the controller's
/// liveness probe (a connect the kernel accepts), which proves nothing, so only sessions
/// fence. Where nothing listened, a controller that had just taken over probed every
/// broker not yet heard from, found the port refused and fenced brokers that kept beating.
fn open_port() -> i32 {
    static OPEN: OnceLock<std::net::TcpListener> = OnceLock::new();
    let listener = OPEN.get_or_init(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    i32::from(listener.local_addr().unwrap().port())
}

pub(crate) fn beat(id: i32) -> BrokerHeartbeat {
    BrokerHeartbeat {
        id,
        host: "127.0.0.1".into(),
        port: open_port(),
        rack: None,
        controller_addr: String::new(),
        starting: false,
        listeners: Vec::new(),
    }
}

pub(crate) struct Node {
    pub(crate) member: QuorumMember,
    pub(crate) controller: ActorRef<ControllerMsg>,
}

async fn start() -> BTreeMap<NodeId, Node> {
    // The brokers' listener answers probes (`open_port`): sessions alone fence.
    start_with(SESSION, Duration::from_secs(3600)).await
}

async fn start_with(
    session_timeout: Duration,
    heartbeat_interval: Duration,
) -> BTreeMap<NodeId, Node> {
    let network = InProcessNetwork::default();
    let mut nodes = BTreeMap::new();
    for id in [1, 2, 3] {
        let member = QuorumMember::start(
            id,
            config(),
            Arc::new(SimStorage::new()),
            Path::new("/data"),
            network.clone(),
        )
        .await
        .unwrap();
        let args = ControllerArgs {
            node_id: id,
            raft: member.raft.clone(),
            applied: member.applied.clone(),
            session_timeout,
            check_interval: Duration::from_millis(50),
            heartbeat_interval,
            rebalance: Some(LeaderRebalance {
                every: Duration::from_millis(300),
                imbalance_percent: 10,
            }),
            network: Default::default(),
            bootstrap: PendingBootstrap::empty(),
        };
        let (controller, _) = Actor::spawn(None, Controller, args).await.unwrap();
        nodes.insert(id, Node { member, controller });
    }
    nodes[&1].member.initialize(&[1, 2, 3]).await.unwrap();
    nodes
}

/// The leader every node in `nodes` agrees on, other than `not`.
pub(crate) async fn leader(nodes: &BTreeMap<NodeId, Node>, not: Option<NodeId>) -> NodeId {
    let elected = |m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>| {
        m.current_leader.is_some() && m.current_leader != not
    };
    let first = nodes.values().next().expect("a node");
    let mut metrics = first.member.raft.metrics();
    let found = tokio::time::timeout(WAIT, metrics.wait_for(elected))
        .await
        .expect("a leader in time")
        .unwrap()
        .current_leader
        .unwrap();
    for node in nodes.values() {
        let mut metrics = node.member.raft.metrics();
        let known = metrics.wait_for(|m| m.current_leader == Some(found));
        tokio::time::timeout(WAIT, known).await.unwrap().unwrap();
    }
    found
}

/// The leader's image once `check` holds on it.
async fn image_where(node: &Node, check: impl Fn(&MetadataImage) -> bool) -> MetadataImage {
    let mut applied = node.member.applied.clone();
    let image = tokio::time::timeout(WAIT, applied.wait_for(|a| check(&a.image)))
        .await
        .expect("the image in time")
        .unwrap()
        .image
        .clone();
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_its_leaderships_move_in_the_isr_and_it_comes_back() {
    let nodes = start().await;
    let l = leader(&nodes, None).await;
    let ctl = nodes[&l].controller.clone();
    for id in [10, 11, 12] {
        heartbeat(&ctl, beat(id)).await.unwrap();
    }
    let image = image_where(&nodes[&l], |i| i.live_brokers().count() == 3).await;
    let brokers: Vec<_> = image.live_brokers().map(|(id, _)| (id, None)).collect();
    let assignments = place(&brokers, 0, 3, 3).unwrap();
    nodes[&l]
        .member
        .write(MetadataRecord::TopicCreatedWithAssignments {
            name: "t".into(),
            id: 1,
            configs: BTreeMap::new(),
            assignments,
        })
        .await
        .unwrap();
    let before = image_where(&nodes[&l], |i| i.topics.contains_key("t")).await;
    assert!(before.topics["t"]
        .assignments
        .iter()
        .any(|p| p.leader == 11));

    // 10 and 12 keep heartbeating; 11 goes silent.
    let beating = ctl.clone();
    let beats = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            for id in [10, 12] {
                let _ = heartbeat(&beating, beat(id)).await;
            }
        }
    });
    let fenced = image_where(&nodes[&l], |i| {
        i.brokers.get(&11).is_some_and(|b| b.fenced)
            && i.topics["t"]
                .assignments
                .iter()
                .all(|p| p.leader != 11 && !p.isr.contains(&11))
    })
    .await;
    assert!(!fenced.brokers[&10].fenced && !fenced.brokers[&12].fenced);
    for (old, new) in before.topics["t"]
        .assignments
        .iter()
        .zip(&fenced.topics["t"].assignments)
    {
        assert!(new.isr.contains(&new.leader), "{new:?}");
        assert_eq!(new.replicas, old.replicas);
        let moved = old.leader == 11;
        assert_eq!(
            new.leader_epoch,
            old.leader_epoch + i32::from(moved),
            "{new:?}"
        );
    }

    heartbeat(&ctl, beat(11)).await.unwrap();
    beats.abort();
    let beating = ctl.clone();
    let beats = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            for id in [10, 11, 12] {
                let _ = heartbeat(&beating, beat(id)).await;
            }
        }
    });
    image_where(&nodes[&l], |i| {
        i.brokers.get(&11).is_some_and(|b| !b.fenced)
    })
    .await;

    // Back in the ISR of the partition it prefers, 11 gets its leadership back by itself
    // (auto.leader.rebalance.enable), at the next epoch.
    let index = before.topics["t"]
        .assignments
        .iter()
        .position(|p| p.leader == 11)
        .unwrap();
    // Asked again from the current state while the image moves on (a loaded machine).
    let deadline = tokio::time::Instant::now() + WAIT;
    let epoch = loop {
        let image = nodes[&l].member.applied.borrow().image.clone();
        let now = &image.topics["t"].assignments[index];
        let mut isr = now.isr.clone();
        if !isr.contains(&11) {
            isr.push(11);
        }
        let rejoin = IsrChange {
            topic: "t".into(),
            partition: index as i32,
            leader_id: now.leader,
            leader_epoch: now.leader_epoch,
            new_isr: isr,
            partition_epoch: now.partition_epoch,
        };
        if now.leader == 11 || alter_partition(&ctl, rejoin).await.is_ok() {
            break now.leader_epoch;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "11 never rejoined the ISR"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    image_where(&nodes[&l], |i| {
        let p = &i.topics["t"].assignments[index];
        p.leader == 11 && p.leader_epoch >= epoch
    })
    .await;
    beats.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_does_not_lead_names_the_leader() {
    let nodes = start().await;
    let l = leader(&nodes, None).await;
    let follower = nodes.keys().copied().find(|id| *id != l).unwrap();
    let answer = heartbeat(&nodes[&follower].controller, beat(10)).await;
    assert_eq!(answer, Err(Rejected::NotLeader { leader: Some(l) }));
}

/// A killed broker's listener refuses connections: once its heartbeat is late it is fenced,
/// long before its session ends; a late broker whose listener answers keeps its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_broker_whose_listener_refuses_connections_is_fenced_before_its_session_ends() {
    let nodes = start_with(Duration::from_secs(120), Duration::from_millis(100)).await;
    let l = leader(&nodes, None).await;
    let ctl = nodes[&l].controller.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    for (id, port) in [(20, closed_port), (21, open_port)] {
        let beat = BrokerHeartbeat {
            port: i32::from(port),
            ..beat(id)
        };
        heartbeat(&ctl, beat).await.unwrap();
    }
    image_where(&nodes[&l], |i| i.live_brokers().count() == 2).await;
    // Both go silent now.
    let silent = std::time::Instant::now();
    let fenced = image_where(&nodes[&l], |i| i.brokers.get(&20).is_some_and(|b| b.fenced)).await;
    assert!(
        silent.elapsed() < Duration::from_secs(10),
        "fenced after {:?}, not before its 120 s session",
        silent.elapsed()
    );
    assert!(
        !fenced.brokers[&21].fenced,
        "a listener that answers keeps its session"
    );
    drop(open);
}
