//! A broker started inside the test process on its own runtime (usually on a simulated
//! disk), for actor-level tests that talk to it over a real socket. Shut down on drop.

use std::sync::Arc;

use broker::actors::broker::Broker;
use broker::config::Config;
use broker::storage::Storage;

pub struct InProcessBroker {
    runtime: tokio::runtime::Runtime,
    broker: Option<Broker>,
}

impl InProcessBroker {
    pub fn start(config: Config, storage: Arc<dyn Storage>) -> InProcessBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let broker = runtime
            .block_on(Broker::start(config, storage))
            .expect("broker starts");
        InProcessBroker {
            runtime,
            broker: Some(broker),
        }
    }

    /// Shuts the broker down now (waiting for it), rather than when dropped.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(broker) = self.broker.take() {
            self.runtime.block_on(broker.shutdown());
        }
    }
}

impl Drop for InProcessBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
