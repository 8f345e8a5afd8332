//! What one connection's requests are checked against: the authorizer's settings, the
//! ACL snapshot the metadata actor last published, and who is asking from where.
//!
//! The ACL set is owned by the metadata actor, which publishes it as immutable `Arc` data
//! in every routing snapshot; each request takes the latest snapshot, so an ACL change
//! applies at once to connections already open. Without an authorizer every check passes.

use std::sync::{Arc, LazyLock};

use super::acl::{AclOperation, AclPermission, AuthorizationRequest, Authorizer, ResourceType};
use super::acl_index::AclIndex;
use super::KafkaPrincipal;

/// The only resource name Kafka gives the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The ACLs as the metadata actor last published them.
pub type AclSnapshot = Arc<AclIndex>;

/// Authorization for one request: `allows` answers whether its principal may do an
/// operation on a resource.
#[derive(Debug, Clone)]
pub struct AuthorizerView {
    authorizer: Option<Arc<Authorizer>>,
    acls: AclSnapshot,
    principal: KafkaPrincipal,
    host: String,
}

impl AuthorizerView {
    /// `host`: the client's address, with or without the leading `/` Kafka prints.
    pub fn new(
        authorizer: Option<Arc<Authorizer>>,
        acls: AclSnapshot,
        principal: KafkaPrincipal,
        host: &str,
    ) -> Self {
        Self {
            authorizer,
            acls,
            principal,
            host: host.trim_start_matches('/').to_string(),
        }
    }

    /// A view that allows everything (no authorizer configured).
    pub fn disabled() -> Self {
        // Shared, so serving a request without an authorizer allocates nothing here.
        static NO_ACLS: LazyLock<AclSnapshot> = LazyLock::new(AclSnapshot::default);
        Self {
            authorizer: None,
            acls: NO_ACLS.clone(),
            principal: KafkaPrincipal {
                principal_type: String::new(),
                name: String::new(),
            },
            host: String::new(),
        }
    }

    /// Whether an authorizer is configured (the ACL APIs answer SECURITY_DISABLED without).
    pub fn enabled(&self) -> bool {
        self.authorizer.is_some()
    }

    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let Some(authorizer) = &self.authorizer else {
            return true;
        };
        authorizer.authorize(
            self.acls.matching(resource_type, name),
            &AuthorizationRequest {
                principal: &self.principal,
                host: &self.host,
                operation,
                resource_type,
                resource_name: name,
            },
        )
    }

    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn allows_topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: AclOperation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    pub fn allows_transactional_id(&self, operation: AclOperation, id: &str) -> bool {
        self.allows(operation, ResourceType::TransactionalId, id)
    }

    /// Creating a topic: CREATE on the cluster or on the topic, as Kafka checks it.
    pub fn allows_create_topic(&self, topic: &str) -> bool {
        self.allows_cluster(AclOperation::Create) || self.allows_topic(AclOperation::Create, topic)
    }

    /// Whether some ALLOW ACL lets this principal WRITE to some topic (Kafka's
    /// `authorizeByResourceType`, which lets an idempotent producer without
    /// IDEMPOTENT_WRITE on the cluster get a producer id). A super user may; so may anyone
    /// when no topic has an ACL and `allow_everyone_if_no_acl_found` is on.
    pub fn allows_any_topic_write(&self) -> bool {
        let Some(authorizer) = &self.authorizer else {
            return true;
        };
        if authorizer.super_users.contains(&self.principal) {
            return true;
        }
        let principal = self.principal.to_string();
        let topic_acls = || self.acls.of_type(ResourceType::Topic);
        let granted = topic_acls().any(|acl| {
            acl.permission == AclPermission::Allow
                && acl.operation.allow_grants(AclOperation::Write)
                && acl.matches_principal(&principal)
                && acl.matches_host(&self.host)
        });
        granted || (authorizer.allow_everyone_if_no_acl_found && topic_acls().next().is_none())
    }

    /// KIP-430's bit set: bit `code` for each operation the resource type supports and
    /// this principal may do on the resource.
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        supported_operations(resource_type)
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// The operations Kafka lists for each resource type in authorized-operations answers.
fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{AclBinding, AclPermission, PatternType};

    fn view(acls: Vec<AclBinding>, user: &str) -> AuthorizerView {
        AuthorizerView::new(
            Some(Arc::new(Authorizer::default())),
            Arc::new(AclIndex::new(&acls.into_iter().collect())),
            KafkaPrincipal::user(user),
            "/127.0.0.1",
        )
    }

    fn topic_acl(op: AclOperation, host: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "t".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: host.into(),
            operation: op,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn without_an_authorizer_everything_is_allowed() {
        let open = AuthorizerView::disabled();
        assert!(!open.enabled());
        assert!(open.allows_cluster(AclOperation::Alter));
    }

    #[test]
    fn the_host_is_matched_without_kafkas_leading_slash() {
        let v = view(vec![topic_acl(AclOperation::Write, "127.0.0.1")], "alice");
        assert!(v.allows_topic(AclOperation::Write, "t"));
        assert!(
            !view(vec![topic_acl(AclOperation::Write, "127.0.0.1")], "bob")
                .allows_topic(AclOperation::Write, "t")
        );
    }

    #[test]
    fn authorized_operations_set_one_bit_per_allowed_operation() {
        let v = view(vec![topic_acl(AclOperation::Write, "*")], "alice");
        // WRITE (4) and the DESCRIBE (8) it implies.
        assert_eq!(
            v.authorized_operations(ResourceType::Topic, "t"),
            (1 << 4) | (1 << 8)
        );
        assert_eq!(v.authorized_operations(ResourceType::Topic, "u"), 0);
    }
}
