//! A TCP proxy on 127.0.0.1 that forwards to the broker and can cut every connection at
//! once, so clients see connections drop mid-stream (requests written, answers lost).

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct CuttingProxy {
    port: u16,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    /// Listens on `listener` and forwards each connection to 127.0.0.1:`upstream`.
    pub fn start(listener: TcpListener, upstream: u16) -> CuttingProxy {
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (open2, stop2) = (open.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let pump = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    if let Ok(mut open) = open2.lock() {
                        open.push(c2.try_clone().unwrap());
                        open.push(s2.try_clone().unwrap());
                    }
                    pump(client, server);
                    pump(s2, c2);
                }
            }
        });
        CuttingProxy { port, open, stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection that passes through now.
    pub fn cut_all(&self) -> usize {
        let mut open = self.open.lock().unwrap();
        let n = open.len() / 2;
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        n
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_all();
    }
}
