//! AddPartitionsToTxn v0-v3 (the client versions; v4+ is broker to broker): adds
//! partitions to the producer's open transaction, beginning one if none is open. A
//! partition that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION and the others of
//! the request with OPERATION_NOT_ATTEMPTED, as in Kafka.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;

use super::txns::{answer, fenced_for, send};
use crate::actors::txn_messages::TxnMsg;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> ResponseFuture {
    let routes = ctx.routes();
    let requested: Vec<(TopicName, Vec<i32>)> = req
        .v3_and_below_topics
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    let missing = |topic: &TopicName, partition: i32| {
        routes
            .topic(topic.0.as_str())
            .and_then(|r| r.partition(partition))
            .is_none()
    };
    let any_missing = requested
        .iter()
        .any(|(t, ps)| ps.iter().any(|p| missing(t, *p)));
    let rx = if any_missing {
        None
    } else {
        let partitions = requested
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.0.to_string(), *p)))
            .collect();
        Some(
            send(ctx, req.v3_and_below_transactional_id.0.as_str(), |reply| {
                TxnMsg::AddPartitions {
                    producer_id: req.v3_and_below_producer_id.0,
                    producer_epoch: req.v3_and_below_producer_epoch,
                    partitions,
                    reply,
                }
            })
            .await,
        )
    };
    let codes: Vec<Vec<Option<i16>>> = requested
        .iter()
        .map(|(t, ps)| {
            ps.iter()
                .map(|p| {
                    if missing(t, *p) {
                        Some(ResponseError::UnknownTopicOrPartition.code())
                    } else if any_missing {
                        Some(ResponseError::OperationNotAttempted.code())
                    } else {
                        None
                    }
                })
                .collect()
        })
        .collect();
    Box::pin(async move {
        let shared = match rx {
            Some(rx) => fenced_for(version, 2, answer(rx).await),
            None => 0,
        };
        let results = requested
            .into_iter()
            .zip(codes)
            .map(|((name, partitions), codes)| {
                let results = partitions
                    .into_iter()
                    .zip(codes)
                    .map(|(p, code)| {
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(p)
                            .with_partition_error_code(code.unwrap_or(shared))
                    })
                    .collect();
                AddPartitionsToTxnTopicResult::default()
                    .with_name(name)
                    .with_results_by_partition(results)
            })
            .collect();
        ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
        )
    })
}
