//! Connection actor: one per TCP connection.
//!
//! Owns the socket's write half and the order of in-flight requests. A reading task owned
//! by the actor decodes frames, prepares each request in arrival order (so appends reach
//! partitions in the order the client sent them) and runs its reply future concurrently;
//! the actor writes the finished responses strictly in request order. At most
//! `max_in_flight_per_connection` requests, and `max_connection_buffered_bytes` bytes of
//! them, are read ahead of their responses, so a client that stops reading holds only its
//! own connection's bounded memory. A connection that sends no whole request for
//! `connections_max_idle_ms` is closed; a slow sender holds up only its own connection.
//!
//! A client over a quota (see `crate::quota::enforce`) is answered at once with
//! `throttle_time_ms`, and the reading task then takes no request of that connection
//! until the throttle has passed (Kafka's channel mute, KIP-219).
//!
//! Bad bytes (negative or oversized length, unknown API key or version, a body that does
//! not decode) close this one connection with a warn log; the broker serves on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::connection_auth::{PreAuth, SaslSession};

use crate::protocol::context::ClientInfo;
use crate::protocol::dispatch;
use crate::protocol::frame::{self, FrameError};
use crate::protocol::handlers::api_versions;
use crate::protocol::versions;
use crate::protocol::BrokerContext;
use crate::quota::enforce::{Applicable, Timed};

pub struct ConnectionArgs {
    pub stream: ClientStream,
    pub peer: SocketAddr,
    pub context: BrokerContext,
    /// The listener it came in on; its protocol says whether SASL comes first.
    pub listener: crate::security::ListenerIdentity,
    /// Who the client is as far as the transport tells (a TLS client certificate), else
    /// User:ANONYMOUS.
    pub principal: crate::security::KafkaPrincipal,
    /// The listener that accepted it, told when the connection is closed unauthenticated
    /// (it rate-limits that warning); None: the warning is logged here, each time.
    pub owner: Option<ActorRef<super::listener::ListenerMsg>>,
}

/// A byte stream a connection serves: any that reads and writes (TLS over TCP), with
/// plain TCP kept apart so its halves split without a lock.
pub enum ClientStream {
    Tcp(TcpStream),
    Other(Box<dyn ByteStream>),
}

pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

impl ClientStream {
    fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            ClientStream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
            ClientStream::Other(stream) => {
                let (read, write) = tokio::io::split(stream);
                (Box::new(read), Box::new(write))
            }
        }
    }
}

impl From<TcpStream> for ClientStream {
    fn from(stream: TcpStream) -> Self {
        ClientStream::Tcp(stream)
    }
}

impl From<crate::sockets::Stream> for ClientStream {
    fn from(stream: crate::sockets::Stream) -> Self {
        match stream {
            crate::sockets::Stream::Tcp(stream) => ClientStream::Tcp(stream),
            crate::sockets::Stream::Simulated(stream) => ClientStream::Other(Box::new(stream)),
        }
    }
}

pub enum ConnectionMsg {
    /// The response to request number `seq`; None when the client expects none (acks=0).
    Response {
        seq: u64,
        frame: Option<Bytes>,
        permit: Admission,
    },
    /// A response could not be encoded: the client would wait for it forever, so the
    /// connection is closed instead (the client reconnects and retries).
    EncodeFailed,
    /// The reading task ended after request number `last_seq` (EOF, bad frame, drain).
    ReadingEnded { last_seq: u64 },
    /// Stop reading new requests, finish the ones in flight, then stop.
    Drain { reply: RpcReplyPort<()> },
}

impl crate::metrics::ActorKind for ConnectionMsg {
    const KIND: &'static str = "connection";
}

pub struct ConnectionState {
    peer: SocketAddr,
    writer: BufWriter<WriteHalf>,
    reader: ReaderGuard,
    /// Tells the reading task to stop taking new requests (drain at shutdown).
    stop_reading: watch::Sender<bool>,
    next_to_write: u64,
    ready: BTreeMap<u64, Option<Bytes>>,
    /// Set when no more requests will come: the last request number read.
    last_seq: Option<u64>,
    drained: Vec<RpcReplyPort<()>>,
}

pub struct Connection;

impl Actor for Connection {
    type Msg = ConnectionMsg;
    type State = ConnectionState;
    type Arguments = ConnectionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ConnectionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        if let ClientStream::Tcp(stream) = &args.stream {
            let _ = stream.set_nodelay(true);
        }
        metrics::counter!(crate::metrics::CONNECTIONS_OPENED).increment(1);
        let (read, write) = args.stream.split();
        let config = &args.context.config;
        let budget = Budget {
            requests: Arc::new(Semaphore::new(config.max_in_flight_per_connection)),
            bytes: Arc::new(Semaphore::new(config.max_connection_buffered_bytes)),
            max_bytes: config.max_connection_buffered_bytes,
        };
        let (stop_reading, stop) = watch::channel(false);
        let reader = ReaderGuard::new(tokio::spawn(read_requests(
            read,
            args.peer,
            Identity {
                listener: args.listener,
                principal: args.principal,
                owner: args.owner,
            },
            args.context,
            myself,
            budget,
            stop,
        )));
        Ok(ConnectionState {
            peer: args.peer,
            writer: BufWriter::with_capacity(64 * 1024, write),
            reader,
            stop_reading,
            next_to_write: 1,
            ready: BTreeMap::new(),
            last_seq: None,
            drained: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConnectionMsg::Response { seq, frame, permit } => {
                state.ready.insert(seq, frame);
                if let Err(err) = state.write_ready().await {
                    debug!(peer = %state.peer, %err, "Could not write to a client; closing its connection.");
                    state.reader.abort();
                    myself.stop(None);
                    return Ok(());
                }
                drop(permit);
            }
            ConnectionMsg::EncodeFailed => {
                myself.stop(Some("a response could not be encoded".into()));
                return Ok(());
            }
            ConnectionMsg::ReadingEnded { last_seq } => {
                state.last_seq = Some(last_seq);
            }
            ConnectionMsg::Drain { reply } => {
                // The reader answers with ReadingEnded, naming the last request it took.
                let _ = state.stop_reading.send(true);
                state.drained.push(reply);
            }
        }
        if let Some(last) = state.last_seq {
            if state.next_to_write > last {
                for reply in state.drained.drain(..) {
                    let _ = reply.send(());
                }
                myself.stop(None);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.reader.abort();
        let _ = state.writer.shutdown().await;
        for reply in state.drained.drain(..) {
            let _ = reply.send(());
        }
        debug!(peer = %state.peer, "Connection closed.");
        Ok(())
    }
}

/// The reading task, aborted when the connection's state is dropped: a connection actor
/// that panics or is killed skips `post_stop`, and its reader must not go on executing
/// requests whose responses go nowhere. Also counts the connection in the gauge.
struct ReaderGuard(JoinHandle<()>);

impl ReaderGuard {
    fn new(reader: JoinHandle<()>) -> ReaderGuard {
        metrics::gauge!(crate::metrics::CONNECTIONS).increment(1.0);
        ReaderGuard(reader)
    }

    fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.abort();
        metrics::gauge!(crate::metrics::CONNECTIONS).decrement(1.0);
    }
}

impl ConnectionState {
    /// Writes every response that is next in request order, then flushes once.
    async fn write_ready(&mut self) -> std::io::Result<()> {
        let mut wrote = 0usize;
        while let Some(frame) = self.ready.remove(&self.next_to_write) {
            if let Some(frame) = frame {
                self.writer.write_all(&frame).await?;
                wrote += frame.len();
            }
            self.next_to_write += 1;
        }
        if wrote > 0 {
            metrics::counter!(crate::metrics::BYTES_OUT).increment(wrote as u64);
            self.writer.flush().await?;
        }
        Ok(())
    }
}

/// Who the client is: the listener it came in on and its principal.
struct Identity {
    listener: crate::security::ListenerIdentity,
    principal: crate::security::KafkaPrincipal,
    owner: Option<ActorRef<super::listener::ListenerMsg>>,
}

/// The reading task: frames in, prepared requests out, in arrival order.
async fn read_requests(
    mut read: ReadHalf,
    peer: SocketAddr,
    identity: Identity,
    ctx: BrokerContext,
    connection: ActorRef<ConnectionMsg>,
    budget: Budget,
    mut stop: watch::Receiver<bool>,
) {
    let mut identity = identity;
    let mut seq = 0u64;
    // Until when the connection is throttled: set by response tasks, read here.
    let (mute, muted) = crate::quota::mute::channel();
    let idle = std::time::Duration::from_millis(ctx.config.connections_max_idle_ms);
    // On a SASL listener: the exchange, then the session (see `connection_auth`).
    let mut sasl = identity
        .listener
        .protocol
        .uses_sasl()
        .then(|| SaslSession::new(&ctx));
    loop {
        // During an exchange a frame is bounded by sasl_server_max_receive_size.
        let (max, raw) = match sasl.as_ref().and_then(SaslSession::exchange) {
            Some(server) => (
                ctx.config
                    .sasl_server_max_receive_size
                    .min(ctx.config.max_request_bytes),
                server.expects_raw_token(),
            ),
            None => (ctx.config.max_request_bytes, false),
        };
        if !muted.wait(&mut stop).await {
            break;
        }
        let next = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = tokio::time::timeout(idle, read_frame(&mut read, max, raw, &budget)) => next,
        };
        let (body, permit) = match next {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break, // EOF or reset: the client is gone.
            Ok(Err(err)) => {
                warn!(%peer, %err, "Closing a connection that sent a bad frame.");
                break;
            }
            Err(_) => {
                debug!(%peer, ?idle, "Closing a connection idle for longer than connections_max_idle_ms.");
                break;
            }
        };
        seq += 1;
        metrics::counter!(crate::metrics::BYTES_IN).increment(body.len() as u64 + 4);
        // A frame that arrived while the connection was throttled waits it out.
        if !muted.wait(&mut stop).await {
            seq -= 1;
            break;
        }
        let read_at = std::time::Instant::now();
        let body = match &mut sasl {
            None => body,
            Some(session) => match session.frame(&ctx, body).await {
                PreAuth::Serve(body) => body,
                PreAuth::Answer(frame) => {
                    let frame = Some(frame);
                    let _ = connection.send_message(ConnectionMsg::Response { seq, frame, permit });
                    continue;
                }
                PreAuth::Authenticated(frame, authenticated) => {
                    debug!(%peer, principal = %authenticated, "SASL authentication succeeded.");
                    identity.principal = authenticated;
                    let frame = Some(frame);
                    let _ = connection.send_message(ConnectionMsg::Response { seq, frame, permit });
                    continue;
                }
                PreAuth::Fail(frame) => {
                    metrics::counter!(crate::metrics::FAILED_AUTHENTICATIONS).increment(1);
                    // connection.failed.authentication.delay.ms: slows password guessing.
                    let delay = ctx.config.connection_failed_authentication_delay_ms;
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    match frame {
                        Some(frame) => {
                            let frame = Some(frame);
                            let _ = connection.send_message(ConnectionMsg::Response {
                                seq,
                                frame,
                                permit,
                            });
                        }
                        None => seq -= 1,
                    }
                    break;
                }
                PreAuth::Close(reason) => {
                    metrics::counter!(crate::metrics::FAILED_AUTHENTICATIONS).increment(1);
                    debug!(%peer, %reason, "Closing an unauthenticated connection.");
                    match &identity.owner {
                        Some(listener) => {
                            let _ = listener.send_message(
                                super::listener::ListenerMsg::Unauthenticated { peer, reason },
                            );
                        }
                        None => warn!(%peer, %reason, "Closing an unauthenticated connection."),
                    }
                    seq -= 1;
                    break;
                }
                PreAuth::Expired => {
                    metrics::counter!(crate::metrics::EXPIRED_CONNECTIONS_KILLED).increment(1);
                    debug!(%peer, "Closing a connection whose SASL session ended (connections_max_reauth_ms) without re-authentication.");
                    seq -= 1;
                    break;
                }
            },
        };
        // The time spent preparing, apart from what it waited for, counts as handling.
        let preparing = Timed::new(
            Box::pin(prepare(&ctx, body, peer, &identity)),
            Duration::ZERO,
        );
        let (prepared, prepare_time) = preparing.await;
        match prepared {
            Ok(Served {
                api,
                version,
                correlation_id,
                prepared,
                quota,
                request_bytes,
            }) => {
                let connection = connection.clone();
                let quota = match quota {
                    Some(applicable) => {
                        let throttled = applicable
                            .record_request_bytes(&ctx.quotas, request_bytes)
                            .await;
                        mute.mute_for(throttled);
                        Some((applicable, throttled, ctx.quotas.clone(), mute.clone()))
                    }
                    None => None,
                };
                tokio::spawn(async move {
                    let handled = Timed::new(prepared.response, prepare_time);
                    let (mut response, handling) = handled.await;
                    if let Some((applicable, throttled, manager, mute)) = quota {
                        let throttle = applicable
                            .enforce(&manager, throttled, handling, &mut response)
                            .await;
                        if throttle > Duration::ZERO {
                            debug!(%peer, ?throttle, "Throttling a client over its quota.");
                        }
                        mute.mute_for(throttle);
                    }
                    let name = api_name(api);
                    metrics::counter!(crate::metrics::REQUESTS, "api" => name).increment(1);
                    metrics::histogram!(crate::metrics::REQUEST_SECONDS, "api" => name)
                        .record(read_at.elapsed().as_secs_f64());
                    let frame = if prepared.expects_response {
                        match frame::encode_response(api, version, correlation_id, &response) {
                            Ok(frame) => Some(frame),
                            Err(err) => {
                                warn!(%peer, api = ?api, version, %err, "Closing a connection: its response could not be encoded.");
                                let _ = connection.send_message(ConnectionMsg::EncodeFailed);
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    let _ = connection.send_message(ConnectionMsg::Response { seq, frame, permit });
                });
            }
            Err(Refusal::Answer(frame)) => {
                let _ = connection.send_message(ConnectionMsg::Response {
                    seq,
                    frame: Some(frame),
                    permit,
                });
            }
            Err(Refusal::Close(err)) => {
                warn!(%peer, %err, "Closing a connection that sent a request the broker cannot serve.");
                seq -= 1;
                break;
            }
        }
    }
    let _ = connection.send_message(ConnectionMsg::ReadingEnded { last_seq: seq });
}

/// The API's name for metric labels ("Produce", "Fetch", ...), made once per API and
/// found by its key.
fn api_name(api: ApiKey) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut names = Vec::new();
        for key in ApiKey::iter() {
            let index = key as usize;
            if names.len() <= index {
                names.resize(index + 1, "Unknown");
            }
            names[index] = Box::leak(format!("{key:?}").into_boxed_str());
        }
        names
    });
    names.get(api as usize).copied().unwrap_or("Unknown")
}

/// What one connection may read ahead of its responses.
struct Budget {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

/// A request's share of its connection's budget, given back when its response is written.
pub struct Admission {
    _request: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// How much more of a frame body is allocated at a time while it arrives.
const READ_CHUNK: usize = 64 * 1024;

/// One whole frame body, with its admission held until its response is written.
/// Ok(None) when the client closed the connection.
/// `raw`: a SASL token after a v0 handshake, which has no request header to be long enough
/// for.
async fn read_frame(
    read: &mut ReadHalf,
    max: usize,
    raw: bool,
    budget: &Budget,
) -> Result<Option<(Bytes, Admission)>, FrameError> {
    let mut prefix = [0u8; 4];
    if read.read_exact(&mut prefix).await.is_err() {
        return Ok(None);
    }
    let length = match frame::check_length(i32::from_be_bytes(prefix), max) {
        Err(FrameError::TooShort(length)) if raw => length,
        checked => checked?,
    };
    let Ok(request) = budget.requests.clone().acquire_owned().await else {
        return Ok(None);
    };
    // A frame larger than the whole budget takes all of it (so it can still be served).
    let share = length.min(budget.max_bytes).max(1) as u32;
    let Ok(bytes) = budget.bytes.clone().acquire_many_owned(share).await else {
        return Ok(None);
    };
    // Memory follows the bytes that arrive, not the length the client claims: a prefix
    // of 100 MB followed by silence costs one chunk, not 100 MB.
    let mut body = BytesMut::with_capacity(length.min(READ_CHUNK));
    while body.len() < length {
        body.reserve((length - body.len()).min(READ_CHUNK));
        let want = length - body.len();
        match (&mut *read).take(want as u64).read_buf(&mut body).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
    let admission = Admission {
        _request: request,
        _bytes: bytes,
    };
    Ok(Some((body.freeze(), admission)))
}

/// A request decoded and prepared: its response future, the quotas it is under and
/// its frame's size.
struct Served {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    prepared: dispatch::Prepared,
    quota: Option<Applicable>,
    request_bytes: usize,
}

enum Refusal {
    /// Answer with this frame and keep reading (ApiVersions newer than supported).
    Answer(Bytes),
    Close(FrameError),
}

async fn prepare(
    ctx: &BrokerContext,
    body: Bytes,
    peer: SocketAddr,
    identity: &Identity,
) -> Result<Served, Refusal> {
    let request_bytes = body.len();
    let prefix = frame::peek_prefix(&body).map_err(Refusal::Close)?;
    let api = ApiKey::try_from(prefix.api_key)
        .map_err(|_| Refusal::Close(FrameError::UnknownApiKey(prefix.api_key)))?;
    let version = prefix.api_version;
    if !versions::is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: a v0 answer with UNSUPPORTED_VERSION and our ranges.
            let response = ResponseKind::ApiVersions(api_versions::unsupported_version());
            return frame::encode_response(api, 0, prefix.correlation_id, &response)
                .map(Refusal::Answer)
                .map_err(Refusal::Close)
                .and_then(Err);
        }
        return Err(Refusal::Close(FrameError::UnsupportedVersion {
            api,
            version,
        }));
    }
    let (header, mut request) =
        frame::decode_request(api, version, body).map_err(Refusal::Close)?;
    debug!(api = ?api, version, correlation_id = header.correlation_id, "Request.");
    let client = ClientInfo {
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        host: format!("/{}", peer.ip()),
        principal: identity.principal.clone(),
        listener: identity.listener.name.clone(),
    };
    let quotas = ctx.routing.borrow().client_quotas.clone();
    let name = &identity.principal.name;
    let quota = Applicable::find(&quotas, &request, name, &client.client_id);
    if let Some(applicable) = &quota {
        applicable.cap_fetch(&mut request, &ctx.quotas);
    }
    let prepared = dispatch::prepare(ctx, version, request, &client)
        .await
        .ok_or(Refusal::Close(FrameError::UnsupportedVersion {
            api,
            version,
        }))?;
    Ok(Served {
        api,
        version,
        correlation_id: header.correlation_id,
        prepared,
        quota,
        request_bytes,
    })
}
