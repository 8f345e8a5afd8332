//! Worker threads that all start measuring together: each sets up (creates and connects
//! its client), says it is ready, and waits for the start signal, so connecting is not
//! part of what is measured. Every wait here is bounded or ends when the other side goes.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Workers must be set up within this long.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A worker's side of the start line.
pub struct Gate {
    ready: Sender<Result<(), String>>,
    go: Receiver<()>,
}

impl Gate {
    /// Reports how setting up went, then waits for the start. `Ok(None)`: the run was
    /// called off before it started.
    pub fn pass<S>(self, setup: Result<S>) -> Result<Option<S>> {
        match setup {
            Ok(s) => {
                let _ = self.ready.send(Ok(()));
                Ok(self.go.recv().ok().map(|()| s))
            }
            Err(e) => {
                let _ = self.ready.send(Err(format!("{e:#}")));
                Err(e)
            }
        }
    }
}

pub struct Workers<T> {
    ready: Receiver<Result<(), String>>,
    go: Vec<Sender<()>>,
    threads: Vec<JoinHandle<Result<T>>>,
}

/// Starts `n` threads running `body(index, gate)`; `body` must call `gate.pass` first.
pub fn spawn<T, F>(name: &str, n: u32, body: F) -> Result<Workers<T>>
where
    T: Send + 'static,
    F: Fn(u32, Gate) -> Result<T> + Send + Sync + Clone + 'static,
{
    let (ready_tx, ready) = mpsc::channel();
    let mut workers = Workers {
        ready,
        go: Vec::new(),
        threads: Vec::new(),
    };
    for index in 0..n {
        let (go_tx, go) = mpsc::channel();
        let gate = Gate {
            ready: ready_tx.clone(),
            go,
        };
        let body = body.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || body(index, gate))
            .with_context(|| format!("starting {name} thread {index}"))?;
        workers.go.push(go_tx);
        workers.threads.push(thread);
    }
    Ok(workers)
}

impl<T> Workers<T> {
    /// Waits until every worker is ready (or one failed to set up), without starting them.
    pub fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        for _ in 0..self.threads.len() {
            match self
                .ready
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("{e}"),
                Err(_) => bail!("workers were not ready within {SETUP_TIMEOUT:?}"),
            }
        }
        Ok(())
    }

    /// Gives every worker the start signal.
    pub fn go(&mut self) {
        for go in self.go.drain(..) {
            let _ = go.send(());
        }
    }

    /// Each worker's result; a panic is an error. Workers not yet started are called off.
    pub fn join(self) -> Vec<Result<T>> {
        let Workers { go, threads, .. } = self;
        drop(go);
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow!("a worker thread panicked")))
            })
            .collect()
    }
}

/// Error texts of the failed results, without repeats.
pub fn failures<T>(results: &[Result<T>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        let text = format!("{e:#}");
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_start_together_and_report() {
        let mut w = spawn("t", 3, |i, gate| {
            let Some(v) = gate.pass(Ok(i * 10))? else {
                return Ok(0);
            };
            if i == 2 {
                bail!("worker two fails");
            }
            Ok(v)
        })
        .expect("spawned");
        w.wait_ready().expect("ready");
        w.go();
        let results = w.join();
        let ok: Vec<u32> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(ok, vec![0, 10]);
        assert_eq!(failures(&results), vec!["worker two fails".to_string()]);
    }

    #[test]
    fn a_failed_setup_calls_the_run_off() {
        let w = spawn("t", 2, |i, gate| {
            let setup = if i == 0 {
                Ok(())
            } else {
                Err(anyhow!("no broker"))
            };
            Ok(gate.pass(setup)?.is_some())
        })
        .expect("spawned");
        let err = w.wait_ready().expect_err("one failed");
        assert!(err.to_string().contains("no broker"));
        // Dropping the start signals lets the ready worker go home without starting.
        let results = w.join();
        assert!(matches!(results[0], Ok(false)));
        assert!(results[1].is_err());
    }
}
