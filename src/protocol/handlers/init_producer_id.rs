//! InitProducerId v0-v5 for idempotent producers: a producer id unique across restarts
//! (from durable blocks owned by the metadata actor) with epoch 0. As in Kafka, a
//! non-transactional producer gets a new id on every call. Transactional ids are not
//! served yet (there is no transaction coordinator): such a request gets NOT_COORDINATOR.

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use kafka_protocol::ResponseError;

use crate::actors::metadata::MetadataMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: InitProducerIdRequest) -> ResponseFuture {
    let transactional = req.transactional_id.is_some();
    let rx = if transactional {
        None
    } else {
        ask(&ctx.metadata, |reply| MetadataMsg::AllocateProducerId {
            reply,
        })
    };
    Box::pin(async move {
        let refused = |code: i16| {
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        let response = match rx {
            None if transactional => refused(ResponseError::NotCoordinator.code()),
            None => refused(ResponseError::CoordinatorNotAvailable.code()),
            Some(rx) => match rx.await {
                Ok(Ok(id)) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(0),
                Ok(Err(err)) => refused(err.code()),
                Err(_) => refused(ResponseError::CoordinatorNotAvailable.code()),
            },
        };
        ResponseKind::InitProducerId(response)
    })
}
