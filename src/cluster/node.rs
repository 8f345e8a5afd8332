//! A broker's part in a cluster (`controller_quorum_voters` set): its quorum member on the
//! TCP transport at `controller_listen`, the controller (voters only), and the heartbeat
//! loop that keeps this broker registered and unfenced.
//!
//! Every voter initializes the quorum with the same voters, which openraft 0.9 allows
//! ("more than one node performing initialize() with the same config is safe"); a node
//! already initialized (a restart) is told so and carries on. A non-voting broker starts
//! an uninitialized member and serves the transport: its first heartbeat reaches the
//! leader's controller, which adds it as a learner, so the committed records reach it
//! through Raft itself, with no second way of shipping the image to keep correct.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::bootstrap::PendingBootstrap;
use super::controller::{Controller, ControllerArgs, ControllerMsg, LeaderRebalance};
use super::rpc::{BrokerHeartbeat, QuorumClient};
use super::tcp_transport::{serve_with, QuorumConnect, TcpNetwork};
use super::{default_config, AppliedImage, NodeId, QuorumError, QuorumMember};
use crate::config::Config;
use crate::storage::record_file::create_store_dir;
use crate::storage::Storage;

/// What the metadata actor needs of the cluster: the committed image and a way to write.
#[derive(Clone)]
pub struct ClusterHandle {
    pub node_id: i32,
    pub applied: watch::Receiver<Arc<AppliedImage>>,
    pub client: QuorumClient,
    /// The controller's applied metadata index as its first answered heartbeat gave it
    /// (None before): once this broker's image is that new, it knows its current roles
    /// (Kafka's broker waits to catch up with the metadata log before it serves).
    pub caught_up: watch::Receiver<Option<u64>>,
}

pub struct ClusterNode {
    pub member: QuorumMember,
    pub client: QuorumClient,
    controller: Option<ActorRef<ControllerMsg>>,
    tasks: Vec<JoinHandle<()>>,
    caught_up: watch::Receiver<Option<u64>>,
}

impl ClusterNode {
    /// Starts this node's quorum member, transport, controller and heartbeats. `advertised`
    /// is the client address this broker registers.
    pub async fn start(
        config: &Config,
        storage: Arc<dyn Storage>,
        advertised: (String, i32),
    ) -> Result<Self, QuorumError> {
        let voters = config.quorum_voters();
        let id = NodeId::try_from(config.node_id)
            .map_err(|_| QuorumError::Raft("node_id must be 0 or more".into()))?;
        let voter = voters.iter().any(|v| v.id == config.node_id);
        let Some(addr) = config.controller_address() else {
            return Err(QuorumError::Raft("no controller_listen address".into()));
        };
        let (connector, acceptor) = match config
            .quorum_tls()
            .map_err(|e| QuorumError::Raft(e.to_string()))?
        {
            Some((connector, acceptor)) => (Some(connector), Some(acceptor)),
            None => (None, None),
        };
        let connect = QuorumConnect::new(config.network.clone(), connector);
        create_store_dir(storage.as_ref(), &config.data_dir)?;
        let nodes: BTreeMap<NodeId, BasicNode> = voters
            .iter()
            .map(|v| {
                let node = BasicNode {
                    addr: v.addr.to_string(),
                };
                (v.id as NodeId, node)
            })
            .collect();
        let addresses: BTreeMap<NodeId, String> =
            nodes.iter().map(|(id, n)| (*id, n.addr.clone())).collect();
        let mut raft_config = default_config();
        if let Some(timeout) = config.pinned_election_timeout_ms {
            raft_config.election_timeout_min = timeout;
            raft_config.election_timeout_max = timeout + 1;
        }
        let storage_for_bootstrap = storage.clone();
        let member = QuorumMember::start_on(
            id,
            raft_config,
            storage,
            &config.data_dir,
            TcpNetwork::new(connect.clone()).with_voters(addresses.clone()),
        )
        .await?;
        let listener = config
            .network
            .bind(addr)
            .await
            .map_err(|e| QuorumError::Raft(format!("cannot listen on {addr}: {e}")))?;
        let controller = if voter {
            let args = ControllerArgs {
                node_id: id,
                raft: member.raft.clone(),
                applied: member.applied.clone(),
                session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
                check_interval: Duration::from_millis(
                    (config.broker_session_timeout_ms / 10).clamp(10, 500),
                ),
                heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
                rebalance: config
                    .auto_leader_rebalance_enable
                    .then(|| LeaderRebalance {
                        every: Duration::from_secs(config.leader_imbalance_check_interval_seconds),
                        imbalance_percent: config.leader_imbalance_per_broker_percentage,
                    }),
                network: config.network.clone(),
                bootstrap: PendingBootstrap::load(storage_for_bootstrap.as_ref(), &config.data_dir)
                    .map_err(|e| QuorumError::Raft(format!("the SCRAM bootstrap file: {e}")))?,
            };
            let (controller, _) = Actor::spawn(None, Controller, args)
                .await
                .map_err(|e| QuorumError::Raft(format!("cannot start the controller: {e}")))?;
            Some(controller)
        } else {
            None
        };
        let mut tasks = vec![tokio::spawn(serve_with(
            listener,
            member.raft.clone(),
            controller.clone(),
            acceptor,
        ))];
        if voter {
            member.initialize_with(nodes).await?;
        }
        let client = QuorumClient::new(
            id,
            member.raft.clone(),
            addresses,
            controller.clone(),
            connect,
        );
        let heartbeat = BrokerHeartbeat {
            id: config.node_id,
            host: advertised.0,
            port: advertised.1,
            rack: config.broker_rack.clone(),
            controller_addr: addr.to_string(),
            starting: true,
            listeners: advertised_listeners(config),
        };
        let every = Duration::from_millis(config.broker_heartbeat_interval_ms);
        let (caught_up_tx, caught_up) = watch::channel(None);
        tasks.push(tokio::spawn(heartbeats(
            client.clone(),
            heartbeat,
            every,
            caught_up_tx,
        )));
        info!(node = id, %addr, voter, "Joined the metadata quorum.");
        Ok(Self {
            member,
            client,
            controller,
            tasks,
            caught_up,
        })
    }

    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle {
            node_id: self.member.id as i32,
            applied: self.member.applied.clone(),
            client: self.client.clone(),
            caught_up: self.caught_up.clone(),
        }
    }

    /// Stops heartbeating, the transport, the controller and the Raft member.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(controller) = &self.controller {
            controller.stop(None);
        }
        let shutdown = self.member.raft.shutdown();
        if tokio::time::timeout(Duration::from_secs(10), shutdown)
            .await
            .is_err()
        {
            warn!("The quorum member did not stop in time.");
        }
    }
}

/// Heartbeats every `every` until aborted; a failure is logged once until one succeeds.
/// The first answer's metadata index goes to `caught_up`.
async fn heartbeats(
    client: QuorumClient,
    mut heartbeat: BrokerHeartbeat,
    every: Duration,
    caught_up: watch::Sender<Option<u64>>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        let answer = client.heartbeat(heartbeat.clone()).await;
        if let Ok(index) = answer {
            caught_up.send_if_modified(|c| c.is_none() && c.replace(index).is_none());
            heartbeat.starting = false;
        }
        match answer {
            Ok(_) if failing => {
                info!("Heartbeats reach the controller again.");
                failing = false;
            }
            Ok(_) => {}
            Err(err) if !failing => {
                warn!(%err, "A heartbeat did not reach the controller.");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Every listener's name and advertised address, registered so that each client is told
/// of the other brokers at the listener it uses.
fn advertised_listeners(config: &Config) -> Vec<crate::actors::metadata::BrokerListener> {
    config
        .listener_configs()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let (host, port) = l.advertised_host_port();
            crate::actors::metadata::BrokerListener {
                name: l.name.clone(),
                host,
                port,
            }
        })
        .collect()
}
