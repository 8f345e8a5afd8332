//! One integration-test binary (faster to link): actor-level tests and client tests.

mod actor_metadata;
mod actor_partition;
