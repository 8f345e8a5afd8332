//! The SCRAM bootstrap on an in-process quorum of three voters (real clock): each voter's
//! bootstrap file holds `admin` with a password of its own, so the image tells whose file
//! was committed. The first leader commits its file and the marker before it answers a
//! heartbeat; once it is stopped, the next leader answers heartbeats without applying its
//! own file. Every wait is bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use broker::actors::metadata::{offline_credential, MetadataImage};
use broker::cluster::bootstrap::{add_user, PendingBootstrap};
use broker::cluster::controller::{heartbeat, Controller, ControllerArgs};
use broker::cluster::{InProcessNetwork, NodeId, QuorumMember};
use broker::security::scram::ScramMechanism;
use broker::storage::sim::SimStorage;
use ractor::Actor;

use crate::actor_controller::{beat, config, leader, Node};

const WAIT: Duration = Duration::from_secs(30);

fn password(id: NodeId) -> Vec<u8> {
    format!("admin-secret-of-voter-{id}").into_bytes()
}

async fn start(network: &InProcessNetwork) -> BTreeMap<NodeId, Node> {
    let mut nodes = BTreeMap::new();
    for id in [1, 2, 3] {
        let storage = SimStorage::new();
        let data = Path::new("/data");
        let m = ScramMechanism::Sha512;
        let record = offline_credential("admin", m, &password(id), 4096).unwrap();
        add_user(Arc::new(storage.clone()), data, record).unwrap();
        let bootstrap = PendingBootstrap::load(&storage, data).unwrap();
        let member = QuorumMember::start(id, config(), Arc::new(storage), data, network.clone())
            .await
            .unwrap();
        let args = ControllerArgs {
            node_id: id,
            raft: member.raft.clone(),
            applied: member.applied.clone(),
            session_timeout: Duration::from_secs(3600),
            check_interval: Duration::from_millis(50),
            heartbeat_interval: Duration::from_secs(3600),
            rebalance: None,
            network: Default::default(),
            bootstrap,
        };
        let (controller, _) = Actor::spawn(None, Controller, args).await.unwrap();
        nodes.insert(id, Node { member, controller });
    }
    nodes[&1].member.initialize(&[1, 2, 3]).await.unwrap();
    nodes
}

/// Whose password `admin`'s committed credential is.
fn admin_of(image: &MetadataImage) -> Option<NodeId> {
    let c = image.scram.get("admin")?.get(&ScramMechanism::Sha512)?;
    [1, 2, 3]
        .into_iter()
        .find(|id| c.matches_password(ScramMechanism::Sha512, &password(*id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_leader_commits_its_file_once_and_later_leaders_do_not() {
    let network = InProcessNetwork::default();
    let mut nodes = start(&network).await;
    let first = leader(&nodes, None).await;
    let before = nodes[&first].member.applied.borrow().image.clone();
    assert!(!before.scram_bootstrapped && before.scram.is_empty());

    // The heartbeat's answer comes after the credentials are committed and applied.
    heartbeat(&nodes[&first].controller, beat(10))
        .await
        .unwrap();
    let image = nodes[&first].member.applied.borrow().image.clone();
    assert!(image.scram_bootstrapped);
    assert_eq!(admin_of(&image), Some(first), "the first leader's own file");
    assert!(image.brokers.contains_key(&10));

    // Stop the first leader; the next one answers without applying its file.
    let node = nodes.remove(&first).unwrap();
    node.controller.stop(None);
    node.member.stop(&network).await;
    let second = leader(&nodes, Some(first)).await;
    assert_ne!(second, first);
    heartbeat(&nodes[&second].controller, beat(11))
        .await
        .unwrap();
    let image = nodes[&second].member.applied.borrow().image.clone();
    assert!(image.brokers.contains_key(&11));
    assert_eq!(
        admin_of(&image),
        Some(first),
        "the second leader ({second}) did not apply its own file"
    );
    for node in nodes.values() {
        let mut applied = node.member.applied.clone();
        let caught_up = applied.wait_for(|a| a.image.brokers.contains_key(&11));
        tokio::time::timeout(WAIT, caught_up)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(admin_of(&node.member.applied.borrow().image), Some(first));
    }
}
