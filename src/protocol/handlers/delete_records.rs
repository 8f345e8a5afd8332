//! DeleteRecords v0-v2: each partition's log start offset moves to the given offset (-1:
//! the high watermark); the answer is the new low watermark. Segments wholly below it are
//! deleted. An offset above the high watermark gets OFFSET_OUT_OF_RANGE.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use crate::actors::partition::PartitionMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: DeleteRecordsRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let topics: Vec<_> = req
        .topics
        .into_iter()
        .map(|topic| {
            let route = routes.topic(topic.name.0.as_str()).cloned();
            let pending: Vec<_> = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let rx = route
                        .as_ref()
                        .and_then(|r| r.partition(p.partition_index))
                        .and_then(|actor| {
                            ask(actor, |reply| PartitionMsg::DeleteRecords {
                                offset: p.offset,
                                reply,
                            })
                        });
                    (p.partition_index, rx)
                })
                .collect();
            (topic.name, pending)
        })
        .collect();
    Box::pin(async move {
        let mut results = Vec::with_capacity(topics.len());
        for (name, pending) in topics {
            let mut partitions = Vec::with_capacity(pending.len());
            for (index, rx) in pending {
                let entry = DeleteRecordsPartitionResult::default().with_partition_index(index);
                partitions.push(match rx {
                    None => entry
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_low_watermark(-1),
                    Some(rx) => match rx.await {
                        Ok(Ok(low)) => entry.with_low_watermark(low),
                        Ok(Err(err)) => entry.with_error_code(err.code()).with_low_watermark(-1),
                        Err(_) => entry
                            .with_error_code(ResponseError::NotLeaderOrFollower.code())
                            .with_low_watermark(-1),
                    },
                });
            }
            results.push(
                DeleteRecordsTopicResult::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
        ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(results))
    })
}
