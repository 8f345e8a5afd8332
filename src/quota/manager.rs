//! Kafka's ClientQuotaManager: the one owner of every quota's measured rate. One task holds
//! the rates by (quota key, user, client id); connections send it what a request used and
//! get back how long to throttle the client, so no lock guards the rates. Rates nobody
//! recorded to for the whole window span are forgotten.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::entity::{QuotaKey, QuotaMetricKey};
use super::sensor::{QuotaWindows, Rate};

/// Records queued for the task before connections wait for room.
const MAILBOX: usize = 4096;

/// What one request used against one quota.
#[derive(Debug, Clone)]
pub struct Usage {
    pub key: QuotaKey,
    pub metric: QuotaMetricKey,
    pub quota: f64,
    pub value: f64,
    /// Fetch: a throttled client is answered no records, so their bytes are taken back.
    pub unrecord_if_throttled: bool,
}

struct Record {
    usage: Usage,
    reply: oneshot::Sender<Duration>,
}

/// The mailbox of the broker's quota manager.
#[derive(Clone, Debug)]
pub struct ClientQuotaManager {
    tx: mpsc::Sender<Record>,
    windows: QuotaWindows,
}

impl ClientQuotaManager {
    /// Starts the manager's task (on the current runtime); it ends when every handle is
    /// gone.
    pub fn start(windows: QuotaWindows) -> Self {
        let (tx, mut rx) = mpsc::channel::<Record>(MAILBOX);
        tokio::spawn(async move {
            let mut rates: HashMap<(QuotaKey, QuotaMetricKey), Rate> = HashMap::new();
            let span = windows.size * windows.num as u32;
            let mut next_purge = Instant::now() + span;
            while let Some(Record { usage, reply }) = rx.recv().await {
                let now = Instant::now();
                let rate = rates
                    .entry((usage.key, usage.metric))
                    .or_insert_with(|| Rate::new(windows));
                rate.record(usage.value, now);
                let throttle = rate.throttle(usage.quota, now);
                if throttle > Duration::ZERO && usage.unrecord_if_throttled {
                    rate.unrecord(usage.value, now);
                }
                let _ = reply.send(throttle);
                if now >= next_purge {
                    rates.retain(|_, rate| !rate.idle(now));
                    next_purge = now + span;
                }
            }
        });
        Self { tx, windows }
    }

    pub fn windows(&self) -> QuotaWindows {
        self.windows
    }

    /// Records `usage`; answers how long its client is throttled (zero: not at all, or
    /// the manager is gone).
    pub async fn record(&self, usage: Usage) -> Duration {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Record { usage, reply }).await.is_err() {
            return Duration::ZERO;
        }
        answer.await.unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(user: &str, value: f64) -> Usage {
        Usage {
            key: QuotaKey::ProducerByteRate,
            metric: QuotaMetricKey {
                user: user.into(),
                client_id: String::new(),
            },
            quota: 100.0,
            value,
            unrecord_if_throttled: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_user_is_measured_apart() {
        let manager = ClientQuotaManager::start(QuotaWindows {
            num: 11,
            size: Duration::from_secs(1),
        });
        assert_eq!(manager.record(usage("a", 900.0)).await, Duration::ZERO);
        assert!(manager.record(usage("a", 900.0)).await > Duration::ZERO);
        assert_eq!(manager.record(usage("b", 900.0)).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_fetch_takes_its_bytes_back() {
        let manager = ClientQuotaManager::start(QuotaWindows {
            num: 11,
            size: Duration::from_secs(1),
        });
        let fetch = |value| Usage {
            unrecord_if_throttled: true,
            ..usage("a", value)
        };
        assert_eq!(manager.record(fetch(900.0)).await, Duration::ZERO);
        assert!(manager.record(fetch(900.0)).await > Duration::ZERO);
        // The second 900 was taken back: 50 more still fits.
        assert_eq!(manager.record(fetch(50.0)).await, Duration::ZERO);
    }
}
