//! The `consume` workload: make sure the topic holds --count messages (producing the
//! missing ones first, acks=1, reported as the fill), take the watermarks, then consumers
//! (assigned partitions split among them, no group membership) read every message present
//! at that moment, from the low to the high watermark of each partition.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::cli::{ConsumeArgs, Global, Limit, DEFAULT_CONSUME_COUNT};
use crate::client::{Connection, REQUEST_TIMEOUT, STALL_TIMEOUT};
use crate::produce;
use crate::progress::{Sampler, Watch};
use crate::report::{merge, rfc3339, Report, RunOptions, Throughput};
use crate::stats::Counter;
use crate::topic::{self, TopicInfo, Watermarks};
use crate::workers::{self, failures};

/// One partition a consumer reads: from `low` up to (not including) `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

/// Partition p goes to consumer p % consumers; partitions with nothing to read are left out.
pub fn split(marks: &Watermarks, consumers: u32) -> Vec<Vec<Span>> {
    let k = consumers.max(1) as usize;
    let mut out = vec![Vec::new(); k];
    for (p, &(low, high)) in marks.iter().enumerate() {
        if high > low {
            out[p % k].push(Span {
                partition: p as i32,
                low,
                high,
            });
        }
    }
    out
}

/// Messages between the watermarks (an upper bound where compaction left gaps).
pub fn present(marks: &Watermarks) -> u64 {
    marks.iter().map(|&(l, h)| (h - l).max(0) as u64).sum()
}

pub fn bench(global: &Global, topic: &TopicInfo, args: &ConsumeArgs) -> Result<Report> {
    // Not global.limit(): with neither --count nor --duration, read everything, uncapped.
    let (target, read_deadline) = match (global.count, global.duration) {
        (Some(n), _) => (n, None),
        (None, Some(secs)) => (DEFAULT_CONSUME_COUNT, Some(Duration::from_secs(secs))),
        (None, None) => (DEFAULT_CONSUME_COUNT, None),
    };
    let limit = read_deadline.map_or(Limit::Count(target), Limit::Duration);
    let conn = Connection::new(global);
    let probe: BaseConsumer = conn.consumer().create().context("creating a consumer")?;
    let mut marks = topic::watermarks(&probe, topic)?;
    let mut fill = None;
    let mut error_messages = Vec::new();
    let have = present(&marks);
    if have < target {
        eprintln!(
            "filling {} with {} messages (acks=1) so there is something to read",
            topic.name,
            target - have
        );
        let (t, errors) = produce::fill(global, topic, target - have)?;
        if !errors.is_empty() {
            error_messages = merge(error_messages, &errors);
        }
        fill = Some(t);
        marks = topic::watermarks(&probe, topic)?;
    }
    let expected = present(&marks);
    let spans = split(&marks, args.consumers);
    let counter = Arc::new(Counter::default());
    let mut workers = {
        let (spans, counter) = (Arc::new(spans), counter.clone());
        let (conn, name) = (conn.clone(), topic.name.clone());
        workers::spawn("consumer", args.consumers, move |index, gate| {
            let mine = spans.get(index as usize).cloned().unwrap_or_default();
            let Some(consumer) = gate.pass(connect(&conn, &name))? else {
                return Ok(());
            };
            let deadline = read_deadline.map(|d| Instant::now() + d);
            read_spans(&consumer, &name, &mine, &counter, deadline)
        })?
    };
    workers.wait_ready()?;
    let started_at = SystemTime::now();
    let sampler = Sampler::start(
        Watch {
            main: counter.clone(),
            consumed: None,
            latencies: None,
        },
        global.progress_secs,
    );
    let start = Instant::now();
    workers.go();
    let results = workers.join();
    let elapsed = start.elapsed();
    let timeline = sampler.finish();
    let totals = counter.totals();
    let mut failed = failures(&results);
    if failed.is_empty() && read_deadline.is_none() && totals.msgs < expected {
        // Only possible where compaction or transaction markers left offsets without records.
        failed.push(format!(
            "read {} of the {expected} offsets between the watermarks",
            totals.msgs
        ));
    }
    error_messages = merge(error_messages, &counter.error_samples());
    error_messages = merge(error_messages, &failed);
    let mut options = RunOptions::new(global, topic, limit);
    options.consumers = Some(args.consumers);
    Ok(Report {
        workload: "consume",
        bootstrap: global.bootstrap.clone(),
        options,
        started_at: rfc3339(started_at),
        result: Throughput::new(totals, elapsed),
        complete: results.iter().all(|r| r.is_ok()),
        error_messages,
        latency_kind: None,
        latency_us: None,
        fill,
        produced: None,
        consumed: None,
        timeline,
    })
}

/// A consumer that has already talked to the broker.
pub fn connect(conn: &Connection, topic: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = conn.consumer().create().context("creating a consumer")?;
    consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("consumer fetching metadata for {topic}"))?;
    Ok(consumer)
}

/// Reads each span to its end; stops early at `deadline`, or with an error when nothing
/// arrives for [`STALL_TIMEOUT`].
fn read_spans(
    consumer: &BaseConsumer,
    topic: &str,
    spans: &[Span],
    counter: &Counter,
    deadline: Option<Instant>,
) -> Result<()> {
    if spans.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for s in spans {
        tpl.add_partition_offset(topic, s.partition, Offset::Offset(s.low))
            .with_context(|| format!("assigning {topic}/{}", s.partition))?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    let mut remaining: HashMap<i32, i64> = spans.iter().map(|s| (s.partition, s.high)).collect();
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let p = m.partition();
                if let Some(&high) = remaining.get(&p) {
                    if m.offset() < high {
                        counter.add(1, m.payload_len() as u64);
                    }
                    if m.offset() + 1 >= high {
                        remaining.remove(&p);
                    }
                }
            }
            Some(Err(e)) => counter.error(|| format!("consume: {e}")),
            None => {
                // Offsets without records (compaction, transaction markers) end a partition
                // without a last message: the fetch position tells.
                let positions = consumer.position().context("reading positions")?;
                for e in positions.elements() {
                    if let (Offset::Offset(at), Some(&high)) =
                        (e.offset(), remaining.get(&e.partition()))
                    {
                        if at >= high {
                            remaining.remove(&e.partition());
                        }
                    }
                }
            }
        }
        if !remaining.is_empty() && last_progress.elapsed() >= STALL_TIMEOUT {
            bail!(
                "no message for {} s with {} partition(s) not read to the end",
                STALL_TIMEOUT.as_secs(),
                remaining.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_split_round_robin() {
        let marks = vec![(0, 10), (5, 5), (0, 3), (2, 4)];
        let s = split(&marks, 2);
        assert_eq!(s.len(), 2);
        let parts = |v: &Vec<Span>| v.iter().map(|s| s.partition).collect::<Vec<_>>();
        assert_eq!(parts(&s[0]), vec![0, 2]);
        assert_eq!(parts(&s[1]), vec![3], "partition 1 is empty");
        assert_eq!(present(&marks), 10 + 3 + 2);
        let many = split(&marks, 8);
        assert_eq!(many.len(), 8);
        assert!(many[4..].iter().all(Vec::is_empty));
    }
}
