//! Broker configuration: the TOML file first, then `BROKER_*` environment overrides
//! (nested keys with a double underscore: `BROKER_LOG__FLUSH_POLICY=always`).
//! Every key has a default, so an empty file is a working single-node broker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// When the partition log calls fsync, and so what an acknowledgement promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// Every append is fsynced (group commit) before it is acknowledged or made visible:
    /// the high watermark is the fsynced offset.
    Always,
    /// acks=all waits for an fsync covering its batch (group commit); acks=1 is answered
    /// once the batch is written to the file; a background fsync runs every interval.
    AcksAll,
    /// No fsync on the request path; a background fsync runs every interval.
    Interval,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// A segment is rolled once it would grow past this many bytes.
    pub segment_bytes: u64,
    /// One offset- and time-index entry per this many bytes of log.
    pub index_interval_bytes: u64,
    pub flush_policy: FlushPolicy,
    /// Background fsync period for the `acks_all` and `interval` policies.
    pub flush_interval_ms: u64,
    /// Default retention.ms of topics: closed segments older than this are deleted
    /// (negative: never).
    pub retention_ms: i64,
    /// Default retention.bytes of topics: the oldest closed segments are deleted while a
    /// partition is larger (negative: no limit).
    pub retention_bytes: i64,
    /// How often each partition checks its retention.
    pub retention_check_interval_ms: u64,
    /// Default segment.ms of topics: the active segment is rolled once open this long.
    pub segment_ms: i64,
    /// Memory for the compaction cleaner's key map, per pass (Kafka's
    /// log.cleaner.dedupe.buffer.size); a pass maps only as many segments as fit.
    pub cleaner_dedupe_buffer_bytes: usize,
    /// Disk bandwidth of a cleaning pass, bytes read plus written per second (Kafka's
    /// log.cleaner.io.max.bytes.per.second); 0: no limit.
    pub cleaner_io_max_bytes_per_second: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            segment_bytes: 1024 * 1024 * 1024,
            index_interval_bytes: 4096,
            flush_policy: FlushPolicy::AcksAll,
            flush_interval_ms: 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 300_000,
            segment_ms: 7 * 24 * 3600 * 1000,
            cleaner_dedupe_buffer_bytes: 128 * 1024 * 1024,
            cleaner_io_max_bytes_per_second: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the listener binds.
    pub listen: SocketAddr,
    /// host:port given to clients in Metadata; defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Kafka's `listeners`: `NAME://host:port,...`, one listener each; unset: `listen`
    /// alone, speaking PLAINTEXT.
    pub listeners: Option<String>,
    /// Kafka's `advertised.listeners`, per listener name; a listener not named here
    /// advertises its bind address.
    pub advertised_listeners: Option<String>,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
    pub listener_security_protocol_map: String,
    /// Kafka's `inter.broker.listener.name`: the listener other brokers use.
    pub inter_broker_listener_name: Option<String>,
    /// Kafka's `ssl.*` settings (PEM stores), for SSL and SASL_SSL listeners.
    #[serde(flatten)]
    pub tls: crate::security::tls::TlsSettings,
    /// How the broker's own connections to other brokers are secured (`inter_broker`).
    #[serde(flatten)]
    pub inter_broker: InterBrokerSettings,
    pub data_dir: PathBuf,
    pub node_id: i32,
    pub cluster_id: String,
    /// Create a topic when a client asks for it in Metadata or produces to it.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with -1.
    pub default_partitions: i32,
    /// Cluster mode: replication factor of auto-created topics and of CreateTopics with -1
    /// (Kafka's default.replication.factor).
    pub default_replication_factor: i16,
    /// Largest request frame accepted; a larger length prefix closes the connection.
    pub max_request_bytes: usize,
    /// Largest record batch accepted (Kafka's message.max.bytes).
    pub max_message_bytes: usize,
    /// The most record bytes one Fetch response holds, whatever its max_bytes asks
    /// (Kafka's fetch.max.bytes); the first batch may pass it (KIP-74).
    pub fetch_max_bytes: usize,
    /// Record bytes all Fetch responses being read may hold together; a fetch that finds
    /// it spent reads less, or waits up to its max_wait_ms and then answers what fits.
    pub fetch_memory_budget_bytes: usize,
    /// How long a Fetch waits for one partition's read (a partition whose disk stopped
    /// answering): past it that partition gets REQUEST_TIMED_OUT and the others are served.
    pub fetch_partition_read_timeout_ms: u64,
    /// Incremental fetch sessions (KIP-227) the broker keeps at once (Kafka's
    /// max.incremental.fetch.session.cache.slots); 0: none, every fetch is a full one.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// A fetch session unused this long may be evicted for a new one; one created this
    /// long ago may be evicted for a larger one (Kafka's
    /// min.incremental.fetch.session.eviction.ms).
    pub min_incremental_fetch_session_eviction_ms: u64,
    /// Longest metadata string of a committed offset (Kafka's offset.metadata.max.bytes);
    /// a longer one is OFFSET_METADATA_TOO_LARGE for its partition.
    pub offset_metadata_max_bytes: usize,
    /// Requests read ahead on one connection before its responses are written.
    pub max_in_flight_per_connection: usize,
    /// Bytes of requests read ahead on one connection before their responses are written.
    pub max_connection_buffered_bytes: usize,
    /// A connection that sends no whole request for this long is closed (Kafka's
    /// connections.max.idle.ms).
    pub connections_max_idle_ms: u64,
    /// Client connections open at once (Kafka's max.connections); more are closed at
    /// once. Unset: derived from the open-file limit, leaving a quarter of it (at least
    /// 64) for segments and indexes (`fd_limit::connections_for`).
    pub max_connections: Option<usize>,
    /// Client connections open at once from one IP address (Kafka's
    /// max.connections.per.ip). Unset: the same as `max_connections`.
    pub max_connections_per_ip: Option<usize>,
    /// Bytes of produce requests queued for one partition actor and not yet taken by it;
    /// a produce that would pass it is answered REQUEST_TIMED_OUT at once (retriable).
    pub max_partition_queued_bytes: usize,
    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms).
    pub group_initial_rebalance_delay_ms: u64,
    /// Session timeouts a consumer may ask for (Kafka's group.min/max.session.timeout.ms).
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// Consumer group protocol (KIP-848): a member that sends no heartbeat this long is
    /// removed and its partitions move (Kafka's group.consumer.session.timeout.ms).
    pub group_consumer_session_timeout_ms: u64,
    /// The heartbeat interval members are told (group.consumer.heartbeat.interval.ms).
    pub group_consumer_heartbeat_interval_ms: u64,
    /// Server-side assignors, the first the default (group.consumer.assignors):
    /// `uniform` and `range`.
    pub group_consumer_assignors: Vec<String>,
    /// Whether an empty group may change protocol (group.consumer.migration.policy):
    /// disabled, upgrade (classic -> consumer), downgrade, bidirectional.
    pub group_consumer_migration_policy: String,
    /// Committed offsets of a group that stays empty this long expire
    /// (Kafka's offsets.retention.minutes).
    pub offsets_retention_ms: u64,
    /// Cluster mode: partitions of `__consumer_offsets`, created when first needed
    /// (Kafka's offsets.topic.num.partitions).
    pub offsets_topic_num_partitions: i32,
    /// Cluster mode: replicas of each `__consumer_offsets` partition, capped at the live
    /// brokers when it is created (Kafka's offsets.topic.replication.factor).
    pub offsets_topic_replication_factor: i16,
    /// Cluster mode: the longest an offset commit waits for the in-sync replicas of its
    /// `__consumer_offsets` partition (Kafka's offsets.commit.timeout.ms).
    pub offsets_commit_timeout_ms: u64,
    /// Cluster mode: partitions of `__transaction_state`, created when first needed
    /// (Kafka's transaction.state.log.num.partitions).
    pub transaction_state_log_num_partitions: i32,
    /// Cluster mode: replicas of each `__transaction_state` partition, capped at the live
    /// brokers when it is created (Kafka's transaction.state.log.replication.factor).
    pub transaction_state_log_replication_factor: i16,
    /// Cluster mode: `__transaction_state`'s min.insync.replicas, at most its replicas
    /// (Kafka's transaction.state.log.min.isr).
    pub transaction_state_log_min_isr: i16,
    /// The longest transaction timeout a producer may ask for
    /// (Kafka's transaction.max.timeout.ms).
    pub transaction_max_timeout_ms: u64,
    /// A transactional id with no transaction open whose last update is older than this is
    /// removed, with its file (Kafka's transactional.id.expiration.ms).
    pub transactional_id_expiration_ms: u64,
    /// How often the transaction registry looks for expired transactional ids (Kafka's
    /// transaction.remove.expired.transaction.cleanup.interval.ms).
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// An idempotent producer with no transaction open whose last batch is older than this
    /// is forgotten by each partition (Kafka's producer.id.expiration.ms).
    pub producer_id_expiration_ms: u64,
    /// How often each partition looks for expired producers (Kafka's
    /// producer.id.expiration.check.interval.ms).
    pub producer_id_expiration_check_interval_ms: u64,
    /// How long shutdown waits for in-flight requests before flushing anyway.
    pub shutdown_timeout_ms: u64,
    /// Worker threads of the runtime partition actors run on, apart from the one that
    /// serves sockets (like Kafka's num.io.threads); 0: on the runtime serving sockets.
    pub storage_threads: usize,
    /// Serve Prometheus metrics on this address (GET /metrics); unset: no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// SASL mechanisms a SASL_PLAINTEXT or SASL_SSL listener offers (Kafka's
    /// sasl.enabled.mechanisms, whose default GSSAPI this broker does not have).
    pub sasl_enabled_mechanisms: Vec<String>,
    /// SASL/PLAIN users and their passwords, the role of Kafka's JAAS `user_NAME="..."`.
    pub sasl_plain_users: PlainUsers,
    /// Largest frame a client may send before it has authenticated (Kafka's
    /// sasl.server.max.receive.size); a larger one closes the connection.
    pub sasl_server_max_receive_size: usize,
    /// How long a failed authentication waits before its answer and the close (Kafka's
    /// connection.failed.authentication.delay.ms), which slows password guessing.
    pub connection_failed_authentication_delay_ms: u64,
    /// Kafka's connections.max.reauth.ms: a SASL session ends this long after its
    /// authentication (KIP-368); the client re-authenticates on the same connection, or
    /// its next request closes it. 0: sessions do not end.
    pub connections_max_reauth_ms: u64,
    /// Kafka's quota.window.num: windows a client quota's rate is measured over.
    pub quota_window_num: usize,
    /// Kafka's quota.window.size.seconds: the length of each of those windows.
    pub quota_window_size_seconds: u64,
    /// Kafka's authorizer.class.name: empty, no authorizer (every request allowed, the
    /// ACL APIs answer SECURITY_DISABLED); `org.apache.kafka.metadata.authorizer.StandardAuthorizer`
    /// or `kafka.security.authorizer.AclAuthorizer` turn on Kafka's ACL rules; any other
    /// value refuses to start.
    pub authorizer_class_name: String,
    /// Kafka's super.users: principals (`User:a;User:b`) every ACL check lets through.
    pub super_users: String,
    /// Kafka's allow.everyone.if.no.acl.found: a resource no ACL names is open to all.
    pub allow_everyone_if_no_acl_found: bool,
    /// The metadata quorum's voters, `id@host:port,...` (Kafka's controller.quorum.voters);
    /// empty: single-node mode, no quorum.
    pub controller_quorum_voters: String,
    /// Where this node's Raft transport binds; unset: its own entry in the voters.
    pub controller_listen: Option<SocketAddr>,
    /// This broker's rack (Kafka's broker.rack), for rack-aware replica placement.
    pub broker_rack: Option<String>,
    /// Kafka's replica.selector.class: empty, consumers fetch from leaders;
    /// RackAwareReplicaSelector sends a consumer with a rack to an in-sync replica there
    /// (KIP-392).
    pub replica_selector_class: String,
    /// How often a broker heartbeats to the quorum's leader (Kafka's
    /// broker.heartbeat.interval.ms).
    pub broker_heartbeat_interval_ms: u64,
    /// A broker not heard from for this long is fenced (Kafka's broker.session.timeout.ms).
    pub broker_session_timeout_ms: u64,
    /// A follower not caught up with its leader for this long leaves the ISR (Kafka's
    /// replica.lag.time.max.ms). Replicated partitions only.
    pub replica_lag_time_max_ms: u64,
    /// Record bytes a follower fetches per partition in one Fetch (Kafka's
    /// replica.fetch.max.bytes); the first batch may pass it (KIP-74).
    pub replica_fetch_max_bytes: usize,
    /// How long a follower's Fetch waits at the leader for new records (Kafka's
    /// replica.fetch.wait.max.ms).
    pub replica_fetch_wait_max_ms: u64,
    /// Bytes a follower's Fetch waits for before it is answered (Kafka's
    /// replica.fetch.min.bytes).
    pub replica_fetch_min_bytes: i32,
    /// How long a follower waits for its leader to accept a connection or answer a
    /// request, a Fetch's long poll included (Kafka's replica.socket.timeout.ms); at
    /// least replica_fetch_wait_max_ms.
    pub replica_socket_timeout_ms: u64,
    /// Kafka's auto.leader.rebalance.enable: the controller moves leaderships back to
    /// preferred replicas, every leader_imbalance_check_interval_seconds, for each broker
    /// whose share of partitions it prefers but does not lead is above
    /// leader_imbalance_per_broker_percentage.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    pub log: LogSettings,
    /// The sockets the broker uses: TCP, or a simulated network in the deterministic
    /// simulation. Not a config key: chosen by whoever starts the broker.
    #[serde(skip)]
    pub network: crate::sockets::Network,
    /// The quorum member's election timeout, pinned to one value. Not a config key: the
    /// deterministic simulation pins it per node, as openraft draws it from the thread's
    /// RNG, which no seed reaches. None: openraft's draw within `cluster::default_config`.
    #[serde(skip)]
    pub pinned_election_timeout_ms: Option<u64>,
}

/// `sasl_plain_users`: user name -> password. Debug shows the names only.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlainUsers(pub std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

pub use crate::cluster::quorum_voters::{parse_quorum_voters, QuorumVoter};

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listener: None,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: crate::security::listeners::DEFAULT_PROTOCOL_MAP
                .to_string(),
            inter_broker_listener_name: None,
            tls: crate::security::tls::TlsSettings::default(),
            inter_broker: InterBrokerSettings::default(),
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            cluster_id: "broker-single-node".to_string(),
            auto_create_topics: true,
            default_partitions: 1,
            default_replication_factor: 1,
            max_request_bytes: 100 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            fetch_max_bytes: 57_671_680,
            fetch_memory_budget_bytes: 256 * 1024 * 1024,
            fetch_partition_read_timeout_ms: 30_000,
            max_incremental_fetch_session_cache_slots: 1000,
            min_incremental_fetch_session_eviction_ms: 120_000,
            offset_metadata_max_bytes: 4096,
            max_in_flight_per_connection: 32,
            max_connection_buffered_bytes: 128 * 1024 * 1024,
            connections_max_idle_ms: 600_000,
            max_connections: None,
            max_connections_per_ip: None,
            max_partition_queued_bytes: 64 * 1024 * 1024,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_assignors: vec!["uniform".into(), "range".into()],
            group_consumer_migration_policy: "bidirectional".into(),
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_commit_timeout_ms: 5_000,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            shutdown_timeout_ms: 10_000,
            storage_threads: 2,
            metrics_listen: None,
            sasl_enabled_mechanisms: ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
                .map(String::from)
                .to_vec(),
            sasl_plain_users: PlainUsers::default(),
            sasl_server_max_receive_size: 524_288,
            connection_failed_authentication_delay_ms: 100,
            connections_max_reauth_ms: 0,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            authorizer_class_name: String::new(),
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            controller_quorum_voters: String::new(),
            controller_listen: None,
            broker_rack: None,
            replica_selector_class: String::new(),
            broker_heartbeat_interval_ms: 2_000,
            broker_session_timeout_ms: 9_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_socket_timeout_ms: 30_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            log: LogSettings::default(),
            network: crate::sockets::Network::Tcp,
            pinned_election_timeout_ms: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The windows client quotas are measured over.
    pub fn quota_windows(&self) -> crate::quota::QuotaWindows {
        crate::quota::QuotaWindows {
            num: self.quota_window_num,
            size: std::time::Duration::from_secs(self.quota_window_size_seconds),
        }
    }

    /// Loads defaults, then the TOML file (if it exists), then `BROKER_*` variables.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("BROKER_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listener_configs()?;
        if self.default_partitions < 1 {
            return Err(ConfigError::Invalid(
                "default_partitions must be at least 1".into(),
            ));
        }
        if self.log.segment_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "log.segment_bytes must be at least 1024".into(),
            ));
        }
        if self.max_request_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_request_bytes must be at least 1024".into(),
            ));
        }
        // tokio's semaphore holds at most usize::MAX >> 3 permits; stay far below.
        if self.max_connection_buffered_bytes == 0
            || self.max_connection_buffered_bytes > u32::MAX as usize
        {
            return Err(ConfigError::Invalid(
                "max_connection_buffered_bytes must be between 1 and 4294967295".into(),
            ));
        }
        if !(1..=3600).contains(&self.quota_window_num)
            || !(1..=3600).contains(&self.quota_window_size_seconds)
        {
            return Err(ConfigError::Invalid(
                "quota_window_num and quota_window_size_seconds must be between 1 and 3600".into(),
            ));
        }
        if self.connections_max_idle_ms == 0 {
            return Err(ConfigError::Invalid(
                "connections_max_idle_ms must be at least 1".into(),
            ));
        }
        if self.fetch_partition_read_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "fetch_partition_read_timeout_ms must be at least 1".into(),
            ));
        }
        if self.fetch_max_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "fetch_max_bytes must be at least 1024".into(),
            ));
        }
        // A batch larger than the whole budget could never be fetched.
        if self.fetch_memory_budget_bytes < self.max_message_bytes
            || self.fetch_memory_budget_bytes > u32::MAX as usize
        {
            return Err(ConfigError::Invalid(
                "fetch_memory_budget_bytes must be between max_message_bytes and 4294967295".into(),
            ));
        }
        if self.max_connections == Some(0) || self.max_connections_per_ip == Some(0) {
            return Err(ConfigError::Invalid(
                "max_connections and max_connections_per_ip must be at least 1".into(),
            ));
        }
        if self.max_partition_queued_bytes == 0
            || self.max_partition_queued_bytes > u32::MAX as usize
        {
            return Err(ConfigError::Invalid(
                "max_partition_queued_bytes must be between 1 and 4294967295".into(),
            ));
        }
        if self.transaction_remove_expired_transaction_cleanup_interval_ms == 0
            || self.producer_id_expiration_check_interval_ms == 0
        {
            return Err(ConfigError::Invalid(
                "transaction_remove_expired_transaction_cleanup_interval_ms and producer_id_expiration_check_interval_ms must be at least 1".into(),
            ));
        }
        crate::coordinator::consumer_group::check_config(
            &self.group_consumer_assignors,
            &self.group_consumer_migration_policy,
            self.group_consumer_session_timeout_ms,
            self.group_consumer_heartbeat_interval_ms,
        )
        .map_err(ConfigError::Invalid)?;
        self.sasl_mechanisms()?;
        self.authorizer()?;
        if self.sasl_server_max_receive_size < 1024 {
            return Err(ConfigError::Invalid(
                "sasl_server_max_receive_size must be at least 1024".into(),
            ));
        }
        if self.max_in_flight_per_connection == 0 {
            return Err(ConfigError::Invalid(
                "max_in_flight_per_connection must be at least 1".into(),
            ));
        }
        if self.replica_lag_time_max_ms == 0 || self.replica_fetch_max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "replica_lag_time_max_ms and replica_fetch_max_bytes must be at least 1".into(),
            ));
        }
        if self.replica_socket_timeout_ms < self.replica_fetch_wait_max_ms {
            return Err(ConfigError::Invalid(
                "replica_socket_timeout_ms must be at least replica_fetch_wait_max_ms".into(),
            ));
        }
        self.validate_inter_broker()?;
        self.validate_cluster()
    }
}

impl Config {
    pub fn group_settings(&self) -> crate::actors::group::GroupSettings {
        use std::time::Duration;
        crate::actors::group::GroupSettings {
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            offsets_retention: Duration::from_millis(self.offsets_retention_ms),
            consumer: crate::coordinator::consumer_group::ConsumerGroupSettings {
                session_timeout: Duration::from_millis(self.group_consumer_session_timeout_ms),
                heartbeat_interval: Duration::from_millis(
                    self.group_consumer_heartbeat_interval_ms,
                ),
                assignors: self.group_consumer_assignors.clone(),
                migration_policy: crate::coordinator::consumer_group::MigrationPolicy::parse(
                    &self.group_consumer_migration_policy,
                )
                .unwrap_or(crate::coordinator::consumer_group::MigrationPolicy::Bidirectional),
            },
        }
    }
}

mod cluster;
mod inter_broker;
mod security;

pub use inter_broker::{InterBrokerSecurity, InterBrokerSettings};

#[cfg(test)]
mod tests;
