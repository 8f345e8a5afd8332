//! The sockets the broker opens: tokio's TCP, or a simulated network's.
//!
//! Every listener the broker binds (clients, the Raft transport) and every connection it
//! opens (replica fetchers, transaction markers, quorum requests, the controller's
//! liveness probe) goes through the `Network` in the broker's config. `Network::Tcp`, the
//! default, is tokio's sockets, called exactly as before. `Network::Simulated` hands the
//! same calls to a `SimulatedNetwork` the caller supplies: the deterministic whole-cluster
//! simulation (tests/it/cluster_sim.rs) runs brokers as turmoil hosts that way, so turmoil
//! stays a dev-dependency, out of the broker binary.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream of a simulated network.
pub trait SimStream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> SimStream for T {}

/// A simulated network's listener.
pub trait SimListener: Send + Sync + 'static {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn SimStream>, SocketAddr)>>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// What a simulated network offers: binding a listener and connecting to `host:port`.
pub trait SimulatedNetwork: Send + Sync + 'static {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn SimListener>>>;
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn SimStream>>>;
}

/// Which sockets the broker uses; chosen once, at start.
#[derive(Clone, Default)]
pub enum Network {
    /// tokio's TCP sockets.
    #[default]
    Tcp,
    /// A simulated network (tests only).
    Simulated(Arc<dyn SimulatedNetwork>),
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Tcp => f.write_str("Tcp"),
            Network::Simulated(_) => f.write_str("Simulated"),
        }
    }
}

impl Network {
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<Listener> {
        match self {
            Network::Tcp => TcpListener::bind(addr).await.map(Listener::Tcp),
            Network::Simulated(net) => net.bind(addr).await.map(Listener::Simulated),
        }
    }

    /// A connection to `addr` (host:port, the host a name or an IP address).
    pub async fn connect(&self, addr: &str) -> io::Result<Stream> {
        match self {
            Network::Tcp => TcpStream::connect(addr).await.map(Stream::Tcp),
            Network::Simulated(net) => net.connect(addr.to_string()).await.map(Stream::Simulated),
        }
    }

    /// A connection to `host` at `port`.
    pub async fn connect_to(&self, host: &str, port: u16) -> io::Result<Stream> {
        match self {
            Network::Tcp => TcpStream::connect((host, port)).await.map(Stream::Tcp),
            Network::Simulated(net) => net
                .connect(format!("{host}:{port}"))
                .await
                .map(Stream::Simulated),
        }
    }
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Simulated(Box<dyn SimListener>),
}

impl Listener {
    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, a)| (Stream::Tcp(s), a)),
            Listener::Simulated(l) => l.accept().await.map(|(s, a)| (Stream::Simulated(s), a)),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Simulated(l) => l.local_addr(),
        }
    }
}

/// A connected stream.
pub enum Stream {
    Tcp(TcpStream),
    Simulated(Box<dyn SimStream>),
}

impl Stream {
    /// Nagle off, on TCP (a simulated network has no Nagle).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(nodelay),
            Stream::Simulated(_) => Ok(()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Simulated(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Simulated(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Simulated(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Simulated(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Simulated(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Simulated(s) => s.is_write_vectored(),
        }
    }
}
