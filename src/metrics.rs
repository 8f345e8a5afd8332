//! Prometheus metrics through the `metrics` facade, kept by `metrics-exporter-prometheus`'s
//! recorder (the per-partition gauges by a registry of their own, so a deleted partition's
//! series go with it: see `exporter`) and served on `metrics_listen` (off unless
//! configured). Without an installed recorder every macro below is a no-op, so the hot
//! paths pay nothing then.
//!
//! Names follow Prometheus conventions (`_total` counters, `_seconds` histograms). Hot
//! paths hold registered handles (a partition's gauges, an actor kind's histogram) so an
//! update is an atomic store, not a registry lookup.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics::{describe_counter, describe_gauge, describe_histogram, Key, Unit};
use metrics_exporter_prometheus::PrometheusBuilder;

mod exporter;

pub const REQUESTS: &str = "broker_requests_total";
pub const REQUEST_SECONDS: &str = "broker_request_duration_seconds";
pub const BYTES_IN: &str = "broker_network_bytes_in_total";
pub const BYTES_OUT: &str = "broker_network_bytes_out_total";
pub const CONNECTIONS: &str = "broker_connections";
pub const CONNECTIONS_OPENED: &str = "broker_connections_opened_total";
pub const CONNECTIONS_REFUSED: &str = "broker_connections_refused_total";
pub const ACCEPT_FAILURES: &str = "broker_accept_failures_total";
pub const SASL_REAUTHENTICATIONS: &str = "broker_successful_reauthentication_total";
pub const EXPIRED_CONNECTIONS_KILLED: &str = "broker_expired_connections_killed_total";
pub const PARTITION_QUEUE_FULL: &str = "broker_partition_queue_full_total";
pub const LOG_END_OFFSET: &str = "broker_log_end_offset";
pub const HIGH_WATERMARK: &str = "broker_high_watermark";
pub const LOG_START_OFFSET: &str = "broker_log_start_offset";
pub const LOG_SIZE: &str = "broker_log_size_bytes";
pub const ACTOR_HANDLE_SECONDS: &str = "broker_actor_handle_seconds";
pub const ACTOR_OUTSTANDING: &str = "broker_actor_outstanding_requests";
pub const FSYNCS: &str = "broker_fsyncs_total";
pub const FSYNC_SECONDS: &str = "broker_fsync_duration_seconds";
pub const RECOVERY_SECONDS: &str = "broker_recovery_seconds";
pub const QUARANTINED_SEGMENTS: &str = "broker_quarantined_segments_total";
pub const TRANSACTIONAL_IDS: &str = "broker_transactional_ids";
pub const FETCH_SESSIONS: &str = "broker_fetch_sessions";
pub const FETCH_SESSION_PARTITIONS: &str = "broker_fetch_session_partitions";

/// The gauges labelled with a topic and partition, with their help texts: removed when
/// their partition is deleted.
const PARTITION_GAUGES: [(&str, &str); 4] = [
    (LOG_END_OFFSET, "A partition's log end offset."),
    (HIGH_WATERMARK, "A partition's high watermark."),
    (LOG_START_OFFSET, "A partition's log start offset."),
    (LOG_SIZE, "A partition's segment bytes."),
];

/// The installed recorder's partition gauges (set once, by `serve`).
static PARTITION_SERIES: OnceLock<Arc<exporter::PartitionSeries>> = OnceLock::new();

/// Histogram buckets for request, handling and fsync times: 10 us to 10 s.
const BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, thiserror::Error)]
#[error("could not serve metrics on {addr}: {reason}")]
pub struct MetricsError {
    addr: SocketAddr,
    reason: String,
}

/// Installs the Prometheus recorder and its HTTP listener (GET /metrics). Must run inside
/// a tokio runtime; once per process.
pub fn serve(addr: SocketAddr) -> Result<(), MetricsError> {
    let error = |reason: String| MetricsError { addr, reason };
    let prometheus = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| error(e.to_string()))?
        .build_recorder();
    let handle = prometheus.handle();
    let partitions = Arc::new(exporter::PartitionSeries::new());
    let listener = std::net::TcpListener::bind(addr).map_err(|e| error(e.to_string()))?;
    metrics::set_global_recorder(exporter::BrokerRecorder {
        prometheus,
        partitions: partitions.clone(),
    })
    .map_err(|e| error(e.to_string()))?;
    let _ = PARTITION_SERIES.set(partitions.clone());
    exporter::spawn(listener, handle, partitions).map_err(|e| error(e.to_string()))?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!(REQUESTS, "Requests served, by API.");
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from a whole request read to its response ready, by API."
    );
    describe_counter!(BYTES_IN, Unit::Bytes, "Request bytes read from clients.");
    describe_counter!(BYTES_OUT, Unit::Bytes, "Response bytes written to clients.");
    describe_gauge!(CONNECTIONS, "Client connections open.");
    describe_counter!(CONNECTIONS_OPENED, "Client connections accepted.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Client connections closed at once: over max_connections or max_connections_per_ip."
    );
    describe_counter!(
        SASL_REAUTHENTICATIONS,
        "SASL re-authentications that succeeded (KIP-368, connections_max_reauth_ms)."
    );
    describe_counter!(
        EXPIRED_CONNECTIONS_KILLED,
        "Connections closed because their SASL session ended without re-authentication."
    );
    describe_counter!(
        ACCEPT_FAILURES,
        "Accepts that failed for want of file descriptors or memory."
    );
    describe_counter!(
        PARTITION_QUEUE_FULL,
        "Produce partition entries answered REQUEST_TIMED_OUT at once: the partition had max_partition_queued_bytes queued."
    );
    for (name, help) in PARTITION_GAUGES {
        describe_gauge!(name, help);
    }
    describe_histogram!(
        ACTOR_HANDLE_SECONDS,
        Unit::Seconds,
        "Time an actor spends handling one message, by actor kind."
    );
    describe_gauge!(
        ACTOR_OUTSTANDING,
        "Requests sent to actors of a kind and not yet answered: their mailbox depth plus the one being handled."
    );
    describe_counter!(
        FSYNCS,
        "fsync calls on log, index, record and directory files."
    );
    describe_histogram!(FSYNC_SECONDS, Unit::Seconds, "fsync latency.");
    describe_counter!(
        QUARANTINED_SEGMENTS,
        "Segments that recovery moved into a partition's quarantine/ folder (they followed a cut)."
    );
    describe_gauge!(
        TRANSACTIONAL_IDS,
        "Transactional ids held by the transaction coordinator (each has a file under __transactions)."
    );
    describe_gauge!(
        FETCH_SESSIONS,
        "Incremental fetch sessions in the cache (Kafka's NumIncrementalFetchSessions)."
    );
    describe_gauge!(
        FETCH_SESSION_PARTITIONS,
        "Partitions cached over all fetch sessions (Kafka's NumIncrementalFetchPartitionsCached)."
    );
    describe_gauge!(
        RECOVERY_SECONDS,
        Unit::Seconds,
        "Time from start to serving, recovery of every partition included."
    );
}

/// The actor kind a message type is for, as metric labels name it.
pub trait ActorKind {
    const KIND: &'static str;
}

/// Times one message's handling by an actor kind.
pub struct HandleTimer(metrics::Histogram);

impl HandleTimer {
    pub fn new<M: ActorKind>() -> HandleTimer {
        HandleTimer(metrics::histogram!(ACTOR_HANDLE_SECONDS, "actor" => M::KIND))
    }

    pub fn record(&self, started: Instant) {
        self.0.record(started.elapsed().as_secs_f64());
    }
}

/// Times one message's handling until dropped (for actors off the hottest path, which
/// look their histogram up per message).
pub struct Handling {
    histogram: metrics::Histogram,
    started: Instant,
}

pub fn time_handling<M: ActorKind>() -> Handling {
    Handling {
        histogram: metrics::histogram!(ACTOR_HANDLE_SECONDS, "actor" => M::KIND),
        started: Instant::now(),
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.histogram.record(self.started.elapsed().as_secs_f64());
    }
}

/// One outstanding request to an actor kind, counted until it is dropped (answered or
/// given up on).
pub struct Outstanding(metrics::Gauge);

impl Outstanding {
    pub fn new(kind: &'static str) -> Outstanding {
        let gauge = metrics::gauge!(ACTOR_OUTSTANDING, "actor" => kind);
        gauge.increment(1.0);
        Outstanding(gauge)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A partition's gauges, registered once when its actor starts and removed when the
/// partition is deleted.
pub struct PartitionGauges {
    log_end_offset: metrics::Gauge,
    high_watermark: metrics::Gauge,
    log_start_offset: metrics::Gauge,
    size: metrics::Gauge,
    labels: [(&'static str, String); 2],
}

impl PartitionGauges {
    pub fn new(topic: &str, partition: i32) -> PartitionGauges {
        let labels = [
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ];
        PartitionGauges {
            log_end_offset: metrics::gauge!(LOG_END_OFFSET, &labels),
            high_watermark: metrics::gauge!(HIGH_WATERMARK, &labels),
            log_start_offset: metrics::gauge!(LOG_START_OFFSET, &labels),
            size: metrics::gauge!(LOG_SIZE, &labels),
            labels,
        }
    }

    /// The partition is deleted: its series leave the page. Later sets reach nobody.
    pub fn remove(&self) {
        let Some(series) = PARTITION_SERIES.get() else {
            return;
        };
        for (name, _) in PARTITION_GAUGES {
            series.remove(&Key::from_parts(name, &self.labels));
        }
    }

    pub fn set(&self, log_start: i64, high_watermark: i64, log_end: i64, size: u64) {
        self.log_start_offset.set(log_start as f64);
        self.high_watermark.set(high_watermark as f64);
        self.log_end_offset.set(log_end as f64);
        self.size.set(size as f64);
    }
}

/// Counts segments recovery moved aside into quarantine/.
pub fn quarantined_segments(count: usize) {
    metrics::counter!(QUARANTINED_SEGMENTS).increment(count as u64);
}

/// Counts and times one fsync.
pub fn fsync<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    metrics::counter!(FSYNCS).increment(1);
    metrics::histogram!(FSYNC_SECONDS).record(started.elapsed().as_secs_f64());
    out
}
