//! The Prometheus endpoint. Every metric goes to metrics-exporter-prometheus's recorder
//! except the per-partition gauges, which live in a registry of their own so a deleted
//! partition's series can be removed: the exporter's registry has no removal, and its
//! idle timeout would also drop live series that do not change (an idle partition's
//! offsets, the recovery time). GET on `metrics_listen` answers both, rendered together.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{formatting, PrometheusHandle, PrometheusRecorder};
use metrics_util::registry::{AtomicStorage, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::PARTITION_GAUGES;

/// Scrapes answered at once; a further connection is closed at once.
const MAX_SCRAPES: usize = 32;
/// A scrape's whole exchange; a client slower than this is dropped.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most request-head bytes read from a scraper.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How often histogram samples are folded in when nobody scrapes (the exporter's default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The per-partition gauges, by key (name and the topic and partition labels).
pub(super) struct PartitionSeries {
    registry: Registry<Key, AtomicStorage>,
}

impl PartitionSeries {
    pub(super) fn new() -> PartitionSeries {
        PartitionSeries {
            registry: Registry::atomic(),
        }
    }

    pub(super) fn remove(&self, key: &Key) {
        self.registry.delete_gauge(key);
    }

    /// The gauges in Prometheus's text format, in a stable order.
    fn render(&self, out: &mut String) {
        let mut by_name: BTreeMap<String, Vec<(Vec<String>, f64)>> = BTreeMap::new();
        for (key, value) in self.registry.get_gauge_handles() {
            let (name, labels) = formatting::key_to_parts(&key, None);
            let value = f64::from_bits(value.load(Ordering::Acquire));
            by_name.entry(name).or_default().push((labels, value));
        }
        for (name, mut series) in by_name {
            series.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some((_, help)) = PARTITION_GAUGES.iter().find(|(n, _)| *n == name) {
                formatting::write_help_line(out, &name, help);
            }
            formatting::write_type_line(out, &name, "gauge");
            for (labels, value) in series {
                formatting::write_metric_line::<&str, f64>(
                    out, &name, None, &labels, None, value, None,
                );
            }
            out.push('\n');
        }
    }
}

/// The installed recorder: partition gauges to `partitions`, the rest to Prometheus's.
pub(super) struct BrokerRecorder {
    pub(super) prometheus: PrometheusRecorder,
    pub(super) partitions: Arc<PartitionSeries>,
}

fn is_partition_gauge(key: &Key) -> bool {
    PARTITION_GAUGES.iter().any(|(n, _)| *n == key.name())
}

impl Recorder for BrokerRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.prometheus.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if is_partition_gauge(key) {
            return self
                .partitions
                .registry
                .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()));
        }
        self.prometheus.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.prometheus.register_histogram(key, metadata)
    }
}

/// Answers scrapes on `listener` until the runtime stops, and folds histogram samples
/// in on a timer so they do not pile up between scrapes.
pub(super) fn spawn(
    listener: std::net::TcpListener,
    handle: PrometheusHandle,
    partitions: Arc<PartitionSeries>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    warn!(%err, "Could not accept a metrics connection.");
                    // Out of descriptors passes; do not spin on it meanwhile.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!("Closed a metrics connection: {MAX_SCRAPES} scrapes in progress.");
                continue;
            };
            let handle = handle.clone();
            let partitions = partitions.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let scrape = answer(stream, &handle, &partitions);
                if let Ok(Err(err)) = tokio::time::timeout(SCRAPE_TIMEOUT, scrape).await {
                    debug!(%err, "A metrics scrape failed.");
                }
            });
        }
    });
    Ok(())
}

/// Reads one request head (bounded) and answers it with the page; GET only.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    partitions: &PartitionSeries,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Ok(());
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if head.starts_with(b"GET ") {
        let mut body = handle.render();
        partitions.render(&mut body);
        ("200 OK", body)
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
