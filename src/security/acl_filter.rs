//! Kafka's `AclBindingFilter`: which stored ACLs a DescribeAcls or DeleteAcls filter
//! selects. Every field may be ANY (here `None`); the pattern type may also be MATCH,
//! which selects every ACL whose pattern covers the named resource.

use super::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType, WILDCARD};

/// Kafka's `PatternType` as a filter gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    Any,
    /// MATCH (2): the LITERAL name, the LITERAL `*`, and every PREFIXED prefix of it.
    Match,
    Exact(PatternType),
}

/// A filter from the wire is not one Kafka accepts (INVALID_REQUEST).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AclFilterError(pub &'static str);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

impl AclFilter {
    /// A filter from its wire codes (ANY is 1 for each enum; MATCH is pattern type 2).
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, AclFilterError> {
        const ANY: i8 = 1;
        let resource_type = match resource_type {
            ANY => None,
            code => {
                Some(ResourceType::from_code(code).ok_or(AclFilterError("Unknown resource type"))?)
            }
        };
        let pattern = match pattern_type {
            ANY => PatternFilter::Any,
            2 => PatternFilter::Match,
            code => PatternFilter::Exact(
                PatternType::from_code(code).ok_or(AclFilterError("Unknown pattern type"))?,
            ),
        };
        let operation = match operation {
            ANY => None,
            code => Some(AclOperation::from_code(code).ok_or(AclFilterError("Unknown operation"))?),
        };
        let permission = match permission {
            ANY => None,
            code => Some(
                AclPermission::from_code(code).ok_or(AclFilterError("Unknown permission type"))?,
            ),
        };
        Ok(Self {
            resource_type,
            resource_name,
            pattern,
            principal,
            host,
            operation,
            permission,
        })
    }

    /// Whether this filter selects `acl`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.matches_pattern(acl)
            && same(&self.principal, &acl.principal)
            && same(&self.host, &acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        match (self.pattern, self.resource_name.as_deref()) {
            (PatternFilter::Any, None) | (PatternFilter::Match, None) => true,
            (PatternFilter::Any, Some(name)) => acl.resource_name == name,
            (PatternFilter::Exact(p), name) => {
                acl.pattern_type == p && name.is_none_or(|n| acl.resource_name == n)
            }
            (PatternFilter::Match, Some(name)) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str, pattern: PatternType, principal: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: AclOperation::Write,
            permission: AclPermission::Allow,
        }
    }

    fn filter(name: Option<&str>, pattern_code: i8) -> AclFilter {
        AclFilter::from_wire(2, name.map(String::from), pattern_code, None, None, 1, 1).unwrap()
    }

    #[test]
    fn any_fields_select_every_acl_and_given_fields_must_equal() {
        let acls = [
            acl("orders", PatternType::Literal, "User:alice"),
            acl("ord", PatternType::Prefixed, "User:bob"),
        ];
        let all = AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap();
        assert!(acls.iter().all(|a| all.matches(a)));
        let alice = AclFilter {
            principal: Some("User:alice".into()),
            ..all.clone()
        };
        assert_eq!(acls.iter().filter(|a| alice.matches(a)).count(), 1);
        let read = AclFilter {
            operation: Some(AclOperation::Read),
            ..all
        };
        assert!(!acls.iter().any(|a| read.matches(a)));
    }

    #[test]
    fn pattern_filters_any_match_literal_and_prefixed() {
        let literal = acl("orders", PatternType::Literal, "User:a");
        let star = acl("*", PatternType::Literal, "User:a");
        let prefixed = acl("ord", PatternType::Prefixed, "User:a");
        // ANY with a name: that exact name, any pattern type.
        let any = filter(Some("ord"), 1);
        assert!(any.matches(&prefixed) && !any.matches(&literal));
        // MATCH: every ACL that covers the name.
        let matching = filter(Some("orders"), 2);
        assert!(matching.matches(&literal) && matching.matches(&star));
        assert!(matching.matches(&prefixed));
        assert!(!filter(Some("or"), 2).matches(&prefixed));
        // LITERAL / PREFIXED: that type, and the name when given.
        assert!(filter(Some("orders"), 3).matches(&literal));
        assert!(!filter(Some("ord"), 3).matches(&prefixed));
        assert!(filter(None, 4).matches(&prefixed));
        assert!(!filter(None, 4).matches(&literal));
    }

    #[test]
    fn unknown_codes_are_refused() {
        assert!(AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_err());
        assert!(AclFilter::from_wire(1, None, 0, None, None, 1, 1).is_err());
        assert!(AclFilter::from_wire(1, None, 1, None, None, 0, 1).is_err());
        assert!(AclFilter::from_wire(1, None, 1, None, None, 1, 9).is_err());
    }
}
