//! Shared by the transaction handlers: finding a transactional id's coordinator, and the
//! fencing error older clients expect.

use kafka_protocol::ResponseError;
use ractor::ActorRef;

use crate::actors::txn_messages::{TxnMsg, TxnResult};
use crate::actors::txn_registry::TxnRegistryMsg;
use crate::protocol::context::ask;
use crate::protocol::BrokerContext;

/// The coordinator of `transactional_id` (created on demand when `create`); None when
/// there is none. Err: the error code when this broker is not its coordinator now
/// (cluster mode: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), or the registry is gone.
pub async fn coordinator(
    ctx: &BrokerContext,
    transactional_id: &str,
    create: bool,
) -> Result<Option<ActorRef<TxnMsg>>, i16> {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let rx = ask(&ctx.txns, |reply| TxnRegistryMsg::Get {
        transactional_id: transactional_id.to_string(),
        create,
        reply,
    })
    .ok_or(unavailable)?;
    rx.await.unwrap_or(Err(unavailable))
}

/// Sends one message to the coordinator of `transactional_id` now (so requests of one
/// connection reach it in order) and returns the answer to await. A transactional id that
/// was never initialised answers INVALID_PRODUCER_ID_MAPPING, as in Kafka.
pub async fn send<T: Send + 'static>(
    ctx: &BrokerContext,
    transactional_id: &str,
    build: impl FnOnce(ractor::RpcReplyPort<TxnResult<T>>) -> TxnMsg,
) -> Result<crate::actors::Reply<TxnResult<T>>, i16> {
    let actor = coordinator(ctx, transactional_id, false)
        .await?
        .ok_or(ResponseError::InvalidProducerIdMapping.code())?;
    ask(&actor, build).ok_or(ResponseError::CoordinatorNotAvailable.code())
}

/// Awaits a coordinator's answer as an error code (0 for success).
pub async fn answer(rx: Result<crate::actors::Reply<TxnResult<()>>, i16>) -> i16 {
    match rx {
        Ok(rx) => match rx.await {
            Ok(Ok(())) => 0,
            Ok(Err(code)) => code,
            Err(_) => ResponseError::CoordinatorNotAvailable.code(),
        },
        Err(code) => code,
    }
}

/// PRODUCER_FENCED exists from the request version named in KIP-588; before it clients
/// know only INVALID_PRODUCER_EPOCH.
pub fn fenced_for(version: i16, first_version_with_fenced: i16, code: i16) -> i16 {
    if code == ResponseError::ProducerFenced.code() && version < first_version_with_fenced {
        ResponseError::InvalidProducerEpoch.code()
    } else {
        code
    }
}
