//! DescribeTransactions v0: state, timeout, start time, producer id and epoch, and the
//! partitions of each named transactional id; TRANSACTIONAL_ID_NOT_FOUND for an unknown one.

use std::collections::BTreeMap;

use futures::future::join_all;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, ResponseKind,
};
use kafka_protocol::ResponseError;

use super::txns::coordinator;
use super::{text, topic_name};
use crate::actors::txn_messages::TxnMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, req: DescribeTransactionsRequest) -> ResponseFuture {
    let mut asks = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let rx = match coordinator(ctx, id.0.as_str(), false).await {
            Ok(Some(actor)) => Ok(ask(&actor, |reply| TxnMsg::Describe { reply })),
            Ok(None) => Ok(None),
            Err(code) => Err(code),
        };
        asks.push((id, rx));
    }
    Box::pin(async move {
        let states = join_all(asks.into_iter().map(|(id, rx)| async move {
            let entry = TransactionState::default().with_transactional_id(id);
            let meta = match rx {
                Ok(Some(rx)) => rx.await.ok(),
                Ok(None) => None,
                // Another broker coordinates it (or is loading it): as Kafka answers.
                Err(code) => {
                    return entry
                        .with_error_code(code)
                        .with_transaction_state(text(""))
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1)
                }
            };
            let Some(meta) = meta else {
                return entry
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_transaction_state(text(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
            };
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in meta.partitions {
                by_topic.entry(topic).or_default().push(partition);
            }
            entry
                .with_transaction_state(text(meta.state.name()))
                .with_transaction_timeout_ms(meta.timeout_ms)
                .with_transaction_start_time_ms(meta.start_ms)
                .with_producer_id(ProducerId(meta.producer_id))
                .with_producer_epoch(meta.producer_epoch)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(topic_name(&t))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
        }))
        .await;
        ResponseKind::DescribeTransactions(
            DescribeTransactionsResponse::default().with_transaction_states(states),
        )
    })
}
