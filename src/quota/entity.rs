//! Client quota entities and their configs (KIP-546), as the metadata image holds them,
//! and Kafka's precedence for finding the quota that applies to one (user, client-id).
//!
//! An entity names a user, a client id, or both; a name of None is that type's default
//! entity (`<default>`). Each entity holds some of the quota keys below. Enforcement asks
//! `ClientQuotas::resolve` which entity's value applies, in Kafka's order:
//! `/users/<u>/clients/<c>`, `/users/<u>/clients/<default>`, `/users/<u>`,
//! `/users/<default>/clients/<c>`, `/users/<default>/clients/<default>`, `/users/<default>`,
//! `/clients/<c>`, `/clients/<default>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka's entity type names.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// One entity name: a specific user or client id, or that type's default (None).
pub type EntityName = Option<String>;

/// A quota entity: a user, a client id, or a user and a client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "StoredEntity", into = "StoredEntity")]
pub struct ClientQuotaEntity {
    /// None: the entity names no user. Some(None): the default user.
    pub user: Option<EntityName>,
    /// None: the entity names no client id. Some(None): the default client id.
    pub client_id: Option<EntityName>,
}

/// How an entity is stored: each name wrapped, so a default entity (a null name) stays
/// apart from an absent type in formats that write both as null.
#[derive(Serialize, Deserialize)]
struct StoredEntity {
    user: Option<StoredName>,
    client_id: Option<StoredName>,
}

#[derive(Serialize, Deserialize)]
struct StoredName {
    name: EntityName,
}

impl From<StoredEntity> for ClientQuotaEntity {
    fn from(stored: StoredEntity) -> Self {
        Self {
            user: stored.user.map(|n| n.name),
            client_id: stored.client_id.map(|n| n.name),
        }
    }
}

impl From<ClientQuotaEntity> for StoredEntity {
    fn from(entity: ClientQuotaEntity) -> Self {
        Self {
            user: entity.user.map(|name| StoredName { name }),
            client_id: entity.client_id.map(|name| StoredName { name }),
        }
    }
}

impl ClientQuotaEntity {
    pub fn user(name: Option<&str>) -> Self {
        Self {
            user: Some(name.map(String::from)),
            client_id: None,
        }
    }

    pub fn client(name: Option<&str>) -> Self {
        Self {
            user: None,
            client_id: Some(name.map(String::from)),
        }
    }

    pub fn user_client(user: Option<&str>, client: Option<&str>) -> Self {
        Self {
            user: Some(user.map(String::from)),
            client_id: Some(client.map(String::from)),
        }
    }

    /// The entity's (type, name) pairs, user first, as Describe answers them.
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(user) = &self.user {
            out.push((USER, user.as_deref()));
        }
        if let Some(client) = &self.client_id {
            out.push((CLIENT_ID, client.as_deref()));
        }
        out
    }

    fn get(&self, entity_type: &str) -> Option<&EntityName> {
        match entity_type {
            USER => self.user.as_ref(),
            CLIENT_ID => self.client_id.as_ref(),
            _ => None,
        }
    }
}

/// The quota keys Kafka's AlterClientQuotas accepts for user and client-id entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKey {
    ProducerByteRate,
    ConsumerByteRate,
    RequestPercentage,
    /// Accepted and stored; topic-mutation throttling is not enforced.
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kafka's byte rates are LONG configs: a value with a fraction is refused.
    fn integral(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }

    /// Why `value` cannot be this key's quota, if it cannot.
    pub fn check_value(self, value: f64) -> Result<(), String> {
        if !value.is_finite() || value <= 0.0 {
            return Err(format!(
                "{} must be a positive number, not {value}",
                self.name()
            ));
        }
        if self.integral() && value.fract() != 0.0 {
            return Err(format!("{} must be an integer, not {value}", self.name()));
        }
        Ok(())
    }
}

/// Whose usage a quota's rate is measured over, as Kafka's metric tags say: the user
/// and/or the client id of the entity shape that matched (a default entity measures each
/// user or client id apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaMetricKey {
    pub user: String,
    pub client_id: String,
}

/// Every entity's quota configs: what the metadata image holds and publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientQuotas {
    pub entities: BTreeMap<ClientQuotaEntity, BTreeMap<String, f64>>,
}

impl ClientQuotas {
    /// Sets (Some) or removes (None) one key of one entity; an entity left with no key
    /// is gone.
    pub fn set(&mut self, entity: &ClientQuotaEntity, key: &str, value: Option<f64>) {
        match value {
            Some(value) => {
                self.entities
                    .entry(entity.clone())
                    .or_default()
                    .insert(key.to_string(), value);
            }
            None => {
                if let Some(keys) = self.entities.get_mut(entity) {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.entities.remove(entity);
                    }
                }
            }
        }
    }

    /// Whether no entity holds any quota (enforcement then records nothing).
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The quota of `key` that applies to `user` (the principal's name) with `client_id`,
    /// and whose usage it is measured over; None: no quota.
    pub fn resolve(
        &self,
        key: QuotaKey,
        user: &str,
        client_id: &str,
    ) -> Option<(QuotaMetricKey, f64)> {
        let name = key.name();
        let (u, c) = (Some(user), Some(client_id));
        // (entity, measured per user, measured per client id), in Kafka's order.
        let order = [
            (ClientQuotaEntity::user_client(u, c), true, true),
            (ClientQuotaEntity::user_client(u, None), true, true),
            (ClientQuotaEntity::user(u), true, false),
            (ClientQuotaEntity::user_client(None, c), true, true),
            (ClientQuotaEntity::user_client(None, None), true, true),
            (ClientQuotaEntity::user(None), true, false),
            (ClientQuotaEntity::client(c), false, true),
            (ClientQuotaEntity::client(None), false, true),
        ];
        order
            .into_iter()
            .find_map(|(entity, per_user, per_client)| {
                let value = *self.entities.get(&entity)?.get(name)?;
                let metric = QuotaMetricKey {
                    user: if per_user {
                        user.to_string()
                    } else {
                        String::new()
                    },
                    client_id: if per_client {
                        client_id.to_string()
                    } else {
                        String::new()
                    },
                };
                Some((metric, value))
            })
    }

    /// DescribeClientQuotas' filter over the held entities (KIP-546): `exact` types must
    /// hold that name (None: the default), `specified` types any name, and with `strict`
    /// the entity holds no other type.
    pub fn describe<'a>(
        &'a self,
        exact: &'a BTreeMap<String, EntityName>,
        specified: &'a [String],
        strict: bool,
    ) -> impl Iterator<Item = (&'a ClientQuotaEntity, &'a BTreeMap<String, f64>)> + 'a {
        self.entities.iter().filter(move |(entity, _)| {
            if strict && entity.components().len() != exact.len() + specified.len() {
                return false;
            }
            exact.iter().all(|(t, name)| entity.get(t) == Some(name))
                && specified.iter().all(|t| entity.get(t).is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: QuotaKey = QuotaKey::ProducerByteRate;

    fn with(entries: &[(ClientQuotaEntity, f64)]) -> ClientQuotas {
        let mut quotas = ClientQuotas::default();
        for (entity, value) in entries {
            quotas.set(entity, P.name(), Some(*value));
        }
        quotas
    }

    /// Every level of Kafka's order, each added below the last: the most specific wins.
    #[test]
    fn precedence_follows_kafkas_eight_levels() {
        let levels = [
            ClientQuotaEntity::client(None),
            ClientQuotaEntity::client(Some("c")),
            ClientQuotaEntity::user(None),
            ClientQuotaEntity::user_client(None, None),
            ClientQuotaEntity::user_client(None, Some("c")),
            ClientQuotaEntity::user(Some("u")),
            ClientQuotaEntity::user_client(Some("u"), None),
            ClientQuotaEntity::user_client(Some("u"), Some("c")),
        ];
        let mut quotas = ClientQuotas::default();
        assert_eq!(quotas.resolve(P, "u", "c"), None);
        for (i, entity) in levels.iter().enumerate() {
            quotas.set(entity, P.name(), Some(i as f64 + 1.0));
            let (_, value) = quotas.resolve(P, "u", "c").unwrap();
            assert_eq!(value, i as f64 + 1.0, "level {entity:?}");
        }
    }

    #[test]
    fn a_default_quota_is_measured_per_user_or_client_apart() {
        let quotas = with(&[(ClientQuotaEntity::user(None), 10.0)]);
        let (alice, _) = quotas.resolve(P, "alice", "x").unwrap();
        let (bob, _) = quotas.resolve(P, "bob", "x").unwrap();
        assert_ne!(alice, bob);
        assert_eq!(
            alice.client_id, "",
            "a user quota spans the user's client ids"
        );
        let quotas = with(&[(ClientQuotaEntity::client(None), 10.0)]);
        let (metric, _) = quotas.resolve(P, "alice", "x").unwrap();
        assert_eq!((metric.user.as_str(), metric.client_id.as_str()), ("", "x"));
    }

    #[test]
    fn other_users_and_keys_do_not_match() {
        let quotas = with(&[(ClientQuotaEntity::user(Some("alice")), 10.0)]);
        assert_eq!(quotas.resolve(P, "bob", "c"), None);
        assert_eq!(
            quotas.resolve(QuotaKey::ConsumerByteRate, "alice", "c"),
            None
        );
        assert!(quotas.resolve(P, "alice", "c").is_some());
    }

    #[test]
    fn removing_the_last_key_removes_the_entity() {
        let entity = ClientQuotaEntity::user(Some("a"));
        let mut quotas = with(&[(entity.clone(), 1.0)]);
        quotas.set(&entity, P.name(), None);
        assert!(quotas.is_empty());
    }

    #[test]
    fn describe_matches_exact_default_and_specified_with_strict() {
        let quotas = with(&[
            (ClientQuotaEntity::user(Some("a")), 1.0),
            (ClientQuotaEntity::user(None), 2.0),
            (ClientQuotaEntity::user_client(Some("a"), Some("c")), 3.0),
            (ClientQuotaEntity::client(Some("c")), 4.0),
        ]);
        let count = |exact: &[(&str, Option<&str>)], specified: &[&str], strict| {
            let exact: BTreeMap<String, EntityName> = exact
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(String::from)))
                .collect();
            let specified: Vec<String> = specified.iter().map(|s| s.to_string()).collect();
            quotas.describe(&exact, &specified, strict).count()
        };
        assert_eq!(count(&[(USER, Some("a"))], &[], false), 2);
        assert_eq!(count(&[(USER, Some("a"))], &[], true), 1);
        assert_eq!(count(&[(USER, None)], &[], false), 1);
        assert_eq!(count(&[], &[USER], false), 3);
        assert_eq!(count(&[], &[USER], true), 2);
        assert_eq!(count(&[], &[CLIENT_ID], false), 2);
        assert_eq!(count(&[], &[], false), 4);
        assert_eq!(count(&[], &[], true), 0);
    }

    #[test]
    fn a_default_entity_stays_apart_from_an_absent_type_when_stored() {
        for entity in [
            ClientQuotaEntity::user(None),
            ClientQuotaEntity::client(None),
            ClientQuotaEntity::user_client(None, Some("c")),
        ] {
            let bytes = rmp_serde::to_vec_named(&entity).unwrap();
            assert_eq!(
                rmp_serde::from_slice::<ClientQuotaEntity>(&bytes).unwrap(),
                entity
            );
        }
    }

    #[test]
    fn values_are_checked_as_kafka_types_them() {
        assert!(P.check_value(1024.0).is_ok());
        assert!(P.check_value(10.5).is_err());
        assert!(P.check_value(0.0).is_err());
        assert!(QuotaKey::RequestPercentage.check_value(12.5).is_ok());
        assert!(QuotaKey::from_name("bogus").is_none());
    }
}
