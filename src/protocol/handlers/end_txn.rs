//! EndTxn v0-v3: commits or aborts the producer's transaction. Answered once every
//! partition of the transaction has its marker on disk and every group its offsets
//! committed or dropped.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ResponseKind};

use super::txns::{answer, fenced_for, send};
use crate::actors::txn_messages::TxnMsg;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub async fn prepare(ctx: &BrokerContext, version: i16, req: EndTxnRequest) -> ResponseFuture {
    let rx = send(ctx, req.transactional_id.0.as_str(), |reply| {
        TxnMsg::EndTxn {
            producer_id: req.producer_id.0,
            producer_epoch: req.producer_epoch,
            commit: req.committed,
            reply,
        }
    })
    .await;
    Box::pin(async move {
        let code = fenced_for(version, 2, answer(rx).await);
        ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(code))
    })
}
