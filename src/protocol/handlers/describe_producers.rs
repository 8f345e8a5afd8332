//! DescribeProducers v0: the producers each partition remembers, with the first offset of
//! any transaction they have open there (what `kafka-transactions.sh describe-producers`
//! shows).

use futures::future::join_all;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId, ResponseKind,
};
use kafka_protocol::ResponseError;

use crate::actors::partition::PartitionMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: DescribeProducersRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let topics: Vec<_> = req
        .topics
        .into_iter()
        .map(|t| {
            let route = routes.topic(t.name.0.as_str()).cloned();
            let asks: Vec<_> = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let rx = route
                        .as_ref()
                        .and_then(|r| r.partition(*p))
                        .and_then(|a| ask(a, |reply| PartitionMsg::Producers { reply }));
                    (*p, rx)
                })
                .collect();
            (t.name, asks)
        })
        .collect();
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, asks) in topics {
            let partitions = join_all(asks.into_iter().map(|(index, rx)| async move {
                let entry = PartitionResponse::default().with_partition_index(index);
                let Some(rx) = rx else {
                    return entry.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                };
                match rx.await {
                    Ok(producers) => entry.with_active_producers(
                        producers
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(p.epoch as i32)
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(p.coordinator_epoch)
                                    .with_current_txn_start_offset(p.current_txn_start_offset)
                            })
                            .collect(),
                    ),
                    Err(_) => entry.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                }
            }))
            .await;
            responses.push(
                TopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
        ResponseKind::DescribeProducers(DescribeProducersResponse::default().with_topics(responses))
    })
}
