//! Coordinator state that outlives one broker: a consumer group's committed offsets, kept
//! in a file per group (single node) or in the replicated internal topic
//! `__consumer_offsets` (cluster mode), and the consumer group protocol's (KIP-848) state
//! machine and server-side assignors. The coordinator actors in `src/actors/` own it.

pub mod assignors;
pub mod consumer_group;
pub mod current_assignment;
pub mod group_log;
pub mod group_store;
pub mod offsets_topic;
