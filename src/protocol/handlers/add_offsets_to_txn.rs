//! AddOffsetsToTxn v0-v3: adds a consumer group to the producer's transaction, so the
//! offsets it commits there (TxnOffsetCommit) end with the transaction.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};

use super::txns::{answer, fenced_for, send};
use crate::actors::txn_messages::TxnMsg;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> ResponseFuture {
    let rx = send(ctx, req.transactional_id.0.as_str(), |reply| {
        TxnMsg::AddGroup {
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            group_id: req.group_id.0.to_string(),
            reply,
        }
    })
    .await;
    Box::pin(async move {
        let code = fenced_for(version, 2, answer(rx).await);
        ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
    })
}
