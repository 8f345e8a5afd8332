//! OffsetDelete v0: removes committed offsets of an empty group. For a group with members
//! every partition answers GROUP_SUBSCRIBED_TO_TOPIC: the broker does not read the
//! members' subscriptions (their protocol metadata passes through untouched).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::group;
use crate::actors::group::GroupMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, req: OffsetDeleteRequest) -> ResponseFuture {
    let layout: Vec<_> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions
                    .iter()
                    .map(|p| p.partition_index)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let partitions = layout
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.0.to_string(), *p)))
        .collect();
    let rx = match group(ctx, req.group_id.0.as_str(), false).await {
        Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::DeleteOffsets {
            partitions,
            reply,
        }),
        Ok(None) => None,
        Err(error) => Some(crate::actors::Reply::ready((error, Vec::new()))),
    };
    Box::pin(async move {
        let (top, codes) = match rx {
            Some(rx) => rx
                .await
                .unwrap_or((ResponseError::CoordinatorNotAvailable.code(), Vec::new())),
            None => (ResponseError::GroupIdNotFound.code(), Vec::new()),
        };
        let mut codes = codes.into_iter();
        let topics = layout
            .into_iter()
            .map(|(name, ps)| {
                let partitions = ps
                    .into_iter()
                    .map(|p| {
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(codes.next().unwrap_or(0))
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default()
                .with_error_code(top)
                .with_topics(topics),
        )
    })
}
