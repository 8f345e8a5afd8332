//! What happens when actors stop unexpectedly: a connection actor that dies takes its
//! reading task with it; a core actor (metadata, a registry) that dies makes
//! `Broker::failed` name it, so the process can shut down and exit with an error; a
//! partition actor that fails is restarted outside the metadata actor's mailbox, which
//! keeps answering meanwhile, and one that keeps failing is given up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use ractor::{Actor, ActorRef, SupervisionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use broker::actors::broker::Broker;
use broker::actors::connection::{Connection, ConnectionArgs};
use broker::actors::partition::PartitionMsg;
use broker::config::Config;
use broker::protocol::BrokerContext;
use broker::storage::sim::SimStorage;

use crate::actor_stalled_disk::{produce_error, produce_to};
use crate::protocol_versions::{name, serve};

const WAIT: Duration = Duration::from_secs(10);

async fn start(sim: &SimStorage) -> Broker {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        ..Config::default()
    };
    Broker::start(config, Arc::new(sim.clone())).await.unwrap()
}

/// An ApiVersions v0 request, framed.
fn api_versions_frame() -> Vec<u8> {
    let mut body = 18i16.to_be_bytes().to_vec();
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A Metadata v1 request for one topic, which auto-creates it, framed.
fn metadata_frame(topic: &str) -> Vec<u8> {
    let mut body = 3i16.to_be_bytes().to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&8i32.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn a_killed_connection_stops_reading_its_socket() {
    // The broker gets a runtime of its own: the stalled metadata write below blocks one of
    // its threads, and this test's timers must keep running meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let test = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let closed = test.block_on(killed_connection(&runtime));
    runtime.shutdown_timeout(WAIT);
    assert!(
        closed,
        "the dead connection's socket is still open for reading"
    );
}

/// True when the killed connection's socket closed (see above).
async fn killed_connection(runtime: &tokio::runtime::Runtime) -> bool {
    let sim = SimStorage::new();
    let broker = runtime
        .spawn({
            let sim = sim.clone();
            async move { start(&sim).await }
        })
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, peer) = listener.accept().await.unwrap();
    let args = ConnectionArgs {
        stream: stream.into(),
        peer,
        context: broker.context(),
        listener: broker::security::ListenerIdentity::plaintext(),
        principal: broker::security::KafkaPrincipal::anonymous(),
        owner: None,
    };
    let (conn, ended) = runtime
        .spawn(Actor::spawn(None, Connection, args))
        .await
        .unwrap()
        .unwrap();
    client.write_all(&api_versions_frame()).await.unwrap();
    let mut size = [0u8; 4];
    tokio::time::timeout(WAIT, client.read_exact(&mut size))
        .await
        .expect("answered")
        .unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    client.read_exact(&mut body).await.unwrap();

    // The reading task is busy preparing a request: an auto-creation that waits for the
    // metadata actor, whose record file write is stalled.
    sim.stall_writes("__meta");
    client
        .write_all(&metadata_frame("auto-created"))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while sim.stalled_writes() == 0 {
        assert!(Instant::now() < deadline, "the auto-creation never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Killed (as good as a panic: no post_stop runs).
    conn.kill();
    tokio::time::timeout(WAIT, ended)
        .await
        .expect("the actor ended")
        .unwrap();
    // With its reading task aborted the socket is closed, so the client's writes are
    // reset; a reading task left behind would keep the socket open and read them once
    // its request is prepared.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = false;
    while Instant::now() < deadline {
        if client.write_all(&api_versions_frame()).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.release_writes();
    runtime.spawn(broker.shutdown()).await.unwrap();
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_actor_that_stops_fails_the_broker() {
    for victim in ["metadata", "group registry", "transaction registry"] {
        let sim = SimStorage::new();
        let mut broker = start(&sim).await;
        assert!(
            broker.failed().now_or_never().is_none(),
            "nothing has failed yet"
        );
        match victim {
            "metadata" => broker.metadata.kill(),
            "group registry" => broker.groups.kill(),
            _ => broker.txns.kill(),
        }
        let failed = tokio::time::timeout(WAIT, broker.failed())
            .await
            .unwrap_or_else(|_| panic!("the {victim} actor's end was not noticed"));
        assert_eq!(failed, victim);
        broker.shutdown().await; // what is left shuts down without hanging
    }
}

async fn create_topic(ctx: &BrokerContext, topic: &str) -> i16 {
    create_topic_within(ctx, topic, 5000).await
}

async fn create_topic_within(ctx: &BrokerContext, topic: &str, timeout_ms: i32) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let ResponseKind::CreateTopics(r) =
        serve(ctx, ApiKey::CreateTopics, 5, RequestKind::CreateTopics(req)).await
    else {
        unreachable!()
    };
    r.topics[0].error_code
}

fn partition_actor(ctx: &BrokerContext, topic: &str) -> ActorRef<PartitionMsg> {
    ctx.routes().topic(topic).expect("topic").partitions[0].clone()
}

/// What a panic inside the partition does, from its supervisor's side: the metadata
/// actor hears that it failed, and the actor is gone.
fn fail(partition: &ActorRef<PartitionMsg>) {
    partition
        .get_cell()
        .notify_supervisor(SupervisionEvent::ActorFailed(
            partition.get_cell(),
            "simulated panic (test)".into(),
        ));
    partition.kill();
}

/// Waits (bounded) until the routing table shows a running actor for `topic`-0 other
/// than `old`.
async fn restarted(ctx: &BrokerContext, topic: &str, old: &ActorRef<PartitionMsg>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = partition_actor(ctx, topic);
        if now.get_id() != old.get_id() && now.get_status() == ractor::ActorStatus::Running {
            return;
        }
        assert!(Instant::now() < deadline, "{topic}-0 was not restarted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_answers_while_a_failed_partition_recovers() {
    let sim = SimStorage::new();
    let broker = start(&sim).await;
    let ctx = broker.context();
    assert_eq!(create_topic(&ctx, "victim").await, 0);
    assert_eq!(produce_error(&ctx, "victim").await, 0);
    let old = partition_actor(&ctx, "victim");
    // The restarted partition's recovery will hang on its first read of the log.
    sim.stall_reads("victim-0");
    fail(&old);
    let deadline = Instant::now() + WAIT;
    while sim.stalled_writes() == 0 {
        assert!(Instant::now() < deadline, "the restart never read the log");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Meanwhile the metadata actor creates topics (the old code restarted the partition
    // inside its own mailbox, so this waited for the disk).
    let created =
        tokio::time::timeout(Duration::from_secs(5), create_topic(&ctx, "bystander")).await;
    let stalled_produce = produce_error(&ctx, "victim").await;
    sim.release_writes();
    assert_eq!(
        created.ok(),
        Some(0),
        "CreateTopics answered during the restart"
    );
    assert_eq!(
        stalled_produce, 6,
        "NOT_LEADER_OR_FOLLOWER while it restarts"
    );
    restarted(&ctx, "victim", &old).await;
    assert_eq!(produce_error(&ctx, "victim").await, 0, "served again");
    assert_eq!(produce_error(&ctx, "bystander").await, 0);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_keeps_failing_is_given_up() {
    let sim = SimStorage::new();
    let broker = start(&sim).await;
    let ctx = broker.context();
    assert_eq!(create_topic(&ctx, "flaky").await, 0);
    // Five restarts (at once, then after 200, 400, 800 and 1600 ms)...
    for _ in 0..5 {
        let old = partition_actor(&ctx, "flaky");
        fail(&old);
        restarted(&ctx, "flaky", &old).await;
        assert_eq!(produce_error(&ctx, "flaky").await, 0);
    }
    // ...and the sixth failure within ten minutes gives it up: a stand-in answers
    // KAFKA_STORAGE_ERROR until the broker restarts.
    fail(&partition_actor(&ctx, "flaky"));
    let deadline = Instant::now() + WAIT;
    loop {
        let code = produce_error(&ctx, "flaky").await;
        if code == 56 {
            break;
        }
        assert_eq!(
            code, 6,
            "NOT_LEADER_OR_FOLLOWER until the stand-in is in place"
        );
        assert!(Instant::now() < deadline, "the partition was not given up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.shutdown().await;
}

async fn metadata_error(ctx: &BrokerContext, topic: &str) -> i16 {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let ResponseKind::Metadata(r) =
        serve(ctx, ApiKey::Metadata, 9, RequestKind::Metadata(req)).await
    else {
        unreachable!()
    };
    r.topics[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_answers_while_a_new_topic_starts_on_a_stalled_disk() {
    let sim = SimStorage::new();
    let broker = start(&sim).await;
    let ctx = broker.context();
    // The new topic's partition hangs on its first fsync in its directory.
    sim.stall_syncs("slow-0");
    let first = tokio::spawn({
        let ctx = ctx.clone();
        async move { create_topic(&ctx, "slow").await }
    });
    let deadline = Instant::now() + WAIT;
    while sim.stalled_syncs() == 0 {
        assert!(Instant::now() < deadline, "the new partition never synced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Meanwhile the metadata actor answers (the old code started the partition inside its
    // own mailbox, so these waited for the disk).
    let other = tokio::time::timeout(Duration::from_secs(5), create_topic(&ctx, "bystander")).await;
    let described =
        tokio::time::timeout(Duration::from_secs(5), metadata_error(&ctx, "slow")).await;
    let again = tokio::time::timeout(Duration::from_secs(5), create_topic(&ctx, "slow")).await;
    let first_done_early = first.is_finished();
    // An auto-creating produce for it waits for it to serve, then appends.
    let auto = tokio::spawn({
        let ctx = ctx.clone();
        async move { produce_error(&ctx, "slow").await }
    });
    sim.release_writes();
    assert_eq!(other.ok(), Some(0), "CreateTopics answered meanwhile");
    assert_eq!(
        described.ok(),
        Some(5),
        "LEADER_NOT_AVAILABLE while it starts"
    );
    assert_eq!(again.ok(), Some(36), "TOPIC_ALREADY_EXISTS while it starts");
    assert!(!first_done_early, "answered before the topic was usable");
    let created = tokio::time::timeout(WAIT, first)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(created, 0);
    let auto = tokio::time::timeout(WAIT, auto)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(
        auto, 0,
        "the auto-creating produce was answered once it served"
    );
    assert_eq!(produce_error(&ctx, "slow").await, 0, "the topic works");
    assert_eq!(metadata_error(&ctx, "slow").await, 0);
    broker.shutdown().await;
}

async fn delete_topic(ctx: &BrokerContext, topic: &str) -> i16 {
    let req = DeleteTopicsRequest::default().with_topic_names(vec![name(topic)]);
    let ResponseKind::DeleteTopics(r) =
        serve(ctx, ApiKey::DeleteTopics, 4, RequestKind::DeleteTopics(req)).await
    else {
        unreachable!()
    };
    r.responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topic_that_times_out_or_is_deleted_while_starting() {
    let sim = SimStorage::new();
    let broker = start(&sim).await;
    let ctx = broker.context();
    sim.stall_syncs("gone-0");
    // Its partition cannot start: the caller hears REQUEST_TIMED_OUT after its
    // timeout_ms, and the creation goes on.
    let timed_out = tokio::time::timeout(
        Duration::from_secs(5),
        create_topic_within(&ctx, "gone", 200),
    )
    .await;
    assert_eq!(timed_out.ok(), Some(7), "REQUEST_TIMED_OUT");
    let deadline = Instant::now() + WAIT;
    while sim.stalled_syncs() == 0 {
        assert!(Instant::now() < deadline, "the new partition never synced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Auto-creation of the same name waits for it (and hears it was deleted).
    let auto = tokio::spawn({
        let ctx = ctx.clone();
        async move { produce_error(&ctx, "gone").await }
    });
    // Deleted while it starts: the name stays taken until its partition has arrived and
    // been deleted (as Kafka's "marked for deletion").
    let deleted = tokio::time::timeout(Duration::from_secs(5), delete_topic(&ctx, "gone")).await;
    assert_eq!(deleted.ok(), Some(0), "DeleteTopics answered meanwhile");
    assert_eq!(
        metadata_error(&ctx, "gone").await,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(create_topic(&ctx, "gone").await, 36, "TOPIC_ALREADY_EXISTS");
    sim.release_writes();
    let auto = tokio::time::timeout(WAIT, auto)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(auto, 3, "the topic it waited for was deleted");
    // Once the deleted partition has moved aside, the name is free again, from empty.
    let deadline = Instant::now() + WAIT;
    loop {
        match create_topic(&ctx, "gone").await {
            0 => break,
            36 => assert!(Instant::now() < deadline, "the name was never freed"),
            code => panic!("unexpected CreateTopics error {code}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(produce_error(&ctx, "gone").await, 0);
    broker.shutdown().await;
}

async fn grow(ctx: &BrokerContext, topic: &str, count: i32) -> i16 {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count),
        ]);
    let ResponseKind::CreatePartitions(r) = serve(
        ctx,
        ApiKey::CreatePartitions,
        3,
        RequestKind::CreatePartitions(req),
    )
    .await
    else {
        unreachable!()
    };
    r.results[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_answers_while_new_partitions_start_on_a_stalled_disk() {
    let sim = SimStorage::new();
    let broker = start(&sim).await;
    let ctx = broker.context();
    assert_eq!(create_topic(&ctx, "grow").await, 0);
    sim.stall_syncs("grow-1");
    let first = tokio::spawn({
        let ctx = ctx.clone();
        async move { grow(&ctx, "grow", 2).await }
    });
    let deadline = Instant::now() + WAIT;
    while sim.stalled_syncs() == 0 {
        assert!(Instant::now() < deadline, "the new partition never synced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other = tokio::time::timeout(Duration::from_secs(5), create_topic(&ctx, "bystander")).await;
    let again = tokio::time::timeout(Duration::from_secs(5), grow(&ctx, "grow", 3)).await;
    let first_done_early = first.is_finished();
    sim.release_writes();
    assert_eq!(other.ok(), Some(0), "CreateTopics answered meanwhile");
    assert_eq!(again.ok(), Some(37), "INVALID_PARTITIONS while it grows");
    assert!(
        !first_done_early,
        "answered before the partition was usable"
    );
    let grown = tokio::time::timeout(WAIT, first)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(grown, 0);
    let ResponseKind::Produce(r) = serve(&ctx, ApiKey::Produce, 9, produce_to("grow", 1)).await
    else {
        unreachable!()
    };
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 0,
        "the new partition works"
    );
    broker.shutdown().await;
}
