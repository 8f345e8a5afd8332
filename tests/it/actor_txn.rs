//! The transaction coordinator inside a broker on the simulated disk, driven through the
//! real dispatch: a transaction past its timeout is aborted and its producer fenced (and a
//! KIP-360 re-initialisation still works); a transaction that was ending (PrepareCommit)
//! when the broker stopped is finished by the next start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;

use broker::actors::broker::Broker;
use broker::actors::txn_messages::{TxnMetadata, TxnStatus};
use broker::config::Config;
use broker::coordinator::group_store::file_name;
use broker::protocol::BrokerContext;
use broker::storage::sim::SimStorage;
use broker::storage::{RecordFile, Storage};

use super::protocol_txn_versions::{
    fetch_committed, init, latest, produce, transactional_batch, TOPIC,
};
use super::protocol_versions::{name, serve, text};

pub(crate) fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        ..Config::default()
    }
}

async fn start(storage: &Arc<SimStorage>, create: bool) -> (Broker, BrokerContext) {
    start_with(storage, config(), create).await
}

pub(crate) async fn start_with(
    storage: &Arc<SimStorage>,
    config: Config,
    create: bool,
) -> (Broker, BrokerContext) {
    let broker = Broker::start(config, storage.clone() as Arc<dyn Storage>)
        .await
        .expect("broker starts");
    let ctx = broker.context();
    if create {
        let topic = CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(1)
            .with_replication_factor(1);
        let req = CreateTopicsRequest::default().with_topics(vec![topic]);
        let ResponseKind::CreateTopics(r) = serve(
            &ctx,
            ApiKey::CreateTopics,
            5,
            RequestKind::CreateTopics(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.topics[0].error_code, 0);
    }
    (broker, ctx)
}

pub(crate) async fn init_with(
    ctx: &BrokerContext,
    id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> InitProducerIdResponse {
    let mut req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(text(id))))
        .with_transaction_timeout_ms(timeout_ms);
    if let Some((pid, epoch)) = expected {
        req = req
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch);
    }
    let ResponseKind::InitProducerId(r) = serve(
        ctx,
        ApiKey::InitProducerId,
        4,
        RequestKind::InitProducerId(req),
    )
    .await
    else {
        unreachable!()
    };
    r
}

pub(crate) async fn add_partition(ctx: &BrokerContext, id: &str, pid: i64, epoch: i16) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(text(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![0])]);
    let ResponseKind::AddPartitionsToTxn(r) = serve(
        ctx,
        ApiKey::AddPartitionsToTxn,
        3,
        RequestKind::AddPartitionsToTxn(req),
    )
    .await
    else {
        unreachable!()
    };
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn describe(ctx: &BrokerContext, id: &str) -> (String, i16) {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(text(id))]);
    let ResponseKind::DescribeTransactions(r) = serve(
        ctx,
        ApiKey::DescribeTransactions,
        0,
        RequestKind::DescribeTransactions(req),
    )
    .await
    else {
        unreachable!()
    };
    let s = &r.transaction_states[0];
    (s.transaction_state.to_string(), s.producer_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let storage = Arc::new(SimStorage::new());
    let (_broker, ctx) = start(&storage, true).await;
    let r = init_with(&ctx, "slow", 300, None).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(add_partition(&ctx, "slow", pid, epoch).await, 0);
    let (code, _) = produce(&ctx, "slow", transactional_batch(pid, epoch, 0, 2)).await;
    assert_eq!(code, 0);
    assert_eq!(latest(&ctx).await, (0, 2), "open: the LSO holds");

    // The coordinator's own timer aborts it: poll its state, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (state, _) = describe(&ctx, "slow").await;
        if state == "CompleteAbort" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not aborted within 10 s: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(describe(&ctx, "slow").await.1, epoch + 1, "epoch bumped");
    assert_eq!(
        latest(&ctx).await,
        (3, 3),
        "the abort marker made it stable"
    );
    let (_, _, aborted) = fetch_committed(&ctx, 0).await;
    assert_eq!(aborted, vec![pid]);

    // The timed-out producer is fenced at the coordinator and at the partition.
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(text("slow")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(true);
    let ResponseKind::EndTxn(r) = serve(&ctx, ApiKey::EndTxn, 3, RequestKind::EndTxn(req)).await
    else {
        unreachable!()
    };
    assert_eq!(r.error_code, 90, "PRODUCER_FENCED");
    let (code, _) = produce(&ctx, "slow", transactional_batch(pid, epoch, 2, 1)).await;
    assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH at the partition");

    // KIP-360: the producer may re-initialise naming the epoch it held.
    let r = init_with(&ctx, "slow", 60_000, Some((pid, epoch))).await;
    assert_eq!((r.error_code, r.producer_id.0), (0, pid));
    assert_eq!(r.producer_epoch, epoch + 2);
    // Naming an epoch it never held is fenced.
    let r = init_with(&ctx, "slow", 60_000, Some((pid, epoch))).await;
    assert_eq!(r.error_code, 90);
    // A timeout above transaction_max_timeout_ms is refused.
    let r = init_with(&ctx, "slow", 1_000_000_000, None).await;
    assert_eq!(r.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finishes_a_transaction_that_was_committing() {
    let storage = Arc::new(SimStorage::new());
    let (broker, ctx) = start(&storage, true).await;
    let (pid, epoch) = init(&ctx, 4, "committing").await;
    assert_eq!(add_partition(&ctx, "committing", pid, epoch).await, 0);
    let (code, _) = produce(&ctx, "committing", transactional_batch(pid, epoch, 0, 3)).await;
    assert_eq!(code, 0);
    broker.shutdown().await;

    // The broker stopped right after EndTxn made PrepareCommit durable, before any marker.
    let path = std::path::Path::new("/data/__transactions").join(file_name("committing"));
    let dyn_storage: Arc<dyn Storage> = storage.clone();
    let (mut file, records, _) =
        RecordFile::<TxnMetadata>::open(dyn_storage, path).expect("transaction file");
    let mut meta = records.last().cloned().expect("a state");
    assert_eq!(meta.state, TxnStatus::Ongoing);
    meta.state = TxnStatus::PrepareCommit;
    file.append(&meta).expect("appended");
    drop(file);

    let (_broker, ctx) = start(&storage, false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (state, _) = describe(&ctx, "committing").await;
        if state == "CompleteCommit" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not completed within 10 s: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(latest(&ctx).await, (4, 4), "the commit marker is in");
    let (lso, bytes, aborted) = fetch_committed(&ctx, 0).await;
    assert_eq!(lso, 4);
    assert!(
        bytes > 0 && aborted.is_empty(),
        "committed records are readable"
    );
}
