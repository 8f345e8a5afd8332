//! The runtime partition actors run on, apart from the one that serves sockets.
//!
//! A partition actor writes and reads its segments with positioned file I/O on its own
//! thread: usually a page-cache copy, but a write can stall for milliseconds when the
//! kernel throttles dirty pages, and recovery at start reads whole segments. On their own
//! runtime those stalls never hold up a connection's task. fsync, deletion and cleaning
//! go further still, to this runtime's blocking pool.
//!
//! `storage_threads = 0` runs partition actors on the runtime serving sockets instead: a
//! deterministic simulation runs each broker on one simulated host's runtime.

use tokio::runtime::{Builder, Handle, Runtime};

pub struct StorageRuntime {
    runtime: Option<Runtime>,
}

impl StorageRuntime {
    /// A runtime of `threads` workers; none for 0 (partitions run on the caller's).
    pub fn new(threads: usize) -> std::io::Result<StorageRuntime> {
        if threads == 0 {
            return Ok(StorageRuntime { runtime: None });
        }
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("storage")
            .enable_all()
            .build()?;
        Ok(StorageRuntime {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> Option<Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for StorageRuntime {
    /// Without waiting: a runtime dropped inside another one's task may not block.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
