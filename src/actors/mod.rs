//! The actors. Each owns its state alone; everybody else asks it by message.
//! Calls flow one way: connection -> metadata -> partition, never back up.

pub mod broker;
mod children;
pub mod connection;
mod connection_auth;
pub mod group;
mod group_consumer;
mod group_loading;
pub mod group_messages;
mod group_metadata;
mod group_offsets;
mod group_rebalance;
pub mod group_registry;
mod group_txn_offsets;
pub mod listener;
pub mod metadata;
pub mod metadata_messages;
pub mod partition;
pub mod replica_fetcher;
pub mod replica_fetcher_args;
pub mod replica_fetcher_session;
pub mod replica_fetchers;
pub mod routing;
pub mod storage_runtime;
pub mod txn_coordinator;
pub mod txn_loading;
pub mod txn_markers;
pub mod txn_messages;
pub mod txn_registry;
pub mod unavailable_partition;

use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

/// Sends a message that carries a reply port now, and returns the receiver to await later.
/// Sending first keeps the order of messages from one sender; awaiting later lets the
/// replies of many actors be joined. None when the actor has stopped.
pub fn ask<M, T>(actor: &ActorRef<M>, build: impl FnOnce(RpcReplyPort<T>) -> M) -> Option<Reply<T>>
where
    M: ractor::Message + crate::metrics::ActorKind,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let outstanding = crate::metrics::Outstanding::new(M::KIND);
    actor.send_message(build(tx.into())).ok().map(|_| Reply {
        rx,
        outstanding: Some(outstanding),
    })
}

/// An asked actor's answer to await; counted as outstanding until it is dropped.
pub struct Reply<T> {
    rx: oneshot::Receiver<T>,
    #[allow(dead_code)] // held for its Drop
    outstanding: Option<crate::metrics::Outstanding>,
}

impl<T> Reply<T> {
    /// An answer known without asking anyone.
    pub fn ready(value: T) -> Reply<T> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(value);
        Reply {
            rx,
            outstanding: None,
        }
    }
}

impl<T> std::future::Future for Reply<T> {
    type Output = Result<T, oneshot::error::RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("the actor has stopped")]
    Stopped,
    #[error("the actor did not answer within {0:?}")]
    Timeout(Duration),
}

/// Sends and awaits the reply, bounded by `timeout`.
pub async fn call<M, T>(
    actor: &ActorRef<M>,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, CallError>
where
    M: ractor::Message + crate::metrics::ActorKind,
    T: Send + 'static,
{
    let rx = ask(actor, build).ok_or(CallError::Stopped)?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(CallError::Stopped),
        Err(_) => Err(CallError::Timeout(timeout)),
    }
}
