//! What a broker-to-broker connection runs on, in Kafka's words a transport layer: the
//! socket itself (PLAINTEXT, SASL_PLAINTEXT) or TLS over it (SSL, SASL_SSL), either end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsConnector, TlsStream};

use super::peer_tls::server_name;
use crate::sockets::Stream;

pub enum TransportLayer {
    Plaintext(Stream),
    Ssl(Box<TlsStream<Stream>>),
}

impl TransportLayer {
    /// The client end on `stream`, connected to `address` (host:port): TLS through `tls`
    /// (the peer's certificate checked against the truststore and the host), else the
    /// stream itself.
    pub async fn client(
        stream: Stream,
        tls: Option<&TlsConnector>,
        address: &str,
    ) -> io::Result<Self> {
        match tls {
            Some(tls) => {
                let tls = tls.connect(server_name(address)?, stream).await?;
                Ok(TransportLayer::Ssl(Box::new(tls.into())))
            }
            None => Ok(TransportLayer::Plaintext(stream)),
        }
    }
}

impl AsyncRead for TransportLayer {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransportLayer::Plaintext(s) => Pin::new(s).poll_read(cx, buf),
            TransportLayer::Ssl(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TransportLayer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TransportLayer::Plaintext(s) => Pin::new(s).poll_write(cx, buf),
            TransportLayer::Ssl(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransportLayer::Plaintext(s) => Pin::new(s).poll_flush(cx),
            TransportLayer::Ssl(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransportLayer::Plaintext(s) => Pin::new(s).poll_shutdown(cx),
            TransportLayer::Ssl(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
