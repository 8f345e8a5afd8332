//! librdkafka client configurations, the same for every broker measured.

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::cli::{Acks, Compression, Global};

/// A message neither acknowledged nor failed within this time fails (`message.timeout.ms`).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a producer's final flush may take: every message has failed or been
/// acknowledged by then.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(45);
/// Consumers that read nothing for this long stop and report an error.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Metadata, watermark and admin requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the broker is, and the user's extra settings (--client-config) every client gets.
#[derive(Debug, Clone)]
pub struct Connection {
    pub bootstrap: String,
    pub extra: Vec<(String, String)>,
}

impl Connection {
    pub fn new(global: &Global) -> Connection {
        Connection {
            bootstrap: global.bootstrap.clone(),
            extra: global.client_config.clone(),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    pub fn admin(&self) -> ClientConfig {
        self.finish(self.base())
    }

    /// A consumer that is only ever assigned partitions: it joins no group and commits
    /// nothing (librdkafka wants a group.id to poll at all).
    pub fn consumer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", format!("broker-bench-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            // librdkafka waits this long before fetching again once a partition's local
            // queue is over `queued.min.messages`; its 1000 ms default leaves a consumer
            // that drains the queue quickly idle for most of each second, measuring the
            // client's pause rather than the broker.
            .set("fetch.queue.backoff.ms", "10");
        self.finish(c)
    }
}

#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub conn: Connection,
    pub acks: Acks,
    pub linger_ms: u64,
    pub batch_size: u64,
    pub idempotence: bool,
    pub compression: Compression,
}

impl ProducerSettings {
    pub fn config(&self) -> ClientConfig {
        let mut c = self.conn.base();
        c.set("acks", self.acks.as_config())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_size.to_string())
            .set("enable.idempotence", self.idempotence.to_string())
            .set("compression.type", self.compression.as_config())
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            );
        // librdkafka's own queue limits stay: a larger queue raises a full-speed producer's
        // throughput little and its send-to-acknowledgement latency a lot.
        self.conn.finish(c)
    }
}
