//! Dynamic broker configs on the metadata actor (a child module of `metadata`): a change
//! to either layer is validated, persisted as one record holding both layers, and sent to
//! every partition, since any topic without its own override takes the new default.

use tracing::info;

use super::{MetadataRecord, MetadataState};
use crate::broker_config::{self, BrokerLayer};
use crate::error::MetadataError;
use crate::topic_config::ConfigChange;

impl MetadataState {
    pub(super) async fn alter_broker_configs(
        &mut self,
        layer: BrokerLayer,
        changes: &[ConfigChange],
        replace: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let next = broker_config::apply_changes(self.defaults(), layer, changes, replace)?;
        if validate_only {
            return Ok(());
        }
        let mut dynamic = self.image.dynamic.clone();
        match layer {
            BrokerLayer::PerBroker => dynamic.per_broker = next,
            BrokerLayer::ClusterDefault => dynamic.cluster_default = next,
        }
        self.commit(MetadataRecord::BrokerConfigsChanged { dynamic })
            .await?;
        for (name, topic) in &self.topics {
            let Some(image) = self.image.topics.get(name) else {
                continue;
            };
            self.push_configs(&topic.partitions, &image.configs);
        }
        info!(?layer, "Changed the dynamic broker configs.");
        Ok(())
    }
}
