//! InitProducerId v0-v5. Without a transactional id: a producer id unique across restarts
//! (from durable blocks owned by the metadata actor) with epoch 0, a new one on every call
//! as in Kafka. With one: the transaction coordinator of that id bumps its epoch, aborting
//! any transaction the previous incarnation left open (and fencing it); from v3 the client
//! may name the id and epoch it holds (KIP-360).

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use kafka_protocol::ResponseError;

use super::txns::{coordinator, fenced_for};
use crate::actors::metadata::MetadataMsg;
use crate::actors::txn_messages::TxnMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

fn refused(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

fn granted((id, epoch): (i64, i16)) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
}

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: InitProducerIdRequest,
) -> ResponseFuture {
    let Some(transactional_id) = req.transactional_id.map(|t| t.0.to_string()) else {
        let rx = ask(&ctx.metadata, |reply| MetadataMsg::AllocateProducerId {
            reply,
        });
        return Box::pin(async move {
            let response = match rx {
                None => refused(ResponseError::CoordinatorNotAvailable.code()),
                Some(rx) => match rx.await {
                    Ok(Ok(id)) => granted((id, 0)),
                    Ok(Err(err)) => refused(err.code()),
                    Err(_) => refused(ResponseError::CoordinatorNotAvailable.code()),
                },
            };
            ResponseKind::InitProducerId(response)
        });
    };
    if transactional_id.is_empty() {
        let response = refused(ResponseError::InvalidRequest.code());
        return Box::pin(async move { ResponseKind::InitProducerId(response) });
    }
    let expected =
        (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let rx = match coordinator(ctx, &transactional_id, true).await {
        Ok(Some(actor)) => ask(&actor, |reply| TxnMsg::InitProducerId {
            timeout_ms: req.transaction_timeout_ms,
            expected,
            reply,
        })
        .ok_or(ResponseError::CoordinatorNotAvailable.code()),
        Ok(None) => Err(ResponseError::CoordinatorNotAvailable.code()),
        Err(code) => Err(code),
    };
    Box::pin(async move {
        let response = match rx {
            Err(code) => refused(code),
            Ok(rx) => match rx.await {
                Ok(Ok(granted_id)) => granted(granted_id),
                Ok(Err(code)) => refused(fenced_for(version, 4, code)),
                Err(_) => refused(ResponseError::CoordinatorNotAvailable.code()),
            },
        };
        ResponseKind::InitProducerId(response)
    })
}
