//! Coordinator state that outlives one broker: a consumer group's committed offsets and a
//! transactional id's state, kept in a file per group or id (single node) or in the
//! replicated internal topics `__consumer_offsets` and `__transaction_state` (cluster
//! mode), and the consumer group protocol's (KIP-848) state machine and server-side
//! assignors. The coordinator actors in `src/actors/` own it.

pub mod assignors;
pub mod consumer_group;
pub mod consumer_group_config;
pub mod consumer_group_member;
pub mod consumer_group_records;
pub mod current_assignment;
pub mod group_log;
pub mod group_metadata;
pub mod group_store;
pub mod internal_topic;
pub mod offsets_topic;
pub mod transaction_state_topic;
pub mod txn_log;
pub mod txn_store;
