//! Coordinator state that outlives one broker: a consumer group's committed offsets and a
//! transactional id's state, kept in a file per group or id (single node) or in the
//! replicated internal topics `__consumer_offsets` and `__transaction_state` (cluster
//! mode). The coordinator actors in `src/actors/` own it.

pub mod group_log;
pub mod group_store;
pub mod internal_topic;
pub mod offsets_topic;
pub mod transaction_state_topic;
pub mod txn_log;
pub mod txn_store;
