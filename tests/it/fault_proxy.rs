//! A fault proxy for inter-broker traffic: a tokio TCP forwarder on 127.0.0.1 in front of
//! one address, which the test switches between passing bytes on, delaying them, dropping
//! them (every packet lost, as across a network partition: connections stay open and
//! nothing arrives; as TCP retransmits, what was sent arrives once the fault is lifted) and
//! cutting (every connection closed, new ones closed at once).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Each chunk read is forwarded after this long.
    Delay(Duration),
    /// Nothing passes (nothing more is read) until the fault changes; connections stay open.
    Drop,
    /// Every connection is closed; new ones are closed as soon as accepted.
    Cut,
}

pub struct FaultProxy {
    port: u16,
    fault: watch::Sender<Fault>,
    // Dropped with the proxy: its tasks, listener and connections end.
    _runtime: Runtime,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to 127.0.0.1:`upstream` (which need
    /// not listen yet: a connection made before it does is closed).
    pub fn start(upstream: u16) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy listens");
        let port = listener.local_addr().expect("proxy address").port();
        let (fault, watching) = watch::channel(Fault::Pass);
        runtime.spawn(accept(listener, upstream, watching));
        FaultProxy {
            port,
            fault,
            _runtime: runtime,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

async fn accept(listener: TcpListener, upstream: u16, fault: watch::Receiver<Fault>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *fault.borrow() == Fault::Cut {
            continue;
        }
        let fault = fault.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, fault.clone()));
            tokio::spawn(pump(server_read, client_write, fault));
        });
    }
}

/// Copies one direction, applying the fault in force to each chunk; ends (closing its
/// half) at end of stream, an error, or a cut.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut fault: watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while *fault.borrow_and_update() == Fault::Drop {
            if fault.changed().await.is_err() {
                return;
            }
        }
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let now = *fault.borrow_and_update();
                match now {
                    Fault::Cut => return,
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    // Read as the fault came: it passes.
                    Fault::Drop | Fault::Pass => {}
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = fault.changed() => {
                if changed.is_err() || *fault.borrow_and_update() == Fault::Cut {
                    return;
                }
            }
        }
    }
}
