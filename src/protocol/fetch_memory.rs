//! The broker-wide budget of memory that Fetch reads may hold at once
//! (`fetch_memory_budget_bytes`). A request's own `max_bytes` bounds one response; this
//! bounds them all together, however many clients fetch. A Fetch takes its share before a
//! partition reads a byte and gives back what it did not use. When the budget is spent it
//! reads less, or waits (never past its own max_wait_ms) and then reads what is free,
//! possibly nothing: an empty response, as Kafka answers a throttled fetch.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Clone)]
pub struct FetchMemory {
    free: Arc<Semaphore>,
    total: usize,
}

/// Budget held by one Fetch; given back when dropped.
#[derive(Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Gives back everything past `keep` bytes.
    pub fn shrink_to(&mut self, keep: usize) {
        if let Some(permit) = self.0.as_mut() {
            let extra = permit.num_permits().saturating_sub(keep);
            if extra > 0 {
                drop(permit.split(extra));
            }
        }
    }

    pub fn merge(&mut self, other: Held) {
        match (self.0.as_mut(), other.0) {
            (Some(permit), Some(other)) => permit.merge(other),
            (None, other) => self.0 = other,
            (Some(_), None) => {}
        }
    }
}

impl FetchMemory {
    /// `total` bytes, at most u32::MAX (the largest share one acquire can take).
    pub fn new(total: usize) -> FetchMemory {
        let total = total.min(u32::MAX as usize);
        FetchMemory {
            free: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes not held by any Fetch now.
    pub fn available(&self) -> usize {
        self.free.available_permits()
    }

    /// Up to `want` bytes: all of it if free; else what is free now; else all of it if it
    /// is freed before `deadline`; else what is free at the deadline (maybe nothing).
    pub async fn take(&self, want: usize, deadline: Instant) -> Held {
        let want = want.min(self.total);
        if let Some(held) = self.try_take(want) {
            return held;
        }
        let now = self.available().min(want);
        if let Some(held) = self.try_take(now).filter(|h| h.bytes() > 0) {
            return held;
        }
        if let Some(held) = self.take_all(want, deadline).await {
            return held;
        }
        self.try_take(self.available().min(want))
            .unwrap_or_default()
    }

    /// Exactly `want` bytes, waiting until `deadline` at most; None when they were not
    /// freed in time or are more than the whole budget.
    pub async fn take_all(&self, want: usize, deadline: Instant) -> Option<Held> {
        if want > self.total {
            return None;
        }
        if let Some(held) = self.try_take(want) {
            return Some(held);
        }
        let acquire = self.free.clone().acquire_many_owned(want as u32);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Some(Held(Some(permit))),
            _ => None,
        }
    }

    fn try_take(&self, want: usize) -> Option<Held> {
        if want == 0 {
            return Some(Held(None));
        }
        self.free
            .clone()
            .try_acquire_many_owned(want as u32)
            .ok()
            .map(|p| Held(Some(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn takes_what_is_free_and_gives_back_what_it_does_not_use() {
        let memory = FetchMemory::new(100);
        let soon = Instant::now() + Duration::from_millis(10);
        let mut first = memory.take(70, soon).await;
        assert_eq!(first.bytes(), 70);
        // Less than wanted is free: read less rather than wait.
        let second = memory.take(50, soon).await;
        assert_eq!(second.bytes(), 30);
        // Nothing free: wait until the deadline, then nothing.
        assert_eq!(memory.take(10, soon).await.bytes(), 0);
        assert!(memory.take_all(10, soon).await.is_none());
        first.shrink_to(20);
        assert_eq!(memory.available(), 50);
        first.merge(second);
        assert_eq!(first.bytes(), 50);
        drop(first);
        assert_eq!(memory.available(), 100);
        assert!(memory.take_all(101, soon).await.is_none());
    }
}
