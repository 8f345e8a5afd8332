//! Telling a dead broker from a slow one before its session runs out.
//!
//! Kafka's controller fences a broker only when `broker.session.timeout.ms` (9 s) passes
//! without a heartbeat, so a kill -9 leaves its partitions leaderless for that long (longer
//! when the controller itself died: a new controller gives every broker a full session).
//! Here the controller also asks the host: a broker whose heartbeat is late (more than
//! 1.25 heartbeat intervals without one, or none yet since this controller took over) has
//! its registered listener probed with a TCP connect. A refused connection means nothing listens there: the broker process is gone
//! (or restarting), and it is fenced at once. Any other outcome (accepted, timed out,
//! unreachable) proves nothing, as across a network partition, and the session timeout
//! decides as in Kafka. A fenced broker that heartbeats again is unfenced as before.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::time::Duration;

use tokio::time::Instant;

use crate::actors::metadata::MetadataImage;

/// How long a probe's connect may take before it counts as no answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A broker whose heartbeat is late: its id and registered listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateBroker {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// The live brokers not heard from since `since` (when this controller took over: after a
/// controller's death the dead broker is often the controller's own, which nobody can tell
/// apart from a slow one for a whole session otherwise) or for more than 1.25
/// `heartbeat_interval`, leaving out those `skip` names (being probed already, or this
/// node's own).
pub fn late_brokers(
    image: &MetadataImage,
    last_seen: &HashMap<i32, Instant>,
    since: Instant,
    now: Instant,
    heartbeat_interval: Duration,
    skip: impl Fn(i32) -> bool,
) -> Vec<LateBroker> {
    let late = heartbeat_interval + heartbeat_interval / 4;
    image
        .live_brokers()
        .filter(|(id, _)| !skip(*id))
        .filter(|(id, _)| match last_seen.get(id) {
            Some(last) if *last >= since => now.duration_since(*last) > late,
            _ => true,
        })
        .filter_map(|(id, b)| {
            Some(LateBroker {
                id,
                host: b.host.clone(),
                port: u16::try_from(b.port).ok()?,
            })
        })
        .collect()
}

/// True when the broker's listener refused a connection (nothing listens there); false
/// when it answered or the probe proved nothing.
pub async fn listener_refuses(network: &crate::sockets::Network, host: &str, port: u16) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, network.connect_to(host, port)).await {
        Ok(Err(err)) => err.kind() == ErrorKind::ConnectionRefused,
        Ok(Ok(_)) | Err(_) => false,
    }
}
