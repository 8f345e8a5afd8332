//! The cluster-mode part of the configuration: the metadata quorum's voters, where this
//! node's Raft transport binds, and the checks on the keys only a cluster uses.

use std::net::SocketAddr;

use super::{parse_quorum_voters, Config, ConfigError, QuorumVoter};

impl Config {
    pub(super) fn validate_cluster(&self) -> Result<(), ConfigError> {
        let voters = parse_quorum_voters(&self.controller_quorum_voters)?;
        if voters.is_empty() {
            return Ok(());
        }
        if self.node_id < 0 {
            return Err(ConfigError::Invalid(
                "node_id must be 0 or more in a cluster".into(),
            ));
        }
        let voter = voters.iter().any(|v| v.id == self.node_id);
        if !voter && self.controller_listen.is_none() {
            return Err(ConfigError::Invalid(format!(
                "node {} is not in controller_quorum_voters, so as a non-voting broker it needs controller_listen",
                self.node_id
            )));
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return Err(ConfigError::Invalid(
                "broker_heartbeat_interval_ms must be at least 1 and below broker_session_timeout_ms".into(),
            ));
        }
        if self.default_replication_factor < 1 {
            return Err(ConfigError::Invalid(
                "default_replication_factor must be at least 1".into(),
            ));
        }
        if self.broker_rack.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::Invalid("broker_rack must not be empty".into()));
        }
        let selector = crate::protocol::handlers::fetch_replicas::RACK_AWARE_SELECTOR;
        if !["", selector].contains(&self.replica_selector_class.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "replica_selector_class must be empty or {selector}"
            )));
        }
        // Kafka's bounds: at least one partition and one replica, a commit timeout of 1 ms.
        if !(1..=100_000).contains(&self.offsets_topic_num_partitions)
            || self.offsets_topic_replication_factor < 1
            || self.offsets_commit_timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "offsets_topic_num_partitions must be 1 to 100000, offsets_topic_replication_factor and offsets_commit_timeout_ms at least 1".into(),
            ));
        }
        if !(1..=100_000).contains(&self.transaction_state_log_num_partitions)
            || self.transaction_state_log_replication_factor < 1
            || self.transaction_state_log_min_isr < 1
        {
            return Err(ConfigError::Invalid(
                "transaction_state_log_num_partitions must be 1 to 100000, transaction_state_log_replication_factor and transaction_state_log_min_isr at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The quorum's voters; empty in single-node mode (checked at load).
    pub fn quorum_voters(&self) -> Vec<QuorumVoter> {
        parse_quorum_voters(&self.controller_quorum_voters).unwrap_or_default()
    }

    /// True when this node is one of a metadata quorum (voter or not).
    pub fn cluster_mode(&self) -> bool {
        !self.quorum_voters().is_empty()
    }

    /// Where this node's Raft transport binds: `controller_listen`, else its voter entry.
    pub fn controller_address(&self) -> Option<SocketAddr> {
        self.controller_listen.or_else(|| {
            self.quorum_voters()
                .into_iter()
                .find(|v| v.id == self.node_id)
                .map(|v| v.addr)
        })
    }

    /// The address a broker registers in cluster mode: the advertised address of the
    /// inter-broker listener (`inter_broker_listener`), else of the first listener.
    pub fn advertised(&self) -> (String, i32) {
        let listeners = self.listener_configs().unwrap_or_default();
        let chosen = match self.inter_broker_listener() {
            Some(name) => listeners
                .iter()
                .find(|l| l.name.eq_ignore_ascii_case(&name)),
            None => listeners.first(),
        };
        if let Some((host, port)) = chosen.and_then(|l| l.advertised.rsplit_once(':')) {
            if let Ok(port) = port.parse::<i32>() {
                return (host.to_string(), port);
            }
        }
        (self.listen.ip().to_string(), self.listen.port() as i32)
    }
}
