//! CreateAcls, DescribeAcls and DeleteAcls on the ACL set the metadata image holds: each
//! change is an `AclCreated` or `AclDeleted` record, committed before it is answered.

use tracing::info;

use super::{MetadataRecord, MetadataState};
use crate::error::MetadataError;
use crate::security::acl::AclBinding;
use crate::security::acl_filter::AclFilter;

impl MetadataState {
    /// Commits each new ACL in turn; one already held is a success that writes nothing.
    pub(super) async fn create_acls(
        &mut self,
        acls: Vec<AclBinding>,
    ) -> Vec<Result<(), MetadataError>> {
        let mut results = Vec::with_capacity(acls.len());
        for acl in acls {
            if self.image.acls.contains(&acl) {
                results.push(Ok(()));
                continue;
            }
            let result = self
                .commit(MetadataRecord::AclCreated { acl: acl.clone() })
                .await;
            if result.is_ok() {
                info!(principal = %acl.principal, resource = %acl.resource_name, "Created an ACL.");
            }
            results.push(result);
        }
        results
    }

    /// The held ACLs the filter selects.
    pub(super) fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.image
            .acls
            .iter()
            .filter(|acl| filter.matches(acl))
            .cloned()
            .collect()
    }

    /// For each filter, the ACLs it selected and this call removed.
    pub(super) async fn delete_acls(
        &mut self,
        filters: Vec<AclFilter>,
    ) -> Vec<Result<Vec<AclBinding>, MetadataError>> {
        let mut results = Vec::with_capacity(filters.len());
        for filter in filters {
            let mut deleted = Vec::new();
            let mut outcome = Ok(());
            for acl in self.describe_acls(&filter) {
                if let Err(err) = self
                    .commit(MetadataRecord::AclDeleted { acl: acl.clone() })
                    .await
                {
                    outcome = Err(err);
                    break;
                }
                info!(principal = %acl.principal, resource = %acl.resource_name, "Deleted an ACL.");
                deleted.push(acl);
            }
            results.push(outcome.map(|()| deleted));
        }
        results
    }
}
