//! Coordinator state that outlives one broker: a consumer group's committed offsets, kept
//! in a file per group (single node) or in the replicated internal topic
//! `__consumer_offsets` (cluster mode). The coordinator actors in `src/actors/` own it.

pub mod group_log;
pub mod group_store;
pub mod offsets_topic;
