//! One integration-test binary (one link): actor-level tests that spawn actors directly,
//! and client tests that drive a real broker process with librdkafka.

mod actor_backpressure;
mod actor_broker_configs;
mod actor_compaction;
mod actor_group;
mod actor_metadata;
mod actor_partition;
mod actor_quorum;
mod actor_quorum_tcp;
mod actor_record_files;
mod actor_stalled_disk;
mod actor_supervision;
mod actor_txn;
mod client_compaction;
mod client_durability;
mod client_groups;
mod client_hostile_records;
mod client_idempotence;
mod client_metrics;
mod client_protocol;
mod client_retention;
mod client_transactions;
mod crash_property;
mod durability_faults;
mod harness;
mod hostile_connections;
mod hostile_fetch;
mod hostile_requests;
mod hostile_wire;
mod protocol_txn_versions;
mod protocol_versions;
mod proxy;
mod soak_hostile;
