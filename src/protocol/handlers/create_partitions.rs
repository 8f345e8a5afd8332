//! CreatePartitions v0-v3: grow a topic's partition count (never shrink), with
//! `validate_only`. New partitions start empty with their own actors.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};

use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: CreatePartitionsRequest) -> ResponseFuture {
    let node = ctx.config.node_id;
    let pending: Vec<_> = req
        .topics
        .into_iter()
        .map(|topic| {
            let bad_assignment = topic.assignments.as_ref().is_some_and(|list| {
                list.iter()
                    .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != node)
            });
            let rx = if bad_assignment {
                None
            } else {
                ask(&ctx.metadata, |reply| MetadataMsg::CreatePartitions {
                    topic: topic.name.0.to_string(),
                    count: topic.count,
                    validate_only: req.validate_only,
                    reply,
                })
            };
            (topic.name, bad_assignment, rx)
        })
        .collect();
    Box::pin(async move {
        let mut results = Vec::with_capacity(pending.len());
        for (name, bad_assignment, rx) in pending {
            let result = if bad_assignment {
                Err(MetadataError::InvalidReplicaAssignment(
                    "new partitions must be assigned to this one broker".into(),
                ))
            } else {
                match rx {
                    Some(rx) => rx.await.unwrap_or(Err(MetadataError::Unavailable)),
                    None => Err(MetadataError::Unavailable),
                }
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
