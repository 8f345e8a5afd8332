//! What a request handler needs: the metadata actor, the routing snapshot and the config.

use std::sync::Arc;

use ractor::ActorRef;

use crate::actors::group_registry::GroupRegistryMsg;
use crate::actors::metadata::MetadataMsg;
use crate::actors::routing::{RoutingSnapshot, RoutingTable};
use crate::actors::txn_registry::TxnRegistryMsg;
use crate::config::Config;
use crate::security::authorizer_view::AuthorizerView;

#[derive(Clone)]
pub struct BrokerContext {
    pub config: Arc<Config>,
    pub metadata: ActorRef<MetadataMsg>,
    pub routing: RoutingSnapshot,
    pub groups: ActorRef<GroupRegistryMsg>,
    pub txns: ActorRef<TxnRegistryMsg>,
    /// The broker-wide budget of Fetch reads in flight.
    pub fetch_memory: crate::protocol::fetch_memory::FetchMemory,
    /// The broker-wide cache of incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::protocol::fetch_sessions::FetchSessions,
    /// Every listener, with the address it advertises (its bound port where it binds 0).
    pub listeners: Arc<[crate::security::listeners::ListenerConfig]>,
    /// Cluster mode: the way to the controller (ElectLeaders, DescribeQuorum).
    pub quorum: Option<crate::cluster::rpc::QuorumClient>,
    /// The authorizer `authorizer_class_name` turns on; None: every request is allowed.
    pub authorizer: Option<Arc<crate::security::acl::Authorizer>>,
    /// The owner of every client quota's measured rate (Kafka's ClientQuotaManager).
    pub quotas: crate::quota::ClientQuotaManager,
}

/// Who sent a request: for group membership (DescribeGroups shows it), and for the
/// authorizer and quotas (the principal, and the listener it came in on).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub client_id: String,
    pub host: String,
    /// `User:ANONYMOUS` until TLS or SASL says otherwise.
    pub principal: crate::security::KafkaPrincipal,
    /// The name of the listener the connection came in on (`PLAINTEXT` by default).
    pub listener: String,
}

impl BrokerContext {
    /// The latest routing snapshot (cheap: an `Arc` clone).
    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routing.borrow().clone()
    }

    /// What `client`'s requests are checked against: the latest ACL snapshot.
    pub fn authorizer_view(&self, client: &ClientInfo) -> AuthorizerView {
        if self.authorizer.is_none() {
            return AuthorizerView::disabled();
        }
        AuthorizerView::new(
            self.authorizer.clone(),
            self.routing.borrow().acls.clone(),
            client.principal.clone(),
            &client.host,
        )
    }

    /// The host and port a client that came in on `listener` is told to connect to:
    /// that listener's advertised address, as Kafka answers.
    pub fn advertised_for(&self, listener: &str) -> (String, i32) {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .or_else(|| self.listeners.first())
            .map(|l| l.advertised_host_port())
            .unwrap_or_else(|| self.config.advertised())
    }
}

pub use crate::actors::ask;
