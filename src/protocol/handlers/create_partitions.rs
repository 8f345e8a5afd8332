//! CreatePartitions v0-v3: grow a topic's partition count (never shrink), with
//! `validate_only` and optional manual assignments of the new partitions' replicas. New partitions start empty with their own actors.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};

use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: CreatePartitionsRequest) -> ResponseFuture {
    let pending: Vec<_> = req
        .topics
        .into_iter()
        .map(|topic| {
            // An empty list (this codec's default) means none, as null does.
            let given = topic.assignments.filter(|list| !list.is_empty());
            let assignments = given.map(|list| {
                list.into_iter()
                    .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                    .collect()
            });
            let rx = ask(&ctx.metadata, |reply| MetadataMsg::CreatePartitions {
                topic: topic.name.0.to_string(),
                count: topic.count,
                assignments,
                validate_only: req.validate_only,
                reply,
            });
            (topic.name, rx)
        })
        .collect();
    Box::pin(async move {
        let mut results = Vec::with_capacity(pending.len());
        for (name, rx) in pending {
            let result = match rx {
                Some(rx) => rx.await.unwrap_or(Err(MetadataError::Unavailable)),
                None => Err(MetadataError::Unavailable),
            };
            let entry = CreatePartitionsTopicResult::default().with_name(name);
            results.push(match result {
                Ok(()) => entry,
                Err(err) => entry
                    .with_error_code(err.code())
                    .with_error_message(Some(text(err.to_string()))),
            });
        }
        ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(results))
    })
}
