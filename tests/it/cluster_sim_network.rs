//! The whole-cluster simulation's network (`cluster_sim`): turmoil's TCP behind the
//! broker's `sockets::SimulatedNetwork` seam.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use broker::sockets::{SimListener, SimStream, SimulatedNetwork};
use futures::future::BoxFuture;

/// turmoil's TCP for one broker. turmoil answers a connect across a cut link (or to a
/// crashed host) with ConnectionRefused, where real TCP across a partition stays silent
/// until the caller's timeout: a refused connect to a port some broker has bound stays
/// pending here instead, so only "nothing listens there" is refused, as on real sockets.
#[derive(Clone)]
pub(crate) struct Turmoil {
    pub(crate) ip: IpAddr,
    pub(crate) bound: Arc<Mutex<BTreeSet<SocketAddr>>>,
}

struct TurmoilListener {
    listener: turmoil::net::TcpListener,
    addr: SocketAddr,
    bound: Arc<Mutex<BTreeSet<SocketAddr>>>,
}

impl Drop for TurmoilListener {
    fn drop(&mut self) {
        self.bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.addr);
    }
}

impl SimListener for TurmoilListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn SimStream>, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.listener.accept().await?;
            Ok((Box::new(stream) as Box<dyn SimStream>, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl SimulatedNetwork for Turmoil {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn SimListener>>> {
        let net = self.clone();
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            let addr = SocketAddr::new(net.ip, addr.port());
            net.bound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(addr);
            let bound = net.bound.clone();
            let listener = TurmoilListener {
                listener,
                addr,
                bound,
            };
            Ok(Box::new(listener) as Box<dyn SimListener>)
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn SimStream>>> {
        let bound = self.bound.clone();
        Box::pin(async move {
            match turmoil::net::TcpStream::connect(addr.as_str()).await {
                Ok(stream) => Ok(Box::new(stream) as Box<dyn SimStream>),
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    let target = addr.rsplit_once(':').and_then(|(host, port)| {
                        Some(SocketAddr::new(turmoil::lookup(host), port.parse().ok()?))
                    });
                    let listening = target.is_some_and(|t| {
                        bound.lock().unwrap_or_else(|e| e.into_inner()).contains(&t)
                    });
                    if listening {
                        std::future::pending::<()>().await;
                    }
                    Err(err)
                }
                Err(err) => Err(err),
            }
        })
    }
}
