//! What a request handler needs: the metadata actor, the routing snapshot and the config.

use std::sync::Arc;

use ractor::ActorRef;

use crate::actors::metadata::MetadataMsg;
use crate::actors::routing::{RoutingSnapshot, RoutingTable};
use crate::config::Config;

#[derive(Clone)]
pub struct BrokerContext {
    pub config: Arc<Config>,
    pub metadata: ActorRef<MetadataMsg>,
    pub routing: RoutingSnapshot,
}

impl BrokerContext {
    /// The latest routing snapshot (cheap: an `Arc` clone).
    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routing.borrow().clone()
    }
}

pub use crate::actors::ask;
