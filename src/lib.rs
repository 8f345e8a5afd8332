//! # broker
//!
//! A Kafka-compatible message broker built as an actor system: every piece of mutable
//! state has one owner, an actor, and everybody else asks the owner by message.
//!
//! # Layout
//! - `config`: the TOML file and `BROKER_*` overrides.
//! - `actors`: broker root, listener, connection, metadata, partition, routing snapshot.
//! - `protocol`: framing, the version table, the dispatch `match`, one handler per API.
//! - `storage`: record batches, the storage seam, segments, indexes, the partition log.
//! - `check`: the offline verifier behind `broker check`; `check_record_files` for the
//!   record files (metadata, groups, transactions).
//! - `topic_config`: topic config names, defaults and validation.
//! - `broker_config`: dynamic broker configs, the layers topic configs default to.
//! - `error`: typed actor errors and their Kafka error codes.
//! - `metrics`: Prometheus metrics (names, handles, the exporter).
//! - `quota`: client quotas (which applies, the measured rates, throttling).
//! - `fd_limit`: the open-file limit, raised at start, and the connections it allows.
//! - `sockets`: the listeners and connections the broker opens (TCP, or a simulated network).

pub mod actors;
pub mod broker_config;
pub mod check;
pub mod check_record_files;
pub mod cluster;
pub mod config;
pub mod config_docs;
pub mod coordinator;
pub mod error;
pub mod fd_limit;
pub mod metrics;
pub mod protocol;
pub mod quota;
pub mod security;
pub mod sockets;
pub mod storage;
pub mod topic_config;
