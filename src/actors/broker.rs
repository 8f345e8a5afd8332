//! The broker root: starts the metadata actor (which starts the partitions) and the
//! listener, and shuts them down in order: stop accepting, drain in-flight requests,
//! flush and fsync every partition.
//!
//! Supervision: the metadata actor, the group and transaction registries and the
//! listener are each the single owner of state every request needs, and each is held by
//! every connection's context, so none can be swapped for a fresh one while the broker
//! runs (and a second metadata actor would recover the partitions a first one's children
//! still write). If any of them stops without a shutdown (a panic included), `failed`
//! names it; `broker` then shuts down what is left (drain, flush) and exits with an
//! error, for the service manager to restart it and recovery to take over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use super::group_registry::{GroupRegistry, GroupRegistryArgs, GroupRegistryMsg, OffsetsTopicArgs};
use super::listener::{ConnectionLimits, Listener, ListenerArgs, ListenerMsg};
use super::metadata::{Metadata, MetadataArgs, MetadataMsg};
use super::routing::{RoutingSnapshot, RoutingTable};
use super::storage_runtime::StorageRuntime;
use super::txn_loading::TxnStateTopicArgs;
use super::txn_messages::TxnDeps;
use super::txn_registry::{TxnRegistry, TxnRegistryMsg};
use crate::cluster::node::ClusterNode;
use crate::config::Config;
use crate::protocol::BrokerContext;
use crate::storage::Storage;

/// How long a transaction state change may wait for the in-sync replicas of its
/// `__transaction_state` partition (Kafka's coordinator uses request.timeout.ms, 30 s).
const TXN_STATE_APPEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the {actor} actor: {reason}")]
    Spawn { actor: &'static str, reason: String },
}

pub struct Broker {
    /// The first listener's bound address.
    pub local_addr: SocketAddr,
    pub metadata: ActorRef<MetadataMsg>,
    pub routing: RoutingSnapshot,
    pub groups: ActorRef<GroupRegistryMsg>,
    pub txns: ActorRef<TxnRegistryMsg>,
    /// Each listener's name and bound address, in `listeners` order.
    pub listener_addrs: Vec<(String, SocketAddr)>,
    config: Arc<Config>,
    listeners: Vec<ActorRef<ListenerMsg>>,
    listener_configs: Arc<[crate::security::listeners::ListenerConfig]>,
    shutdown_timeout: Duration,
    fetch_memory: crate::protocol::fetch_memory::FetchMemory,
    fetch_sessions: crate::protocol::fetch_sessions::FetchSessions,
    quotas: crate::quota::ClientQuotaManager,
    authorizer: Option<Arc<crate::security::acl::Authorizer>>,
    /// The actors the broker cannot run without, by name, until one of them ends.
    critical: Vec<(&'static str, JoinHandle<()>)>,
    /// Dropped (without blocking) after the partitions have stopped.
    #[allow(dead_code)]
    storage_runtime: StorageRuntime,
    /// Cluster mode: this node's quorum member, controller and heartbeats.
    cluster: Option<ClusterNode>,
}

impl Broker {
    /// Recovers every partition, then starts listening.
    pub async fn start(config: Config, storage: Arc<dyn Storage>) -> Result<Broker, StartError> {
        let config = Arc::new(config);
        let started = std::time::Instant::now();
        let (routing_tx, routing) = watch::channel(Arc::new(RoutingTable::default()));
        let storage_runtime =
            StorageRuntime::new(config.storage_threads).map_err(|e| StartError::Spawn {
                actor: "storage runtime",
                reason: e.to_string(),
            })?;
        let cluster = if config.cluster_mode() {
            let node = ClusterNode::start(&config, storage.clone(), config.advertised())
                .await
                .map_err(|e| StartError::Spawn {
                    actor: "metadata quorum",
                    reason: e.to_string(),
                })?;
            Some(node)
        } else {
            None
        };
        let (metadata, metadata_ended) = Actor::spawn(
            None,
            Metadata,
            MetadataArgs {
                config: config.clone(),
                storage: storage.clone(),
                routing: routing_tx,
                storage_runtime: storage_runtime.handle(),
                cluster: cluster.as_ref().map(ClusterNode::handle),
            },
        )
        .await
        .map_err(|e| StartError::Spawn {
            actor: "metadata",
            reason: e.to_string(),
        })?;
        let mut listener_configs = config
            .listener_configs()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let mut bound = Vec::with_capacity(listener_configs.len());
        for l in &mut listener_configs {
            let socket =
                config
                    .network
                    .bind(l.listen)
                    .await
                    .map_err(|source| StartError::Listen {
                        addr: l.listen,
                        source,
                    })?;
            let addr = socket.local_addr().map_err(|source| StartError::Listen {
                addr: l.listen,
                source,
            })?;
            // A listener bound to port 0 advertises the port it got.
            if l.advertised == l.listen.to_string() {
                l.advertised = addr.to_string();
            }
            bound.push((socket, addr));
        }
        let local_addr = bound[0].1;
        let listeners_shared: Arc<[crate::security::listeners::ListenerConfig]> =
            listener_configs.clone().into();
        let (groups, groups_ended) = Actor::spawn(
            None,
            GroupRegistry,
            GroupRegistryArgs {
                dir: config.data_dir.join("__groups"),
                storage: storage.clone(),
                settings: config.group_settings(),
                offsets_topic: config.cluster_mode().then(|| OffsetsTopicArgs {
                    routing: routing.clone(),
                    node_id: config.node_id,
                    commit_timeout: Duration::from_millis(config.offsets_commit_timeout_ms),
                }),
            },
        )
        .await
        .map_err(|e| StartError::Spawn {
            actor: "group registry",
            reason: e.to_string(),
        })?;
        let (txns, txns_ended) = Actor::spawn(
            None,
            TxnRegistry,
            TxnDeps {
                dir: config.data_dir.join("__transactions"),
                storage: storage.clone(),
                metadata: metadata.clone(),
                routing: routing.clone(),
                groups: groups.clone(),
                max_timeout: Duration::from_millis(config.transaction_max_timeout_ms),
                marker_timeout: Duration::from_secs(30),
                id_expiration: Duration::from_millis(config.transactional_id_expiration_ms),
                expiration_check_interval: Duration::from_millis(
                    config.transaction_remove_expired_transaction_cleanup_interval_ms,
                ),
                connector: crate::cluster::broker_client::BrokerConnector::from_config(&config)
                    .map_err(|e| StartError::Config(e.to_string()))?,
                transaction_state: config.cluster_mode().then(|| TxnStateTopicArgs {
                    node_id: config.node_id,
                    append_timeout: TXN_STATE_APPEND_TIMEOUT,
                }),
            },
        )
        .await
        .map_err(|e| StartError::Spawn {
            actor: "transaction registry",
            reason: e.to_string(),
        })?;
        let fetch_memory =
            crate::protocol::fetch_memory::FetchMemory::new(config.fetch_memory_budget_bytes);
        let fetch_sessions = crate::protocol::fetch_sessions::FetchSessions::start(
            config.max_incremental_fetch_session_cache_slots,
            Duration::from_millis(config.min_incremental_fetch_session_eviction_ms),
        );
        let quotas = crate::quota::ClientQuotaManager::start(config.quota_windows());
        let authorizer = config
            .authorizer()
            .map_err(|e| StartError::Config(e.to_string()))?
            .map(Arc::new);
        let context = BrokerContext {
            config: config.clone(),
            metadata: metadata.clone(),
            routing: routing.clone(),
            groups: groups.clone(),
            txns: txns.clone(),
            fetch_memory: fetch_memory.clone(),
            fetch_sessions: fetch_sessions.clone(),
            listeners: listeners_shared.clone(),
            quorum: cluster.as_ref().map(|c| c.client.clone()),
            authorizer: authorizer.clone(),
            quotas: quotas.clone(),
        };
        let limits =
            ConnectionLimits::new(&config, crate::fd_limit::nofile().map(|(soft, _)| soft));
        let mut listeners = Vec::with_capacity(bound.len());
        let mut critical = vec![
            ("metadata", metadata_ended),
            ("group registry", groups_ended),
            ("transaction registry", txns_ended),
        ];
        let mut listener_addrs = Vec::with_capacity(bound.len());
        // Certificates and keys are read here first: a bad keystore stops the start. The
        // listeners reload them when their files change.
        let tls = if listener_configs.iter().any(|l| l.protocol.uses_tls()) {
            let files = crate::security::tls_reload::KeystoreFiles::of(&config.tls);
            let tls = config
                .tls
                .acceptor()
                .map_err(|e| StartError::Config(e.to_string()))?;
            Some((tls, files))
        } else {
            None
        };
        for (l, (socket, addr)) in listener_configs.iter().zip(bound) {
            let args = ListenerArgs {
                listener: socket,
                identity: l.identity(),
                context: context.clone(),
                limits,
                tls: tls.clone().filter(|_| l.protocol.uses_tls()),
            };
            let (listener, listener_ended) =
                Actor::spawn(None, Listener, args)
                    .await
                    .map_err(|e| StartError::Spawn {
                        actor: "listener",
                        reason: e.to_string(),
                    })?;
            listeners.push(listener);
            critical.push(("listener", listener_ended));
            listener_addrs.push((l.name.clone(), addr));
        }
        info!(
            %local_addr,
            millis = started.elapsed().as_millis() as u64,
            "Broker is serving."
        );
        metrics::gauge!(crate::metrics::RECOVERY_SECONDS).set(started.elapsed().as_secs_f64());
        Ok(Broker {
            local_addr,
            metadata,
            routing,
            groups,
            txns,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
            fetch_memory,
            fetch_sessions,
            quotas,
            config,
            listeners,
            listener_addrs,
            listener_configs: listeners_shared,
            authorizer,
            critical,
            storage_runtime,
            cluster,
        })
    }

    /// Resolves when an actor the broker cannot run without has stopped (panicked, was
    /// killed or stopped) although no shutdown was asked for; names it. Never resolves
    /// while they all run.
    pub async fn failed(&mut self) -> &'static str {
        let ended = self
            .critical
            .iter_mut()
            .map(|(name, handle)| Box::pin(async move { (*name, handle.await) }));
        let ((name, _), _, _) = futures::future::select_all(ended).await;
        name
    }

    /// What request handlers see, for serving requests without a socket (tests, fuzzing).
    pub fn context(&self) -> BrokerContext {
        BrokerContext {
            config: self.config.clone(),
            metadata: self.metadata.clone(),
            routing: self.routing.clone(),
            groups: self.groups.clone(),
            txns: self.txns.clone(),
            fetch_memory: self.fetch_memory.clone(),
            fetch_sessions: self.fetch_sessions.clone(),
            listeners: self.listener_configs.clone(),
            quorum: self.cluster.as_ref().map(|c| c.client.clone()),
            authorizer: self.authorizer.clone(),
            quotas: self.quotas.clone(),
        }
    }

    /// Stop accepting, finish in-flight requests, flush and fsync every partition.
    pub async fn shutdown(self) {
        let timeout = self.shutdown_timeout;
        let drains = self.listeners.iter().map(|listener| {
            let drain = |reply| ListenerMsg::Drain { timeout, reply };
            super::call(listener, drain, timeout + Duration::from_secs(1))
        });
        futures::future::join_all(drains).await;
        for listener in &self.listeners {
            listener.stop(None);
        }
        let flush = |reply| MetadataMsg::Shutdown { reply };
        let _ = super::call(&self.metadata, flush, Duration::from_secs(60)).await;
        self.metadata.stop(None);
        self.groups.stop(None);
        self.txns.stop(None);
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
        info!("Broker stopped.");
    }
}
