//! Consumers tailing a topic while producers write to it (`latency`, `mixed`): assigned
//! from the high watermarks taken before the producers start, they read every new message
//! and record its end-to-end latency (receive time minus the send time in the payload),
//! until they have read as many messages as the producers had acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{Connection, STALL_TIMEOUT};
use crate::consume::connect;
use crate::payload::{now_nanos, read_stamp};
use crate::stats::{Counter, Latencies, LatencySink};
use crate::topic::{TopicInfo, Watermarks};
use crate::workers::{self, Workers};

/// How many messages the tailers must read before they stop; unknown while producing.
#[derive(Debug)]
pub struct Target(AtomicU64);

impl Default for Target {
    fn default() -> Self {
        Target(AtomicU64::new(u64::MAX))
    }
}

impl Target {
    pub fn set(&self, messages: u64) {
        self.0.store(messages, Ordering::Release);
    }

    fn reached(&self, read: u64) -> bool {
        let target = self.0.load(Ordering::Acquire);
        target != u64::MAX && read >= target
    }
}

pub struct Tailers {
    pub counter: Arc<Counter>,
    pub latencies: Arc<Latencies>,
    pub target: Arc<Target>,
    pub workers: Workers<()>,
}

/// Starts `consumers` tailers (partition p goes to consumer p % consumers) and waits until
/// they are connected; they start reading at `go`.
pub fn start(
    conn: &Connection,
    topic: &TopicInfo,
    marks: &Watermarks,
    consumers: u32,
) -> Result<Tailers> {
    let counter = Arc::new(Counter::default());
    let latencies = Arc::new(Latencies::default());
    let target = Arc::new(Target::default());
    let k = consumers.max(1) as usize;
    let mut plan = vec![Vec::new(); k];
    for (p, &(_, high)) in marks.iter().enumerate() {
        plan[p % k].push((p as i32, high));
    }
    let plan = Arc::new(plan);
    let (c, l, t) = (counter.clone(), latencies.clone(), target.clone());
    let (conn, name) = (conn.clone(), topic.name.clone());
    let workers = workers::spawn("tail", consumers, move |index, gate| {
        let mine = plan.get(index as usize).cloned().unwrap_or_default();
        let Some(consumer) = gate.pass(connect(&conn, &name))? else {
            return Ok(());
        };
        tail(&consumer, &name, &mine, &c, &l.new_sink(), &t)
    })?;
    workers.wait_ready()?;
    Ok(Tailers {
        counter,
        latencies,
        target,
        workers,
    })
}

fn tail(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[(i32, i64)],
    counter: &Counter,
    sink: &LatencySink,
    target: &Target,
) -> Result<()> {
    if partitions.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for &(p, high) in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(high))
            .with_context(|| format!("assigning {topic}/{p}"))?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    // Progress is what all tailers read: one whose partitions are quiet is not stalled.
    let mut seen = counter.msgs();
    let mut last_progress = Instant::now();
    loop {
        let read = counter.msgs();
        if target.reached(read) {
            return Ok(());
        }
        if read != seen {
            (seen, last_progress) = (read, Instant::now());
        } else if last_progress.elapsed() >= STALL_TIMEOUT {
            bail!(
                "tailing consumers read nothing for {} s ({read} messages read)",
                STALL_TIMEOUT.as_secs()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let received = now_nanos();
                let payload = m.payload().unwrap_or_default();
                if let Some(sent) = read_stamp(payload) {
                    sink.record_us(received.saturating_sub(sent) / 1000);
                }
                counter.add(1, payload.len() as u64);
            }
            Some(Err(e)) => counter.error(|| format!("consume: {e}")),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_unknown_until_set() {
        let t = Target::default();
        assert!(!t.reached(u64::MAX - 1));
        t.set(10);
        assert!(!t.reached(9));
        assert!(t.reached(10) && t.reached(11));
        t.set(0);
        assert!(t.reached(0));
    }
}
