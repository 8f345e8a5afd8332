//! A replica fetcher's settings: which broker it fetches for and from, where that broker is
//! reached, and Kafka's replica.fetch.* and replica.socket.timeout.ms.

use std::time::Duration;

use crate::cluster::broker_client::BrokerConnector;

#[derive(Debug, Clone)]
pub struct ReplicaFetcherArgs {
    /// This broker's id, sent as the Fetch's replica_id.
    pub broker_id: i32,
    /// The broker fetched from, and its inter-broker listener (host:port).
    pub source_broker: i32,
    pub address: String,
    /// Per partition (replica.fetch.max.bytes).
    pub max_bytes: usize,
    /// Per response (replica.fetch.response.max.bytes).
    pub response_max_bytes: usize,
    /// replica.fetch.wait.max.ms and replica.fetch.min.bytes.
    pub max_wait: Duration,
    pub min_bytes: i32,
    /// How to reach the source broker (sockets, TLS, SASL login).
    pub connector: BrokerConnector,
    /// The longest wait for a connect or an answer (replica.socket.timeout.ms).
    pub socket_timeout: Duration,
}

/// Kafka's replica.fetch.response.max.bytes default.
pub const RESPONSE_MAX_BYTES: usize = 10 * 1024 * 1024;

impl ReplicaFetcherArgs {
    /// The fetcher of `broker_id` for the partitions led by `source_broker` at `address`,
    /// with the replica.fetch.* settings of `config`.
    pub fn from_config(
        config: &crate::config::Config,
        connector: BrokerConnector,
        broker_id: i32,
        source_broker: i32,
        address: String,
    ) -> ReplicaFetcherArgs {
        ReplicaFetcherArgs {
            broker_id,
            source_broker,
            address,
            max_bytes: config.replica_fetch_max_bytes,
            response_max_bytes: RESPONSE_MAX_BYTES.max(config.replica_fetch_max_bytes),
            max_wait: Duration::from_millis(config.replica_fetch_wait_max_ms),
            min_bytes: config.replica_fetch_min_bytes,
            connector,
            socket_timeout: Duration::from_millis(config.replica_socket_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetcher_takes_kafkas_replica_fetch_defaults() {
        let config = crate::config::Config::default();
        let args =
            ReplicaFetcherArgs::from_config(&config, Default::default(), 2, 1, "b1:9093".into());
        assert_eq!(args.max_bytes, 1_048_576);
        assert_eq!(args.max_wait, Duration::from_millis(500));
        assert_eq!(args.min_bytes, 1);
        assert_eq!(args.socket_timeout, Duration::from_secs(30));
        assert_eq!(args.response_max_bytes, 10_485_760);
        assert_eq!(config.replica_lag_time_max_ms, 30_000);
    }
}
