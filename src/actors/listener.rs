//! Listener actor: one per listen address.
//!
//! Owns the TCP listener (through its accept task) and the set of live connections, each a
//! Connection actor linked to it. A connection that ends or fails affects only its client.
//! At shutdown it stops accepting and drains every connection's in-flight requests.
//!
//! Connections are capped (`max_connections`, `max_connections_per_ip`): one over a cap is
//! closed at once, so idle clients cannot take every file descriptor. Connections closed
//! unauthenticated (a PLAINTEXT client on a SASL port) are reported here and logged at
//! most once a minute, with their count. When accept itself
//! fails for want of descriptors or memory, the accept task backs off (10 ms doubling to
//! 1 s) and logs once per episode, not once per failure.
//!
//! On an SSL or SASL_SSL listener each accepted socket first does its TLS handshake on a
//! task of its own (so a slow client holds up nobody), bounded by `HANDSHAKE_TIMEOUT` or
//! `connections_max_idle_ms`, whichever is less; handshakes count against the caps.
//! The listener owns its TLS configuration: every `ssl_reload_check_interval_ms` it looks
//! at the keystore files and, when they changed, builds a new one for the connections it
//! accepts from then on (`security/tls_reload.rs`).
//!
//! In cluster mode the accept task starts accepting only once the broker's metadata image
//! has caught up with the controller's, as Kafka enables request processing only then;
//! clients that connect earlier wait in the socket's backlog.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::sockets::{Listener as BoundListener, Stream};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::connection::{ClientStream, Connection, ConnectionArgs, ConnectionMsg};
use crate::protocol::BrokerContext;
use crate::security::tls::ServerTls;
use crate::security::tls_reload::KeystoreFiles;
use crate::security::KafkaPrincipal;

/// The longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ListenerArgs {
    pub listener: BoundListener,
    /// The listener's name and security protocol, handed to each connection.
    pub identity: crate::security::ListenerIdentity,
    pub context: BrokerContext,
    pub limits: ConnectionLimits,
    /// Set on SSL and SASL_SSL listeners: each socket is wrapped in TLS first; with the
    /// files it was read from, as they were before it was.
    pub tls: Option<(ServerTls, KeystoreFiles)>,
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
    Accepted(Stream, SocketAddr),
    /// A TLS handshake ended: the stream and the principal its certificate gives, or
    /// None when it failed or ran out of time (the socket is closed).
    Handshaken {
        peer: SocketAddr,
        outcome: Option<(ClientStream, KafkaPrincipal)>,
    },
    /// Time to look whether the keystore files changed.
    CheckTls,
    /// A connection was closed before it authenticated, for a request other than
    /// ApiVersions and SASL (usually a PLAINTEXT client on a SASL port).
    Unauthenticated {
        peer: SocketAddr,
        reason: String,
    },
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
    tls: Option<ServerTls>,
    /// The files `tls` was read from, and the timer that has them looked at.
    tls_files: Option<(KeystoreFiles, JoinHandle<()>)>,
    /// TLS handshakes under way, counted with the connections against the caps.
    handshaking: usize,
    /// Connections closed over a cap since the last time one was admitted (the warn log
    /// is written for the first of an episode only).
    refused: u64,
    /// Connections closed unauthenticated: when that was last logged at warn, and how
    /// many since (logged at most once per `UNAUTHENTICATED_WARN_EVERY`).
    unauthenticated_warned: Option<Instant>,
    unauthenticated_since: u64,
}

/// The least time between two warnings about connections closed unauthenticated: a client
/// that keeps retrying the wrong port would otherwise write a line per attempt.
const UNAUTHENTICATED_WARN_EVERY: Duration = Duration::from_secs(60);

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
        let clients_wait = args
            .context
            .config
            .cluster_mode()
            .then(|| args.context.routing.clone());
        let accept = tokio::spawn(accept_loop(listener, myself.clone(), clients_wait));
        info!(
            max_connections = args.limits.total,
            max_connections_per_ip = args.limits.per_ip,
            "Connection limits."
        );
        let (tls, tls_files) = match args.tls {
            Some((tls, files)) => {
                let every = args.context.config.tls.ssl_reload_check_interval_ms;
                let timer = (every > 0).then(|| {
                    myself.send_interval(Duration::from_millis(every), || ListenerMsg::CheckTls)
                });
                (Some(tls), timer.map(|t| (files, t)))
            }
            None => (None, None),
        };
        Ok(ListenerState {
            context: args.context,
            identity: args.identity,
            accept: Some(accept),
            connections: HashMap::new(),
            per_ip: HashMap::new(),
            limits: args.limits,
            tls,
            tls_files,
            handshaking: 0,
            refused: 0,
            unauthenticated_warned: None,
            unauthenticated_since: 0,
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
                let open = state.connections.len() + state.handshaking;
                if open >= state.limits.total || from_ip >= state.limits.per_ip {
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
                *state.per_ip.entry(ip).or_insert(0) += 1;
                match &state.tls {
                    Some(tls) => {
                        state.handshaking += 1;
                        let idle =
                            Duration::from_millis(state.context.config.connections_max_idle_ms);
                        let deadline = HANDSHAKE_TIMEOUT.min(idle);
                        tokio::spawn(handshake(tls.clone(), stream, peer, deadline, myself));
                    }
                    None => {
                        let principal = KafkaPrincipal::anonymous();
                        state
                            .start_connection(&myself, stream.into(), peer, principal)
                            .await;
                    }
                }
            }
            ListenerMsg::Handshaken { peer, outcome } => {
                state.handshaking -= 1;
                match outcome {
                    Some((stream, principal)) if state.accept.is_some() => {
                        state
                            .start_connection(&myself, stream, peer, principal)
                            .await;
                    }
                    _ => state.forget_ip(peer.ip()),
                }
            }
            ListenerMsg::CheckTls => state.reload_tls_if_changed(),
            ListenerMsg::Unauthenticated { peer, reason } => state.unauthenticated(peer, &reason),
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
            state.forget_ip(ip);
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
        if let Some((_, timer)) = state.tls_files.take() {
            timer.abort();
        }
        Ok(())
    }
}

impl ListenerState {
    /// One warn line for the first connection closed unauthenticated, then at most one
    /// per `UNAUTHENTICATED_WARN_EVERY`, with the count since the last.
    fn unauthenticated(&mut self, peer: SocketAddr, reason: &str) {
        let now = Instant::now();
        if self
            .unauthenticated_warned
            .is_some_and(|at| now.duration_since(at) < UNAUTHENTICATED_WARN_EVERY)
        {
            self.unauthenticated_since += 1;
            return;
        }
        let listener = &self.identity.name;
        warn!(%listener, %peer, reason, since_last_warning = self.unauthenticated_since,
            "Closed an unauthenticated connection (a PLAINTEXT client on a SASL port?); more are counted and logged at most once a minute.");
        self.unauthenticated_warned = Some(now);
        self.unauthenticated_since = 0;
    }

    /// A new TLS configuration for new connections when its files changed; the one in
    /// use when the new files do not make one (said once per change).
    fn reload_tls_if_changed(&mut self) {
        let Some((files, _)) = &mut self.tls_files else {
            return;
        };
        if !files.changed() {
            return;
        }
        let listener = &self.identity.name;
        match self.context.config.tls.acceptor() {
            Ok(tls) => {
                self.tls = Some(tls);
                info!(%listener, "Reloaded the TLS certificates and keys; new connections get them.");
            }
            Err(err) => warn!(%listener, %err,
                "The TLS certificate or key files changed but do not make a valid configuration; keeping the one in use."),
        }
    }

    /// Starts the connection actor of an admitted client (already counted in `per_ip`).
    async fn start_connection(
        &mut self,
        myself: &ActorRef<ListenerMsg>,
        stream: ClientStream,
        peer: SocketAddr,
        principal: KafkaPrincipal,
    ) {
        let args = ConnectionArgs {
            stream,
            peer,
            context: self.context.clone(),
            listener: self.identity.clone(),
            principal,
            owner: Some(myself.clone()),
        };
        match Actor::spawn_linked(None, Connection, args, myself.get_cell()).await {
            Ok((conn, _)) => {
                self.connections.insert(conn.get_id(), (conn, peer.ip()));
            }
            Err(err) => {
                warn!(%peer, %err, "Could not start a connection actor.");
                self.forget_ip(peer.ip());
            }
        }
    }

    fn forget_ip(&mut self, ip: IpAddr) {
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// One client's TLS handshake, bounded by `deadline`; the outcome goes to the listener.
/// A failure is this client's alone: logged once at warn, its socket closed.
async fn handshake(
    tls: crate::security::tls::ServerTls,
    stream: Stream,
    peer: SocketAddr,
    deadline: Duration,
    listener: ActorRef<ListenerMsg>,
) {
    let _ = stream.set_nodelay(true);
    let outcome = match tokio::time::timeout(deadline, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let principal = match stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
            {
                Some(cert) => tls.principal_of(cert),
                None => Ok(KafkaPrincipal::anonymous()),
            };
            match principal {
                Ok(principal) => {
                    debug!(%peer, %principal, "TLS handshake done.");
                    Some((ClientStream::Other(Box::new(stream)), principal))
                }
                Err(err) => {
                    warn!(%peer, %err, "Closing a TLS connection whose certificate maps to no principal.");
                    None
                }
            }
        }
        Ok(Err(err)) => {
            use std::io::ErrorKind;
            // A client that hung up mid-handshake is its own business; one that spoke
            // something else than TLS or sent a refused certificate is worth a warning.
            if matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe
            ) {
                debug!(%peer, %err, "A client hung up during its TLS handshake.");
            } else {
                warn!(%peer, %err, "Closing a connection whose TLS handshake failed.");
            }
            None
        }
        Err(_) => {
            warn!(%peer, ?deadline, "Closing a connection that did not finish its TLS handshake in time.");
            None
        }
    };
    if let Err(err) = listener.send_message(ListenerMsg::Handshaken { peer, outcome }) {
        // The listener is gone (shutdown): the stream inside is dropped, so closed.
        drop(err);
    }
}

/// Accepts until the listener actor stops. Running out of descriptors (or kernel memory)
/// is an episode: warn once, back off 10 ms doubling to 1 s so the loop does not spin,
/// and say at info once that accepts succeed again. While the pressure lasts, accepts
/// alternate between a success (a descriptor was freed) and a failure; the episode ends
/// only after `QUIET` without a failure, so those do not log again.
async fn accept_loop(
    listener: BoundListener,
    listener_actor: ActorRef<ListenerMsg>,
    clients_wait: Option<crate::actors::routing::RoutingSnapshot>,
) {
    if let Some(mut routing) = clients_wait {
        let caught_up = |t: &std::sync::Arc<crate::actors::routing::RoutingTable>| {
            t.cluster.as_ref().is_some_and(|c| c.caught_up)
        };
        if !caught_up(&routing.borrow()) {
            info!("Waiting for the metadata image to catch up with the controller's before accepting clients.");
            if routing.wait_for(caught_up).await.is_err() {
                return;
            }
            info!("The metadata image caught up; accepting clients.");
        }
    }
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
