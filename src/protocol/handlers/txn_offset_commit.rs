//! TxnOffsetCommit v0-v3: offsets committed inside a transaction. The group coordinator
//! holds them pending until the transaction coordinator ends the transaction; from v3 the
//! member and generation are checked like an OffsetCommit's. As in Kafka, a partition of
//! an unknown topic is UNKNOWN_TOPIC_OR_PARTITION and metadata longer than
//! offset_metadata_max_bytes OFFSET_METADATA_TOO_LARGE, for that partition only.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::groups::{group, metadata_too_large};
use crate::actors::group::GroupMsg;
use crate::coordinator::group_store::CommittedOffset;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, req: TxnOffsetCommitRequest) -> ResponseFuture {
    // Per partition: Some(error) when refused here, before the group sees it.
    let routes = ctx.routes();
    let mut refused = Vec::with_capacity(req.topics.len());
    let mut offsets = Vec::new();
    for t in &req.topics {
        let route = routes.topic(t.name.0.as_str());
        let mut codes = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            if route.and_then(|r| r.partition(p.partition_index)).is_none() {
                codes.push(Some(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            }
            if metadata_too_large(ctx, p.committed_metadata.as_ref()) {
                codes.push(Some(ResponseError::OffsetMetadataTooLarge.code()));
                continue;
            }
            codes.push(None);
            offsets.push((
                (t.name.0.to_string(), p.partition_index),
                CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                },
            ));
        }
        refused.push(codes);
    }
    let rx = match group(ctx, req.group_id.0.as_str(), true).await {
        Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::TxnCommit {
            producer_id: req.producer_id.0,
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: req.generation_id,
            offsets,
            reply,
        }),
        Ok(None) => None,
        Err(error) => Some(crate::actors::Reply::ready(error)),
    };
    Box::pin(async move {
        let code = match rx {
            Some(rx) => rx
                .await
                .unwrap_or(ResponseError::CoordinatorNotAvailable.code()),
            None => ResponseError::CoordinatorNotAvailable.code(),
        };
        let topics = req
            .topics
            .into_iter()
            .zip(refused)
            .map(|(t, codes)| {
                let partitions = t
                    .partitions
                    .iter()
                    .zip(codes)
                    .map(|(p, refused)| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(refused.unwrap_or(code))
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics))
    })
}
