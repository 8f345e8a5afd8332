//! The ACL set as request checks read it: indexed by resource, so one check looks only at
//! the ACLs that can match its resource (the LITERAL name, the LITERAL `*`, and the
//! PREFIXED patterns of its type), not at every ACL, as Kafka's StandardAuthorizerData
//! does. Built by the metadata actor whenever it publishes, immutable afterwards.

use std::collections::{BTreeSet, HashMap};

use super::acl::{AclBinding, PatternType, ResourceType, WILDCARD};

#[derive(Debug, Default)]
pub struct AclIndex {
    /// LITERAL ACLs by resource type and name (`*` included as a name).
    literal: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    /// PREFIXED ACLs by resource type.
    prefixed: HashMap<ResourceType, Vec<AclBinding>>,
}

impl AclIndex {
    pub fn new(acls: &BTreeSet<AclBinding>) -> Self {
        let mut index = AclIndex::default();
        for acl in acls {
            match acl.pattern_type {
                PatternType::Literal => index
                    .literal
                    .entry(acl.resource_type)
                    .or_default()
                    .entry(acl.resource_name.clone())
                    .or_default()
                    .push(acl.clone()),
                PatternType::Prefixed => index
                    .prefixed
                    .entry(acl.resource_type)
                    .or_default()
                    .push(acl.clone()),
            }
        }
        index
    }

    /// Every ACL whose pattern covers the named resource.
    pub fn matching<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let literal = self.literal.get(&resource_type);
        let named = |n: &str| literal.and_then(|l| l.get(n)).into_iter().flatten();
        let wildcard = (name != WILDCARD)
            .then(|| named(WILDCARD))
            .into_iter()
            .flatten();
        let prefixed = self
            .prefixed
            .get(&resource_type)
            .into_iter()
            .flatten()
            .filter(move |acl| name.starts_with(&acl.resource_name));
        named(name).chain(wildcard).chain(prefixed)
    }

    /// Every ACL on resources of this type.
    pub fn of_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &AclBinding> {
        let literal = self
            .literal
            .get(&resource_type)
            .into_iter()
            .flat_map(|by_name| by_name.values().flatten());
        literal.chain(self.prefixed.get(&resource_type).into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{AclOperation, AclPermission};

    fn acl(kind: ResourceType, name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn matching_gives_exactly_the_acls_whose_pattern_covers_the_resource() {
        use PatternType::{Literal, Prefixed};
        use ResourceType::{Group, Topic};
        let all: BTreeSet<_> = [
            acl(Topic, "orders", Literal),
            acl(Topic, "*", Literal),
            acl(Topic, "ord", Prefixed),
            acl(Topic, "orders-eu", Prefixed),
            acl(Topic, "payments", Literal),
            acl(Group, "orders", Literal),
        ]
        .into();
        let index = AclIndex::new(&all);
        for (kind, name) in [
            (Topic, "orders"),
            (Topic, "*"),
            (Topic, "x"),
            (Group, "orders"),
        ] {
            let mut got: Vec<_> = index.matching(kind, name).cloned().collect();
            got.sort();
            let want: Vec<_> = all
                .iter()
                .filter(|a| a.matches_resource(kind, name))
                .cloned()
                .collect();
            assert_eq!(got, want, "{kind:?} {name}");
        }
        assert_eq!(index.of_type(Topic).count(), 5);
    }
}
