//! Kafka's ACL model and the StandardAuthorizer's decision rules.
//!
//! An ACL binds a resource pattern (type, name, LITERAL or PREFIXED) to an entry
//! (principal, host, operation, ALLOW or DENY). `Authorizer::authorize` decides one
//! request the way Kafka's `StandardAuthorizer` does: super users pass, a matching DENY
//! wins over any ALLOW, and with no ACL on the resource at all the answer is
//! `allow_everyone_if_no_acl_found`. Codes are Kafka's wire codes.

use serde::{Deserialize, Serialize};

use super::KafkaPrincipal;

/// Kafka's `ResourceType`, with its wire codes (only the types this broker guards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Group => 3,
            Self::Cluster => 4,
            Self::TransactionalId => 5,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => Self::Topic,
            3 => Self::Group,
            4 => Self::Cluster,
            5 => Self::TransactionalId,
            _ => return None,
        })
    }
}

/// Kafka's `PatternType` for a stored ACL: LITERAL (3) or PREFIXED (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            Self::Literal => 3,
            Self::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            3 => Some(Self::Literal),
            4 => Some(Self::Prefixed),
            _ => None,
        }
    }
}

/// Kafka's `AclOperation` (ANY, 1, exists only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl AclOperation {
    pub fn code(self) -> i8 {
        match self {
            Self::All => 2,
            Self::Read => 3,
            Self::Write => 4,
            Self::Create => 5,
            Self::Delete => 6,
            Self::Alter => 7,
            Self::Describe => 8,
            Self::ClusterAction => 9,
            Self::DescribeConfigs => 10,
            Self::AlterConfigs => 11,
            Self::IdempotentWrite => 12,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => Self::All,
            3 => Self::Read,
            4 => Self::Write,
            5 => Self::Create,
            6 => Self::Delete,
            7 => Self::Alter,
            8 => Self::Describe,
            9 => Self::ClusterAction,
            10 => Self::DescribeConfigs,
            11 => Self::AlterConfigs,
            12 => Self::IdempotentWrite,
            _ => return None,
        })
    }

    /// Whether an ALLOW ACL for `self` grants `requested`: ALL grants everything, and as
    /// in Kafka READ/WRITE/DELETE/ALTER imply DESCRIBE, ALTER_CONFIGS implies
    /// DESCRIBE_CONFIGS.
    pub(crate) fn allow_grants(self, requested: AclOperation) -> bool {
        if self == Self::All || self == requested {
            return true;
        }
        match requested {
            Self::Describe => matches!(self, Self::Read | Self::Write | Self::Delete | Self::Alter),
            Self::DescribeConfigs => self == Self::AlterConfigs,
            _ => false,
        }
    }

    /// Whether a DENY ACL for `self` refuses `requested`: only the same operation or ALL
    /// (denying READ does not deny DESCRIBE).
    fn deny_refuses(self, requested: AclOperation) -> bool {
        self == Self::All || self == requested
    }
}

/// Kafka's `AclPermissionType`: DENY (2) or ALLOW (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclPermission {
    Deny,
    Allow,
}

impl AclPermission {
    pub fn code(self) -> i8 {
        match self {
            Self::Deny => 2,
            Self::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            2 => Some(Self::Deny),
            3 => Some(Self::Allow),
            _ => None,
        }
    }
}

/// One ACL: a resource pattern and an entry. `principal` is `Type:name` or `User:*`;
/// `host` is an address or `*`; a LITERAL `resource_name` of `*` matches every name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// The `authorizer_class_name` values that turn the authorizer on: Kafka's KRaft
/// StandardAuthorizer and its ZooKeeper-era AclAuthorizer, whose rules are the same.
pub const AUTHORIZER_CLASSES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// The principal that matches every principal, as Kafka writes it.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host, and the LITERAL resource name, that match every one.
pub const WILDCARD: &str = "*";

impl AclBinding {
    /// Whether this ACL's resource pattern covers the named resource.
    pub fn matches_resource(&self, resource_type: ResourceType, name: &str) -> bool {
        if self.resource_type != resource_type {
            return false;
        }
        match self.pattern_type {
            PatternType::Literal => self.resource_name == WILDCARD || self.resource_name == name,
            PatternType::Prefixed => name.starts_with(&self.resource_name),
        }
    }

    pub(crate) fn matches_principal(&self, principal: &str) -> bool {
        self.principal == WILDCARD_PRINCIPAL || self.principal == principal
    }

    pub(crate) fn matches_host(&self, host: &str) -> bool {
        self.host == WILDCARD || self.host == host
    }
}

/// What one request asks: who, from where, to do what on which resource.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    pub principal: &'a KafkaPrincipal,
    pub host: &'a str,
    pub operation: AclOperation,
    pub resource_type: ResourceType,
    pub resource_name: &'a str,
}

/// The StandardAuthorizer's settings: `super.users` and
/// `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    pub super_users: Vec<KafkaPrincipal>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// `super.users` is not `Type:name;Type:name`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("super_users lists principals as User:a;User:b, not {0:?}")]
pub struct SuperUsersParseError(pub String);

/// Parses Kafka's `super.users`: principals separated by semicolons, blanks ignored.
pub fn parse_super_users(text: &str) -> Result<Vec<KafkaPrincipal>, SuperUsersParseError> {
    text.split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| KafkaPrincipal::parse(part).map_err(|_| SuperUsersParseError(text.to_string())))
        .collect()
}

impl Authorizer {
    /// Whether `request` is allowed under `acls`.
    pub fn authorize<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding>,
        request: &AuthorizationRequest<'_>,
    ) -> bool {
        if self.super_users.contains(request.principal) {
            return true;
        }
        let principal = request.principal.to_string();
        let mut any_on_resource = false;
        let mut allowed = false;
        for acl in acls {
            if !acl.matches_resource(request.resource_type, request.resource_name) {
                continue;
            }
            any_on_resource = true;
            if !acl.matches_principal(&principal) || !acl.matches_host(request.host) {
                continue;
            }
            match acl.permission {
                AclPermission::Deny if acl.operation.deny_refuses(request.operation) => {
                    return false;
                }
                AclPermission::Allow if acl.operation.allow_grants(request.operation) => {
                    allowed = true;
                }
                _ => {}
            }
        }
        allowed || (!any_on_resource && self.allow_everyone_if_no_acl_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type: pattern,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        }
    }

    fn allow(name: &str, principal: &str, operation: AclOperation) -> AclBinding {
        acl(
            name,
            PatternType::Literal,
            principal,
            "*",
            operation,
            AclPermission::Allow,
        )
    }

    fn asks(
        authorizer: &Authorizer,
        acls: &[AclBinding],
        user: &str,
        op: AclOperation,
        topic: &str,
    ) -> bool {
        let principal = KafkaPrincipal::user(user);
        authorizer.authorize(
            acls,
            &AuthorizationRequest {
                principal: &principal,
                host: "10.0.0.1",
                operation: op,
                resource_type: ResourceType::Topic,
                resource_name: topic,
            },
        )
    }

    #[test]
    fn an_allow_acl_grants_only_its_principal_operation_and_topic() {
        let a = Authorizer::default();
        let acls = [allow("t", "User:alice", AclOperation::Write)];
        assert!(asks(&a, &acls, "alice", AclOperation::Write, "t"));
        assert!(!asks(&a, &acls, "bob", AclOperation::Write, "t"));
        assert!(!asks(&a, &acls, "alice", AclOperation::Read, "t"));
        assert!(!asks(&a, &acls, "alice", AclOperation::Write, "u"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let a = Authorizer::default();
        let acls = [
            allow("t", "User:*", AclOperation::All),
            acl(
                "t",
                PatternType::Literal,
                "User:alice",
                "*",
                AclOperation::Write,
                AclPermission::Deny,
            ),
        ];
        assert!(!asks(&a, &acls, "alice", AclOperation::Write, "t"));
        assert!(asks(&a, &acls, "alice", AclOperation::Read, "t"));
        assert!(asks(&a, &acls, "bob", AclOperation::Write, "t"));
    }

    #[test]
    fn all_matches_every_operation_in_allow_and_deny() {
        let a = Authorizer::default();
        let allow_all = [allow("t", "User:alice", AclOperation::All)];
        assert!(asks(&a, &allow_all, "alice", AclOperation::Delete, "t"));
        let deny_all = [
            allow("t", "User:alice", AclOperation::Read),
            acl(
                "t",
                PatternType::Literal,
                "User:alice",
                "*",
                AclOperation::All,
                AclPermission::Deny,
            ),
        ];
        assert!(!asks(&a, &deny_all, "alice", AclOperation::Read, "t"));
    }

    #[test]
    fn wildcards_match_every_principal_host_and_name() {
        let a = Authorizer::default();
        let acls = [allow("*", "User:*", AclOperation::Read)];
        assert!(asks(&a, &acls, "anyone", AclOperation::Read, "any-topic"));
        let host_bound = [acl(
            "t",
            PatternType::Literal,
            "User:alice",
            "10.0.0.2",
            AclOperation::Read,
            AclPermission::Allow,
        )];
        assert!(!asks(&a, &host_bound, "alice", AclOperation::Read, "t"));
        let mut from_host = host_bound[0].clone();
        from_host.host = "10.0.0.1".to_string();
        assert!(asks(&a, &[from_host], "alice", AclOperation::Read, "t"));
    }

    #[test]
    fn prefixed_patterns_match_names_that_start_with_them() {
        let a = Authorizer::default();
        let acls = [acl(
            "orders-",
            PatternType::Prefixed,
            "User:alice",
            "*",
            AclOperation::Read,
            AclPermission::Allow,
        )];
        assert!(asks(&a, &acls, "alice", AclOperation::Read, "orders-eu"));
        assert!(!asks(&a, &acls, "alice", AclOperation::Read, "order"));
        // A PREFIXED `*` is a literal prefix, not a wildcard.
        let star = [acl(
            "*",
            PatternType::Prefixed,
            "User:alice",
            "*",
            AclOperation::Read,
            AclPermission::Allow,
        )];
        assert!(!asks(&a, &star, "alice", AclOperation::Read, "t"));
    }

    #[test]
    fn describe_is_implied_by_read_write_delete_alter_and_describe_configs_by_alter_configs() {
        let a = Authorizer::default();
        for op in [
            AclOperation::Read,
            AclOperation::Write,
            AclOperation::Delete,
            AclOperation::Alter,
        ] {
            let acls = [allow("t", "User:alice", op)];
            assert!(
                asks(&a, &acls, "alice", AclOperation::Describe, "t"),
                "{op:?}"
            );
        }
        let create = [allow("t", "User:alice", AclOperation::Create)];
        assert!(!asks(&a, &create, "alice", AclOperation::Describe, "t"));
        let alter_configs = [allow("t", "User:alice", AclOperation::AlterConfigs)];
        assert!(asks(
            &a,
            &alter_configs,
            "alice",
            AclOperation::DescribeConfigs,
            "t"
        ));
        // A DENY of READ does not deny DESCRIBE.
        let deny_read = [
            allow("t", "User:alice", AclOperation::Describe),
            acl(
                "t",
                PatternType::Literal,
                "User:alice",
                "*",
                AclOperation::Read,
                AclPermission::Deny,
            ),
        ];
        assert!(asks(&a, &deny_read, "alice", AclOperation::Describe, "t"));
    }

    #[test]
    fn super_users_bypass_every_acl() {
        let a = Authorizer {
            super_users: parse_super_users("User:admin; User:ops").unwrap(),
            allow_everyone_if_no_acl_found: false,
        };
        let deny = [acl(
            "t",
            PatternType::Literal,
            "User:*",
            "*",
            AclOperation::All,
            AclPermission::Deny,
        )];
        assert!(asks(&a, &deny, "admin", AclOperation::Write, "t"));
        assert!(asks(&a, &[], "ops", AclOperation::Write, "t"));
        assert!(!asks(&a, &deny, "alice", AclOperation::Write, "t"));
        assert!(parse_super_users("admin").is_err());
        assert_eq!(parse_super_users("").unwrap(), Vec::new());
    }

    #[test]
    fn allow_everyone_applies_only_when_no_acl_matches_the_resource() {
        let open = Authorizer {
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: true,
        };
        assert!(asks(&open, &[], "alice", AclOperation::Write, "t"));
        // An ACL on the topic for someone else: the topic is guarded, alice is refused.
        let guarded = [allow("t", "User:bob", AclOperation::Write)];
        assert!(!asks(&open, &guarded, "alice", AclOperation::Write, "t"));
        assert!(asks(&open, &guarded, "alice", AclOperation::Write, "u"));
        assert!(!asks(
            &Authorizer::default(),
            &[],
            "alice",
            AclOperation::Write,
            "t"
        ));
    }

    #[test]
    fn codes_round_trip_as_kafka_numbers_them() {
        for t in [
            ResourceType::Topic,
            ResourceType::Group,
            ResourceType::Cluster,
            ResourceType::TransactionalId,
        ] {
            assert_eq!(ResourceType::from_code(t.code()), Some(t));
        }
        assert_eq!(ResourceType::Cluster.code(), 4);
        assert_eq!(PatternType::from_code(4), Some(PatternType::Prefixed));
        assert_eq!(AclPermission::from_code(3), Some(AclPermission::Allow));
        for code in 2..=12 {
            assert_eq!(AclOperation::from_code(code).unwrap().code(), code);
        }
        assert_eq!(AclOperation::from_code(1), None);
    }
}
