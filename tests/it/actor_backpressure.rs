//! The bytes queued for one partition actor are bounded: with the partition stuck on a
//! stalled disk, produces fill its queue budget and the next one is answered
//! REQUEST_TIMED_OUT at once; a produce whose timeout passed before the partition took
//! it is not appended; a Produce's timeout covers the whole request, not each partition
//! in turn (two stuck partitions are answered before two timeouts have passed: a bound
//! on the deadline, with nearly a whole timeout of slack, not a speed check).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

use broker::actors::broker::Broker;
use broker::actors::call;
use broker::actors::partition::PartitionMsg;
use broker::config::Config;
use broker::protocol::BrokerContext;
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;

use crate::protocol_versions::{name, serve};

const WAIT: Duration = Duration::from_secs(10);
const REQUEST_TIMED_OUT: i16 = 7;

async fn start(sim: &SimStorage, queued_bytes: usize) -> Broker {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        max_partition_queued_bytes: queued_bytes,
        ..Config::default()
    };
    let broker = Broker::start(config, Arc::new(sim.clone())).await.unwrap();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("slow"))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    serve(
        &broker.context(),
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(req),
    )
    .await;
    broker
}

/// A produce of one batch of `value_bytes` to each of `partitions` of "slow".
fn produce(partitions: &[i32], value_bytes: usize, timeout_ms: i32) -> RequestKind {
    let value = vec![b'v'; value_bytes];
    let batch = Bytes::from(build_batch(&[(Some(b"k"), Some(&value))], 1_000));
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("slow"))
                .with_partition_data(
                    partitions
                        .iter()
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(*p)
                                .with_records(Some(batch.clone()))
                        })
                        .collect(),
                )]),
    )
}

fn errors(response: ResponseKind) -> Vec<i16> {
    let ResponseKind::Produce(r) = response else {
        unreachable!()
    };
    r.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// Starts a produce, returns its pending answer.
fn spawn_produce(ctx: &BrokerContext, request: RequestKind) -> tokio::task::JoinHandle<Vec<i16>> {
    let ctx = ctx.clone();
    tokio::spawn(async move { errors(serve(&ctx, ApiKey::Produce, 9, request).await) })
}

async fn wait_for_stall(sim: &SimStorage) {
    let deadline = Instant::now() + WAIT;
    while sim.stalled_writes() == 0 {
        assert!(
            Instant::now() < deadline,
            "the write never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn log_end_offset(ctx: &BrokerContext, partition: usize) -> i64 {
    let actor = ctx.routes().topic("slow").unwrap().partitions[partition].clone();
    call(&actor, |reply| PartitionMsg::Offsets { reply }, WAIT)
        .await
        .unwrap()
        .log_end_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_partition_answers_at_once() {
    let sim = SimStorage::new();
    // Room for about three 10 KB batches.
    let broker = start(&sim, 32 * 1024).await;
    let ctx = broker.context();
    sim.stall_writes("slow-0");
    // The first is taken and stalls on the disk; the next three wait in the mailbox.
    let mut queued = vec![spawn_produce(&ctx, produce(&[0], 10_000, 30_000))];
    wait_for_stall(&sim).await;
    for _ in 0..3 {
        queued.push(spawn_produce(&ctx, produce(&[0], 10_000, 30_000)));
    }
    let route = ctx.routes().topic("slow").cloned().unwrap();
    let deadline = Instant::now() + WAIT;
    while route.queue(0).unwrap().queued_bytes() < 30_000 {
        assert!(Instant::now() < deadline, "the produces never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Full: answered now, while the disk is still stalled; the other partition serves.
    let answer = tokio::time::timeout(
        WAIT,
        serve(&ctx, ApiKey::Produce, 9, produce(&[0, 1], 10_000, 30_000)),
    )
    .await;
    let still_stalled = sim.stalled_writes() > 0;
    sim.release_writes();
    let answer = errors(answer.expect("a full partition answers at once"));
    assert!(still_stalled);
    assert_eq!(answer, vec![REQUEST_TIMED_OUT, 0]);
    for q in queued {
        assert_eq!(q.await.unwrap(), vec![0], "the queued produces complete");
    }
    assert_eq!(
        route.queue(0).unwrap().queued_bytes(),
        0,
        "budget given back"
    );
    assert_eq!(log_end_offset(&ctx, 0).await, 4);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_that_timed_out_is_not_appended_later() {
    let sim = SimStorage::new();
    let broker = start(&sim, 64 * 1024 * 1024).await;
    let ctx = broker.context();
    sim.stall_writes("slow-0");
    let first = spawn_produce(&ctx, produce(&[0], 100, 30_000));
    wait_for_stall(&sim).await;
    // Queued behind the stalled one; its client is told it timed out.
    let late = serve(&ctx, ApiKey::Produce, 9, produce(&[0], 100, 200)).await;
    assert_eq!(errors(late), vec![REQUEST_TIMED_OUT]);
    sim.release_writes();
    assert_eq!(first.await.unwrap(), vec![0]);
    // Offsets is taken after the late append: only the first one was written.
    assert_eq!(log_end_offset(&ctx, 0).await, 1);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_covers_the_whole_request() {
    let sim = SimStorage::new();
    let broker = start(&sim, 64 * 1024 * 1024).await;
    let ctx = broker.context();
    // Both partitions stuck: the request is answered at its one deadline. Waiting for
    // each partition in turn would take two timeouts; the bound below is 1.9.
    sim.stall_writes("slow-");
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_millis(3_800),
        serve(&ctx, ApiKey::Produce, 9, produce(&[0, 1], 100, 2_000)),
    )
    .await;
    let waited = started.elapsed();
    sim.release_writes();
    let answer = answer.unwrap_or_else(|_| panic!("not answered within 1.9 timeouts"));
    assert_eq!(errors(answer), vec![REQUEST_TIMED_OUT, REQUEST_TIMED_OUT]);
    assert!(waited >= Duration::from_millis(2_000));
    broker.shutdown().await;
}
