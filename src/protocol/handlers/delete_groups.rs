//! DeleteGroups v0-v2: an empty group goes, with its committed offsets; a group with
//! members answers NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.

use futures::future::join_all;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::groups::group;
use crate::actors::group::GroupMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, req: DeleteGroupsRequest) -> ResponseFuture {
    let mut asks = Vec::new();
    for id in req.groups_names {
        let rx = match group(ctx, id.0.as_str(), false).await {
            Ok(Some(actor)) => ask(&actor, |reply| GroupMsg::Delete { reply }),
            Ok(None) => None,
            Err(error) => Some(crate::actors::Reply::ready(error)),
        };
        asks.push((id, rx));
    }
    Box::pin(async move {
        let results = join_all(asks.into_iter().map(|(id, rx)| async move {
            let code = match rx {
                Some(rx) => rx
                    .await
                    .unwrap_or(ResponseError::CoordinatorNotAvailable.code()),
                None => ResponseError::GroupIdNotFound.code(),
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code)
        }))
        .await;
        ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
    })
}
