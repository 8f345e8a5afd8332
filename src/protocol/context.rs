//! What a request handler needs: the metadata actor, the routing snapshot and the config.

use std::sync::Arc;

use ractor::ActorRef;

use crate::actors::group_registry::GroupRegistryMsg;
use crate::actors::metadata::MetadataMsg;
use crate::actors::routing::{RoutingSnapshot, RoutingTable};
use crate::actors::txn_registry::TxnRegistryMsg;
use crate::config::Config;

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
}

pub use crate::actors::ask;
