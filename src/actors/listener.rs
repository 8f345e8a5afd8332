//! Listener actor: one per listen address.
//!
//! Owns the TCP listener (through its accept task) and the set of live connections, each a
//! Connection actor linked to it. A connection that ends or fails affects only its client.
//! At shutdown it stops accepting and drains every connection's in-flight requests.
//!
//! Connections are capped (`max_connections`, `max_connections_per_ip`): one over a cap is
//! closed at once, so idle clients cannot take every file descriptor. When accept itself
//! fails for want of descriptors or memory, the accept task backs off (10 ms doubling to
//! 1 s) and logs once per episode, not once per failure.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::connection::{Connection, ConnectionArgs, ConnectionMsg};
use crate::protocol::BrokerContext;

pub struct ListenerArgs {
    pub listener: TcpListener,
    /// The listener's name and security protocol, handed to each connection.
    pub identity: crate::security::ListenerIdentity,
    pub context: BrokerContext,
    pub limits: ConnectionLimits,
}

/// How many connections may be open at once, in all and from one IP address.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub total: usize,
    pub per_ip: usize,
}

impl ConnectionLimits {
    /// The configured caps; where unset, what the open-file limit `fds` leaves room for.
    pub fn new(config: &crate::config::Config, fds: Option<u64>) -> ConnectionLimits {
        let derived = crate::fd_limit::connections_for(fds.unwrap_or(1024));
        let total = config.max_connections.unwrap_or(derived);
        ConnectionLimits {
            total,
            per_ip: config.max_connections_per_ip.unwrap_or(total).min(total),
        }
    }
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
    identity: crate::security::ListenerIdentity,
    accept: Option<JoinHandle<()>>,
    connections: HashMap<ActorId, (ActorRef<ConnectionMsg>, IpAddr)>,
    per_ip: HashMap<IpAddr, usize>,
    limits: ConnectionLimits,
    /// Connections closed over a cap since the last time one was admitted (the warn log
    /// is written for the first of an episode only).
    refused: u64,
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
        let accept = tokio::spawn(accept_loop(listener, myself));
        info!(
            max_connections = args.limits.total,
            max_connections_per_ip = args.limits.per_ip,
            "Connection limits."
        );
        Ok(ListenerState {
            context: args.context,
            identity: args.identity,
            accept: Some(accept),
            connections: HashMap::new(),
            per_ip: HashMap::new(),
            limits: args.limits,
            refused: 0,
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
                let ip = peer.ip();
                let from_ip = state.per_ip.get(&ip).copied().unwrap_or(0);
                if state.connections.len() >= state.limits.total || from_ip >= state.limits.per_ip {
                    // Closed at once (the socket is dropped): the client sees EOF.
                    state.refused += 1;
                    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
                    if state.refused == 1 {
                        warn!(%peer, open = state.connections.len(), from_ip,
                            max_connections = state.limits.total,
                            max_connections_per_ip = state.limits.per_ip,
                            "Closing new connections over the connection limit.");
                    }
                    return Ok(());
                }
                if state.refused > 0 {
                    info!(
                        refused = state.refused,
                        "Admitting connections again after closing some over the limit."
                    );
                    state.refused = 0;
                }
                debug!(%peer, "Accepted a connection.");
                let args = ConnectionArgs {
                    stream,
                    peer,
                    context: state.context.clone(),
                    listener: state.identity.clone(),
                };
                match Actor::spawn_linked(None, Connection, args, myself.get_cell()).await {
                    Ok((conn, _)) => {
                        state.connections.insert(conn.get_id(), (conn, ip));
                        *state.per_ip.entry(ip).or_insert(0) += 1;
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
                    .map(|(c, _)| super::call(c, |reply| ConnectionMsg::Drain { reply }, timeout))
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
        let id = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => cell.get_id(),
            SupervisionEvent::ActorFailed(cell, err) => {
                warn!(%err, "A connection actor failed; only its client is affected.");
                cell.get_id()
            }
            _ => return Ok(()),
        };
        if let Some((_, ip)) = state.connections.remove(&id) {
            if let Some(count) = state.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    state.per_ip.remove(&ip);
                }
            }
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

/// Accepts until the listener actor stops. Running out of descriptors (or kernel memory)
/// is an episode: warn once, back off 10 ms doubling to 1 s so the loop does not spin,
/// and say at info once that accepts succeed again. While the pressure lasts, accepts
/// alternate between a success (a descriptor was freed) and a failure; the episode ends
/// only after `QUIET` without a failure, so those do not log again.
async fn accept_loop(listener: TcpListener, listener_actor: ActorRef<ListenerMsg>) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(10);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    const QUIET: Duration = Duration::from_secs(10);
    let mut backoff = FIRST_BACKOFF;
    let mut episode: Option<Episode> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = FIRST_BACKOFF;
                if let Some(e) = episode.as_mut().filter(|e| !e.recovered) {
                    e.recovered = true;
                    info!(
                        failures = e.failures,
                        millis = e.started.elapsed().as_millis() as u64,
                        "Accepting connections again."
                    );
                }
                if listener_actor
                    .send_message(ListenerMsg::Accepted(stream, peer))
                    .is_err()
                {
                    break;
                }
            }
            Err(err) if is_resource_shortage(&err) => {
                let now = Instant::now();
                match episode.as_mut().filter(|e| now - e.last_failure < QUIET) {
                    Some(e) => {
                        e.failures += 1;
                        e.last_failure = now;
                        debug!(%err, "Cannot accept a connection yet.");
                    }
                    None => {
                        warn!(%err, "Cannot accept connections: out of file descriptors or memory; backing off until some are free.");
                        episode = Some(Episode {
                            started: now,
                            last_failure: now,
                            failures: 1,
                            recovered: false,
                        });
                    }
                }
                metrics::counter!(crate::metrics::ACCEPT_FAILURES).increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            // A connection reset before it was accepted and the like: that client only.
            Err(err) => debug!(%err, "Could not accept a connection."),
        }
    }
}

/// A stretch of accept failures for want of resources.
struct Episode {
    started: Instant,
    last_failure: Instant,
    failures: u64,
    /// "Accepting again" was logged.
    recovered: bool,
}

fn is_resource_shortage(err: &std::io::Error) -> bool {
    crate::storage::io::is_out_of_files(err)
        || matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM))
}
