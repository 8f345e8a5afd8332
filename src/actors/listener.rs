//! Listener actor: one per listen address.
//!
//! Owns the TCP listener (through its accept task) and the set of live connections, each a
//! Connection actor linked to it. A connection that ends or fails affects only its client.
//! At shutdown it stops accepting and drains every connection's in-flight requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::connection::{Connection, ConnectionArgs, ConnectionMsg};
use crate::protocol::BrokerContext;

pub struct ListenerArgs {
    pub listener: TcpListener,
    pub context: BrokerContext,
}

pub enum ListenerMsg {
    Accepted(TcpStream, SocketAddr),
    /// Stop accepting, let every connection finish what it has in flight, then reply.
    Drain {
        timeout: Duration,
        reply: RpcReplyPort<()>,
    },
}

impl crate::metrics::ActorKind for ListenerMsg {
    const KIND: &'static str = "listener";
}

pub struct ListenerState {
    context: BrokerContext,
    accept: Option<JoinHandle<()>>,
    connections: HashMap<ActorId, ActorRef<ConnectionMsg>>,
}

pub struct Listener;

impl Actor for Listener {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ListenerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = args.listener;
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "Listening for Kafka clients.");
        }
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        if myself
                            .send_message(ListenerMsg::Accepted(stream, peer))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        warn!(%err, "Could not accept a connection.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(ListenerState {
            context: args.context,
            accept: Some(accept),
            connections: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ListenerMsg::Accepted(stream, peer) => {
                if state.accept.is_none() {
                    return Ok(()); // draining: the socket is dropped, so closed
                }
                debug!(%peer, "Accepted a connection.");
                let args = ConnectionArgs {
                    stream,
                    peer,
                    context: state.context.clone(),
                };
                match Actor::spawn_linked(None, Connection, args, myself.get_cell()).await {
                    Ok((conn, _)) => {
                        state.connections.insert(conn.get_id(), conn);
                    }
                    Err(err) => warn!(%peer, %err, "Could not start a connection actor."),
                }
            }
            ListenerMsg::Drain { timeout, reply } => {
                if let Some(accept) = state.accept.take() {
                    accept.abort();
                }
                let drains: Vec<_> = state
                    .connections
                    .values()
                    .map(|c| super::call(c, |reply| ConnectionMsg::Drain { reply }, timeout))
                    .collect();
                let count = drains.len();
                let results = futures::future::join_all(drains).await;
                let late = results.iter().filter(|r| r.is_err()).count();
                info!(
                    connections = count,
                    late, "Stopped accepting; in-flight requests finished."
                );
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.connections.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                warn!(%err, "A connection actor failed; only its client is affected.");
                state.connections.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(accept) = state.accept.take() {
            accept.abort();
        }
        Ok(())
    }
}
