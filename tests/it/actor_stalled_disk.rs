//! A partition whose disk stops answering holds up only itself: its segment write blocks
//! a storage-runtime thread, while requests for other partitions and ApiVersions on the
//! runtime that serves sockets (one worker thread here, so a blocked worker would show)
//! are answered. Ordering, not timing: the stalled produce is still pending when the
//! others are answered, and completes once the disk is released.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::protocol::BrokerContext;
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;

use crate::protocol_versions::{name, serve};

fn produce(topic: &str) -> RequestKind {
    produce_to(topic, 0)
}

pub(crate) fn produce_to(topic: &str, index: i32) -> RequestKind {
    let batch = Bytes::from(build_batch(&[(Some(b"k"), Some(b"v"))], 1_000));
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(index)
                    .with_records(Some(batch))])]),
    )
}

pub(crate) async fn produce_error(ctx: &BrokerContext, topic: &str) -> i16 {
    let ResponseKind::Produce(r) = serve(ctx, ApiKey::Produce, 9, produce(topic)).await else {
        unreachable!()
    };
    r.responses[0].partition_responses[0].error_code
}

/// A broker on the simulated disk with the one-partition topics "stuck" and "free".
async fn start_with_two_topics(storage: &SimStorage, config: Config) -> (Broker, BrokerContext) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        ..config
    };
    let broker = Broker::start(config, Arc::new(storage.clone()))
        .await
        .unwrap();
    let ctx = broker.context();
    let topics = ["stuck", "free"].map(|t| {
        CreatableTopic::default()
            .with_name(name(t))
            .with_num_partitions(1)
            .with_replication_factor(1)
    });
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(topics.to_vec());
    serve(
        &ctx,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(req),
    )
    .await;
    (broker, ctx)
}

/// The runtime that serves requests, with one worker: were a partition's blocking disk
/// call on it, nothing else would be answered until the disk came back.
fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_stalled_disk_holds_up_only_its_own_partition() {
    let sim = SimStorage::new();
    let runtime = one_worker_runtime();
    let (done_tx, done_rx) = mpsc::channel::<String>();
    let storage = sim.clone();
    runtime.spawn(async move {
        let (broker, ctx) = start_with_two_topics(&storage, Config::default()).await;

        storage.stall_writes("stuck-0");
        let stuck = tokio::spawn({
            let ctx = ctx.clone();
            async move { produce_error(&ctx, "stuck").await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while storage.stalled_writes() == 0 {
            assert!(
                Instant::now() < deadline,
                "the write never reached the disk"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ResponseKind::ApiVersions(v) = serve(
            &ctx,
            ApiKey::ApiVersions,
            3,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(v.error_code, 0);
        assert_eq!(produce_error(&ctx, "free").await, 0, "the other partition");
        assert!(!stuck.is_finished(), "the stalled produce is still waiting");
        let _ = done_tx.send("others answered".into());
        storage.release_writes();
        assert_eq!(stuck.await.unwrap(), 0, "the stalled produce completes");
        broker.shutdown().await;
        let _ = done_tx.send("stalled produce completed".into());
    });
    for step in ["others answered", "stalled produce completed"] {
        let got = done_rx.recv_timeout(Duration::from_secs(30));
        if got.as_deref() != Ok(step) {
            sim.release_writes(); // let the runtime shut down
            panic!("expected '{step}' within 30 s, got {got:?}");
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(10));
}

fn fetch(topics: &[&str]) -> RequestKind {
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        fetch_request::FetchTopic::default()
                            .with_topic(name(t))
                            .with_partitions(vec![fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)])
                    })
                    .collect(),
            ),
    )
}

/// A Fetch that names a partition whose disk stopped answering reads is answered once that
/// partition's read passes fetch_partition_read_timeout_ms: REQUEST_TIMED_OUT for it, the
/// records of the other partition beside it. Before, the whole Fetch waited on the stalled
/// read for as long as the disk did.
#[test]
fn a_fetch_from_a_stalled_partition_times_out_only_that_partition() {
    let sim = SimStorage::new();
    let runtime = one_worker_runtime();
    let (done_tx, done_rx) = mpsc::channel::<(i16, i16, usize)>();
    let storage = sim.clone();
    runtime.spawn(async move {
        let config = Config {
            fetch_partition_read_timeout_ms: 300,
            ..Config::default()
        };
        let (broker, ctx) = start_with_two_topics(&storage, config).await;
        assert_eq!(produce_error(&ctx, "stuck").await, 0);
        assert_eq!(produce_error(&ctx, "free").await, 0);

        storage.stall_reads("stuck-0");
        let ResponseKind::Fetch(r) =
            serve(&ctx, ApiKey::Fetch, 12, fetch(&["stuck", "free"])).await
        else {
            unreachable!()
        };
        let part = |i: usize| &r.responses[i].partitions[0];
        let answer = (
            part(0).error_code,
            part(1).error_code,
            part(1).records.as_ref().map_or(0, |b| b.len()),
        );
        storage.release_writes();
        broker.shutdown().await;
        let _ = done_tx.send(answer);
    });
    let got = done_rx.recv_timeout(Duration::from_secs(30));
    sim.release_writes(); // whatever happened, let the runtime shut down
    runtime.shutdown_timeout(Duration::from_secs(10));
    let (stuck, free, free_bytes) = got.expect("the Fetch was answered within 30 s");
    assert_eq!(stuck, 7, "REQUEST_TIMED_OUT for the stalled partition");
    assert_eq!(free, 0);
    assert!(free_bytes > 0, "the other partition's records are served");
}
