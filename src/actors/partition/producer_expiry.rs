//! The partition actor's producer expiry (a child module of `partition`):
//! producer.id.expiration.ms, checked every producer.id.expiration.check.interval.ms.
//! Idle idempotent producers are forgotten in memory, and a flush then writes a log
//! checkpoint without them, so the producer snapshot on disk forgets them too.

use std::time::Duration;

use ractor::ActorRef;
use tracing::info;

use super::{PartitionMsg, PartitionState};

/// Kafka's producer.id.expiration.ms and producer.id.expiration.check.interval.ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerExpiry {
    pub expiration_ms: i64,
    pub check_interval: Duration,
}

impl Default for ProducerExpiry {
    fn default() -> Self {
        ProducerExpiry {
            expiration_ms: 86_400_000,
            check_interval: Duration::from_millis(600_000),
        }
    }
}

impl PartitionState {
    /// Forgets the producers idle as of `now_ms`; answers how many.
    pub(super) fn expire_producers(
        &mut self,
        myself: &ActorRef<PartitionMsg>,
        now_ms: i64,
    ) -> usize {
        let expiration_ms = self.args.producer_expiry.expiration_ms;
        let expired = self.log.expire_producers(now_ms, expiration_ms);
        if expired > 0 {
            info!(topic = %self.args.topic, partition = self.args.partition, expired,
                producers = self.log.producer_count(), "Expired idle producer ids.");
            // The snapshot on disk still names them: a flush writes a new checkpoint (or
            // the one in flight is followed by a tick that does).
            self.start_flush(myself);
            self.schedule_tick(myself);
        }
        expired
    }
}
