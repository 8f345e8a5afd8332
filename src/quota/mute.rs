//! A connection's mute (Kafka's channel mute for a throttled client, KIP-219): response
//! tasks set until when the connection is throttled; its reading task waits that out
//! before it takes another request. A watch channel, so no lock is shared.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What response tasks mute the connection with (cheap to clone).
#[derive(Clone)]
pub struct Mute(Arc<watch::Sender<Instant>>);

/// What the reading task waits on.
pub struct Muted(watch::Receiver<Instant>);

/// A connection's mute, not muted.
pub fn channel() -> (Mute, Muted) {
    let (tx, rx) = watch::channel(Instant::now());
    (Mute(Arc::new(tx)), Muted(rx))
}

impl Mute {
    /// Mutes the connection for `throttle` from now, unless it already is for longer.
    pub fn mute_for(&self, throttle: Duration) {
        if throttle == Duration::ZERO {
            return;
        }
        let until = Instant::now() + throttle;
        self.0.send_if_modified(|muted| {
            let later = until > *muted;
            if later {
                *muted = until;
            }
            later
        });
    }
}

impl Muted {
    /// Waits while the connection is muted; false when `stop` changed meanwhile.
    pub async fn wait(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let until = *self.0.borrow();
        if until <= Instant::now() {
            return true;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => false,
            _ = tokio::time::sleep_until(until) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_mute_is_waited_out_and_only_a_longer_one_replaces_it() {
        let (mute, muted) = channel();
        let (_stop_tx, mut stop) = watch::channel(false);
        let start = Instant::now();
        assert!(muted.wait(&mut stop).await);
        assert_eq!(Instant::now(), start);
        mute.mute_for(Duration::from_millis(500));
        mute.mute_for(Duration::from_millis(100));
        assert!(muted.wait(&mut stop).await);
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
    }
}
