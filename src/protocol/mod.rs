//! The Kafka wire protocol at the broker's edge: framing, the version table, the request
//! dispatch and one handler per API. Handlers turn wire requests into actor messages and
//! actor results back into responses with Kafka error codes; actors never see wire types.

pub mod authorize;
pub mod context;
pub mod dispatch;
pub mod fetch_memory;
pub mod fetch_session_cache;
pub mod fetch_sessions;
pub mod frame;
pub mod handlers;
pub mod recompression_slots;
pub mod versions;

pub use context::BrokerContext;
