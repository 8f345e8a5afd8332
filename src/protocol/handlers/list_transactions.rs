//! ListTransactions v0-v1: every transactional id this coordinator knows, filtered by
//! state, producer id and (v1) by running longer than `duration_filter` ms. Unknown state
//! names are answered back in `unknown_state_filters`, as Kafka does.

use futures::future::join_all;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseKind, TransactionalId,
};

use super::text;
use crate::actors::txn_messages::{TxnMsg, TxnStatus};
use crate::actors::txn_registry::TxnRegistryMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: ListTransactionsRequest) -> ResponseFuture {
    let rx = ask(&ctx.txns, |reply| TxnRegistryMsg::All { reply });
    Box::pin(async move {
        let known = |s: &str| TxnStatus::ALL.iter().any(|t| t.name() == s);
        let unknown: Vec<_> = req
            .state_filters
            .iter()
            .filter(|s| !known(s.as_str()))
            .cloned()
            .collect();
        let actors = match rx {
            Some(rx) => rx.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let described = join_all(actors.iter().filter_map(|a| {
            let rx = ask(a, |reply| TxnMsg::Describe { reply })?;
            Some(async move { rx.await.ok() })
        }))
        .await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut states: Vec<_> = described
            .into_iter()
            .flatten()
            .filter(|m| {
                req.state_filters.is_empty()
                    || req
                        .state_filters
                        .iter()
                        .any(|s| s.as_str() == m.state.name())
            })
            .filter(|m| {
                req.producer_id_filters.is_empty()
                    || req.producer_id_filters.contains(&ProducerId(m.producer_id))
            })
            .filter(|m| {
                req.duration_filter < 0
                    || (m.start_ms >= 0 && now - m.start_ms > req.duration_filter)
            })
            .collect();
        states.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        let transaction_states = states
            .into_iter()
            .map(|m| {
                TransactionState::default()
                    .with_transactional_id(TransactionalId(text(m.transactional_id)))
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_transaction_state(text(m.state.name()))
            })
            .collect();
        ResponseKind::ListTransactions(
            ListTransactionsResponse::default()
                .with_unknown_state_filters(unknown)
                .with_transaction_states(transaction_states),
        )
    })
}
