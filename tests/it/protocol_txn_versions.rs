//! The transaction APIs at every advertised version, through the real dispatch with
//! encode and decode at that version: one whole transaction per version (InitProducerId,
//! AddPartitionsToTxn, a transactional produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn),
//! with what read_committed readers see before and after, then the operator APIs.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::protocol::BrokerContext;
use broker::storage::batch_builder::{build_batch, set_producer};
use broker::storage::sim::SimStorage;

use super::protocol_versions::{name, range, serve, text};

pub(crate) const TOPIC: &str = "txv";

/// A transactional batch of `count` records from a producer.
pub(crate) fn transactional_batch(
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    count: usize,
) -> Bytes {
    let values: Vec<Vec<u8>> = (0..count).map(|i| format!("v{i}").into_bytes()).collect();
    let kv: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let mut batch = build_batch(&kv, 1_000);
    // attributes: the transactional bit (set_producer recomputes the CRC over it).
    batch[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    set_producer(&mut batch, producer_id, epoch, sequence);
    Bytes::from(batch)
}

pub(crate) async fn init(ctx: &BrokerContext, v: i16, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(text(id))))
        .with_transaction_timeout_ms(60_000);
    let ResponseKind::InitProducerId(r) = serve(
        ctx,
        ApiKey::InitProducerId,
        v,
        RequestKind::InitProducerId(req),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(r.error_code, 0, "InitProducerId v{v} for {id}");
    (r.producer_id.0, r.producer_epoch)
}

pub(crate) async fn produce(ctx: &BrokerContext, id: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(text(id))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    // v12: the newest version that names topics by name (v13 uses topic ids).
    let ResponseKind::Produce(r) = serve(ctx, ApiKey::Produce, 12, RequestKind::Produce(req)).await
    else {
        unreachable!()
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// (latest offset for read_committed, latest for read_uncommitted).
pub(crate) async fn latest(ctx: &BrokerContext) -> (i64, i64) {
    let mut out = [0i64; 2];
    for (i, isolation) in [1i8, 0].iter().enumerate() {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(*isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]);
        let ResponseKind::ListOffsets(r) =
            serve(ctx, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(req)).await
        else {
            unreachable!()
        };
        out[i] = r.topics[0].partitions[0].offset;
    }
    (out[0], out[1])
}

/// A read_committed fetch from `offset`: (last stable offset, bytes, aborted producer ids).
pub(crate) async fn fetch_committed(ctx: &BrokerContext, offset: i64) -> (i64, usize, Vec<i64>) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(r) = serve(ctx, ApiKey::Fetch, 12, RequestKind::Fetch(req)).await
    else {
        unreachable!()
    };
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|t| t.producer_id.0)
        .collect();
    (
        p.last_stable_offset,
        p.records.as_ref().map_or(0, |r| r.len()),
        aborted,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transaction_api_version_runs_a_transaction() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        group_initial_rebalance_delay_ms: 0,
        ..Config::default()
    };
    let broker = Broker::start(config, Arc::new(SimStorage::new()))
        .await
        .expect("broker starts");
    let ctx = broker.context();
    let topic = CreatableTopic::default()
        .with_name(name(TOPIC))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let ResponseKind::CreateTopics(r) = serve(
        &ctx,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic])),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(r.topics[0].error_code, 0);

    // InitProducerId with a transactional id: the same producer id, the epoch bumped.
    for v in range(ApiKey::InitProducerId) {
        let id = format!("ti-{v}");
        let (pid, epoch) = init(&ctx, v, &id).await;
        assert_eq!(epoch, 0);
        assert_eq!(
            init(&ctx, v, &id).await,
            (pid, 1),
            "InitProducerId v{v} bumps"
        );
    }

    let mut offset = 0i64;
    for v in range(ApiKey::EndTxn) {
        let id = format!("tx-{v}");
        let commit = v % 2 == 0;
        let (pid, epoch) = init(&ctx, 4, &id).await;

        // An unknown partition fails alone; the others are not attempted.
        let topics = |extra: bool| {
            let mut t = vec![AddPartitionsToTxnTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![0])];
            if extra {
                t.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(name("nope"))
                        .with_partitions(vec![0]),
                );
            }
            t
        };
        for extra in [true, false] {
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(text(&id)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(topics(extra));
            let ResponseKind::AddPartitionsToTxn(r) = serve(
                &ctx,
                ApiKey::AddPartitionsToTxn,
                v,
                RequestKind::AddPartitionsToTxn(req),
            )
            .await
            else {
                unreachable!()
            };
            let codes: Vec<i16> = r
                .results_by_topic_v3_and_below
                .iter()
                .map(|t| t.results_by_partition[0].partition_error_code)
                .collect();
            let want = if extra { vec![55, 3] } else { vec![0] };
            assert_eq!(codes, want, "AddPartitionsToTxn v{v}");
        }

        let (code, base) = produce(&ctx, &id, transactional_batch(pid, epoch, 0, 3)).await;
        assert_eq!((code, base), (0, offset), "transactional produce");
        assert_eq!(
            latest(&ctx).await,
            (offset, offset + 3),
            "LSO holds at the open txn"
        );
        let (lso, bytes, _) = fetch_committed(&ctx, offset).await;
        assert_eq!(
            (lso, bytes),
            (offset, 0),
            "read_committed sees nothing open"
        );

        let group = format!("txg-{v}");
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(text(&id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(text(&group)));
        let ResponseKind::AddOffsetsToTxn(r) = serve(
            &ctx,
            ApiKey::AddOffsetsToTxn,
            v,
            RequestKind::AddOffsetsToTxn(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, 0, "AddOffsetsToTxn v{v}");

        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(text(&id)))
            .with_group_id(GroupId(text(&group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)])]);
        let ResponseKind::TxnOffsetCommit(r) = serve(
            &ctx,
            ApiKey::TxnOffsetCommit,
            v,
            RequestKind::TxnOffsetCommit(req),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "TxnOffsetCommit v{v}"
        );
        // Pending: require_stable readers are told to wait.
        assert_eq!(committed(&ctx, &group, true).await, (-1, 88));

        // An older epoch is fenced, with the error this version knows.
        let end = |e: i16| {
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(text(&id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(e)
                .with_committed(commit)
        };
        let ResponseKind::EndTxn(r) =
            serve(&ctx, ApiKey::EndTxn, v, RequestKind::EndTxn(end(epoch - 1))).await
        else {
            unreachable!()
        };
        let fenced = if v >= 2 { 90 } else { 47 };
        assert_eq!(r.error_code, fenced, "EndTxn v{v} with an old epoch");
        let ResponseKind::EndTxn(r) =
            serve(&ctx, ApiKey::EndTxn, v, RequestKind::EndTxn(end(epoch))).await
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, 0, "EndTxn v{v}");
        // Three records and the marker; nothing is open any more.
        offset += 4;
        assert_eq!(
            latest(&ctx).await,
            (offset, offset),
            "LSO after EndTxn v{v}"
        );
        let (lso, bytes, aborted) = fetch_committed(&ctx, offset - 4).await;
        assert_eq!(lso, offset);
        assert!(bytes > 0);
        assert_eq!(aborted, if commit { vec![] } else { vec![pid] });
        let want = if commit { 42 } else { -1 };
        assert_eq!(
            committed(&ctx, &group, true).await,
            (want, 0),
            "offsets v{v}"
        );
    }

    // Operators: DescribeProducers, ListTransactions, DescribeTransactions.
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name(TOPIC))
        .with_partition_indexes(vec![0])]);
    let ResponseKind::DescribeProducers(r) = serve(
        &ctx,
        ApiKey::DescribeProducers,
        0,
        RequestKind::DescribeProducers(req),
    )
    .await
    else {
        unreachable!()
    };
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.active_producers.len(), range(ApiKey::EndTxn).count());
    assert!(p
        .active_producers
        .iter()
        .all(|s| s.last_sequence == 2 && s.current_txn_start_offset == -1));

    for v in range(ApiKey::ListTransactions) {
        let req = ListTransactionsRequest::default()
            .with_state_filters(vec![text("CompleteCommit"), text("Bogus")]);
        let ResponseKind::ListTransactions(r) = serve(
            &ctx,
            ApiKey::ListTransactions,
            v,
            RequestKind::ListTransactions(req),
        )
        .await
        else {
            unreachable!()
        };
        let ids: Vec<&str> = r
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.0.as_str())
            .collect();
        assert_eq!(ids, vec!["tx-0", "tx-2"], "ListTransactions v{v}");
        assert_eq!(r.unknown_state_filters, vec![text("Bogus")]);
    }

    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(text("tx-1")),
        TransactionalId(text("nope")),
    ]);
    let ResponseKind::DescribeTransactions(r) = serve(
        &ctx,
        ApiKey::DescribeTransactions,
        0,
        RequestKind::DescribeTransactions(req),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(r.transaction_states[0].error_code, 0);
    assert_eq!(
        r.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    assert_eq!(r.transaction_states[0].transaction_timeout_ms, 60_000);
    assert_eq!(r.transaction_states[1].error_code, 105);

    // FindCoordinator for a transactional id is this broker.
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(text("tx-0"));
    let ResponseKind::FindCoordinator(r) = serve(
        &ctx,
        ApiKey::FindCoordinator,
        3,
        RequestKind::FindCoordinator(req),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!((r.error_code, r.node_id), (0, BrokerId(0)));
}

/// The committed offset of `group` for partition 0, and its error code (v7, require_stable).
async fn committed(ctx: &BrokerContext, group: &str, require_stable: bool) -> (i64, i16) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let ResponseKind::OffsetFetch(r) =
        serve(ctx, ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(req)).await
    else {
        unreachable!()
    };
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}
