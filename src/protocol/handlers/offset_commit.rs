//! OffsetCommit v2-v9: the group actor writes the offsets to its record file and fsyncs
//! before answering. A partition of an unknown topic gets UNKNOWN_TOPIC_OR_PARTITION, one
//! whose metadata is too long OFFSET_METADATA_TOO_LARGE; the others are still committed.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::{group, metadata_too_large};
use crate::actors::group::GroupMsg;
use crate::coordinator::group_store::CommittedOffset;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, req: OffsetCommitRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let mut offsets = Vec::new();
    // (topic name, [(partition, Some(error) when refused before the group)])
    let mut layout = Vec::new();
    for topic in &req.topics {
        let name = topic.name.0.to_string();
        let route = routes.topic(&name);
        let mut parts = Vec::new();
        for p in &topic.partitions {
            if route.and_then(|r| r.partition(p.partition_index)).is_none() {
                parts.push((
                    p.partition_index,
                    Some(ResponseError::UnknownTopicOrPartition.code()),
                ));
                continue;
            }
            if metadata_too_large(ctx, p.committed_metadata.as_ref()) {
                parts.push((
                    p.partition_index,
                    Some(ResponseError::OffsetMetadataTooLarge.code()),
                ));
                continue;
            }
            parts.push((p.partition_index, None));
            offsets.push((
                (name.clone(), p.partition_index),
                CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                },
            ));
        }
        layout.push((topic.name.clone(), parts));
    }
    let group_id = req.group_id.0.to_string();
    let rx = if group_id.is_empty() {
        None
    } else {
        match group(ctx, &group_id, true).await {
            Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::Commit {
                member_id: req.member_id.to_string(),
                instance_id: req.group_instance_id.map(|s| s.to_string()),
                generation: req.generation_id_or_member_epoch,
                offsets,
                reply,
            }),
            Ok(None) => None,
            Err(error) => Some(crate::actors::Reply::ready(error)),
        }
    };
    Box::pin(async move {
        let code = match rx {
            Some(rx) => rx
                .await
                .unwrap_or(ResponseError::CoordinatorNotAvailable.code()),
            None if group_id.is_empty() => ResponseError::InvalidGroupId.code(),
            None => ResponseError::CoordinatorNotAvailable.code(),
        };
        let topics = layout
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|(index, refused)| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(index)
                            .with_error_code(refused.unwrap_or(code))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
    })
}
