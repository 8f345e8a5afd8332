//! The `mixed` workload: producers at full speed and consumers tailing the same topic at
//! the same time. Reports both sides and the end-to-end latency (send time in the payload).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use rdkafka::consumer::BaseConsumer;

use crate::cli::{Global, MixedArgs};
use crate::client::{Connection, ProducerSettings};
use crate::latency::{check_message_size, LATENCY_KIND};
use crate::produce::{self, ProducePlan};
use crate::progress::{Sampler, Watch};
use crate::report::{merge, rfc3339, Report, RunOptions, Throughput};
use crate::stats::{Counter, Percentiles};
use crate::tail;
use crate::topic::{self, TopicInfo};
use crate::workers::failures;

pub fn bench(global: &Global, topic: &TopicInfo, args: &MixedArgs) -> Result<Report> {
    let size = check_message_size(global)?;
    let limit = global.limit();
    let conn = Connection::new(global);
    let probe: BaseConsumer = conn.consumer().create().context("creating a consumer")?;
    let marks = topic::watermarks(&probe, topic)?;
    let mut tailers = tail::start(&conn, topic, &marks, args.consumers)?;
    let o = &args.producer;
    let produced = Arc::new(Counter::default());
    let plan = Arc::new(ProducePlan {
        topic: topic.name.clone(),
        partitions: topic.partitions,
        settings: ProducerSettings {
            conn: conn.clone(),
            acks: o.acks,
            linger_ms: o.linger_ms,
            batch_size: o.batch_size,
            idempotence: o.idempotence,
            compression: global.compression,
        },
        producers: args.producers,
        limit,
        message_size: size,
        stamp: true,
        counter: produced.clone(),
        latencies: None,
    });
    let mut started = None;
    let outcome = produce::run_producers(plan, || {
        tailers.workers.go();
        let watch = Watch {
            main: produced.clone(),
            consumed: Some(tailers.counter.clone()),
            latencies: Some(tailers.latencies.clone()),
        };
        started = Some((
            SystemTime::now(),
            Instant::now(),
            Sampler::start(watch, global.progress_secs),
        ));
    })?;
    let (started_at, start, sampler) =
        started.ok_or_else(|| anyhow!("the producers never started"))?;
    let acked = produced.totals();
    tailers.target.set(acked.msgs);
    let results = tailers.workers.join();
    let consume_elapsed = start.elapsed();
    let timeline = sampler.finish();
    let failed = merge(outcome.failures.clone(), &failures(&results));
    let consumed = tailers.counter.totals();
    let mut options = RunOptions::new(global, topic, limit);
    options.acks = Some(o.acks);
    options.producers = Some(args.producers);
    options.consumers = Some(args.consumers);
    options.linger_ms = Some(o.linger_ms);
    options.batch_size = Some(o.batch_size);
    options.idempotence = Some(o.idempotence);
    let error_messages = merge(
        merge(produced.error_samples(), &tailers.counter.error_samples()),
        &failed,
    );
    Ok(Report {
        workload: "mixed",
        bootstrap: global.bootstrap.clone(),
        options,
        started_at: rfc3339(started_at),
        result: Throughput::new(acked, outcome.elapsed),
        complete: failed.is_empty(),
        error_messages,
        latency_kind: Some(LATENCY_KIND),
        latency_us: Percentiles::of(&tailers.latencies.total()),
        fill: None,
        produced: None,
        consumed: Some(Throughput::new(consumed, consume_elapsed)),
        timeline,
    })
}
