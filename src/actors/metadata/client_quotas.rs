//! AlterClientQuotas on the quota configs the metadata image holds: each key set or
//! removed is a `ClientQuotaChanged` record, committed before it is answered. The
//! handler has already validated every entity and key. A change that changes nothing
//! writes nothing.

use tracing::info;

use super::{ClientQuotaAlteration, MetadataRecord, MetadataState};
use crate::error::MetadataError;

impl MetadataState {
    /// Commits each entity's changes in turn; an entity's outcome is its first failure.
    pub(super) async fn alter_client_quotas(
        &mut self,
        changes: Vec<ClientQuotaAlteration>,
    ) -> Vec<Result<(), MetadataError>> {
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let mut outcome = Ok(());
            for (key, value) in &change.ops {
                let held = self.image.client_quotas.entities.get(&change.entity);
                if held.and_then(|keys| keys.get(key.name())).copied() == *value {
                    // Already so (a removal of an absent key included): nothing to write.
                    continue;
                }
                let record = MetadataRecord::ClientQuotaChanged {
                    entity: change.entity.clone(),
                    key: key.name().to_string(),
                    value: *value,
                };
                if let Err(err) = self.commit(record).await {
                    outcome = Err(err);
                    break;
                }
            }
            if outcome.is_ok() {
                info!(entity = ?change.entity, changes = change.ops.len(), "Altered client quotas.");
            }
            results.push(outcome);
        }
        results
    }
}
