//! SCRAM credentials on the metadata actor (a child module of `metadata`), with Kafka's
//! rules (`ScramControlManager`, `ScramImage.describe`): a user named twice in one
//! AlterUserScramCredentials is DUPLICATE_RESOURCE, an empty name or an iteration count
//! outside 4096..=16384 UNACCEPTABLE_CREDENTIAL, an unknown mechanism
//! UNSUPPORTED_SASL_MECHANISM, deleting what is not there RESOURCE_NOT_FOUND. Each change is
//! a record, fsynced before it is applied and answered.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use tracing::info;

use super::{MetadataRecord, MetadataState, ScramDeletion, ScramDescription, ScramUpsertion};
use crate::error::ScramCredentialError;
use crate::security::scram::{self, ScramCredential, ScramMechanism};
use crate::storage::{Storage, StorageError};

/// `broker user add`: appends `record` (a credential from `offline_credential`) to a
/// stopped broker's metadata record file (the role of `kafka-storage format --add-scram`),
/// for the first administrator. The broker must not be running: the record file has one
/// writer.
pub fn add_user_offline(
    storage: Arc<dyn Storage>,
    data_dir: &Path,
    record: &MetadataRecord,
) -> Result<(), OfflineUserError> {
    let (mut store, _) = super::record_replay::open_and_replay(storage, data_dir)?;
    store.append(record)?;
    Ok(())
}

/// The record `broker user add` writes, in single-node mode and on a cluster voter alike:
/// `user`'s credential for `mechanism` with a new salt, once the checks below pass.
pub fn offline_credential(
    user: &str,
    mechanism: ScramMechanism,
    password: &[u8],
    iterations: i32,
) -> Result<MetadataRecord, OfflineUserError> {
    validate_offline_user(user, password, iterations)?;
    let c = ScramCredential::from_password(mechanism, password, scram::new_salt(), iterations);
    Ok(MetadataRecord::ScramCredentialUpserted {
        user: user.to_string(),
        mechanism,
        salt: c.salt,
        stored_key: c.stored_key,
        server_key: c.server_key,
        iterations,
    })
}

/// What `broker user add` checks before it writes anything, in single-node mode and on a
/// cluster voter alike: a name, a password, and Kafka's iteration bounds.
fn validate_offline_user(
    user: &str,
    password: &[u8],
    iterations: i32,
) -> Result<(), OfflineUserError> {
    if user.is_empty() {
        return Err(OfflineUserError::Invalid("the user name is empty".into()));
    }
    if password.is_empty() {
        return Err(OfflineUserError::Invalid("the password is empty".into()));
    }
    if !(ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS).contains(&iterations) {
        return Err(OfflineUserError::Invalid(format!(
            "iterations must be between {} and {}",
            ScramMechanism::MIN_ITERATIONS,
            ScramMechanism::MAX_ITERATIONS
        )));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineUserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

const TWICE: &str = "A user credential cannot be altered twice in the same request";

impl MetadataState {
    pub(super) fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        self.image.scram.get(user)?.get(&mechanism).cloned()
    }

    pub(super) fn describe_scram_credentials(
        &self,
        users: Option<Vec<String>>,
    ) -> Vec<(String, ScramDescription)> {
        let users = match users {
            Some(users) if !users.is_empty() => users,
            _ => self.image.scram.keys().cloned().collect(),
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for user in &users {
            *seen.entry(user.as_str()).or_default() += 1;
        }
        let mut answered = std::collections::HashSet::new();
        let mut results = Vec::new();
        for user in &users {
            if !answered.insert(user.as_str()) {
                continue;
            }
            let result = if seen[user.as_str()] > 1 {
                Err(ScramCredentialError::Duplicate(
                    "Cannot describe SCRAM credentials for the same user twice in a single request",
                ))
            } else {
                match self.image.scram.get(user) {
                    Some(mechanisms) if !mechanisms.is_empty() => {
                        Ok(mechanisms.iter().map(|(m, c)| (*m, c.iterations)).collect())
                    }
                    _ => Err(ScramCredentialError::NotFound(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    ))),
                }
            };
            results.push((user.clone(), result));
        }
        results
    }

    pub(super) async fn alter_scram_credentials(
        &mut self,
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Vec<(String, Result<(), ScramCredentialError>)> {
        // Each user once, in request order; a user altered twice fails as a whole.
        let mut order: Vec<String> = Vec::new();
        let mut changes: BTreeMap<String, Result<Change, ScramCredentialError>> = BTreeMap::new();
        let all = deletions
            .into_iter()
            .map(|d| (d.user.clone(), Change::Delete(d)))
            .chain(
                upsertions
                    .into_iter()
                    .map(|u| (u.user.clone(), Change::Upsert(u))),
            );
        for (user, change) in all {
            match changes.get(&user) {
                None => {
                    order.push(user.clone());
                    changes.insert(user, Ok(change));
                }
                Some(_) => {
                    changes.insert(user, Err(ScramCredentialError::Duplicate(TWICE)));
                }
            }
        }
        let mut results = Vec::with_capacity(order.len());
        for user in order {
            let result = match changes.remove(&user) {
                Some(Ok(change)) => self.apply_scram_change(change).await,
                Some(Err(err)) => Err(err),
                None => continue,
            };
            results.push((user, result));
        }
        results
    }

    async fn apply_scram_change(&mut self, change: Change) -> Result<(), ScramCredentialError> {
        match change {
            Change::Delete(d) => {
                let mechanism = validate(&d.user, d.mechanism)?;
                if self.scram_credential(&d.user, mechanism).is_none() {
                    return Err(ScramCredentialError::NotFound(
                        "Attempt to delete a user credential that does not exist".into(),
                    ));
                }
                self.commit(MetadataRecord::ScramCredentialDeleted {
                    user: d.user.clone(),
                    mechanism,
                })
                .await
                .map_err(|e| ScramCredentialError::Storage(e.to_string()))?;
                info!(user = %d.user, %mechanism, "Deleted a SCRAM credential.");
            }
            Change::Upsert(u) => {
                let mechanism = validate(&u.user, u.mechanism)?;
                let c = u.credential;
                if c.iterations < ScramMechanism::MIN_ITERATIONS {
                    return Err(ScramCredentialError::Unacceptable("Too few iterations"));
                }
                if c.iterations > ScramMechanism::MAX_ITERATIONS {
                    return Err(ScramCredentialError::Unacceptable("Too many iterations"));
                }
                if c.salt.is_empty() {
                    return Err(ScramCredentialError::Unacceptable("Salt must not be empty"));
                }
                self.commit(MetadataRecord::ScramCredentialUpserted {
                    user: u.user.clone(),
                    mechanism,
                    salt: c.salt,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                    iterations: c.iterations,
                })
                .await
                .map_err(|e| ScramCredentialError::Storage(e.to_string()))?;
                info!(user = %u.user, %mechanism, iterations = c.iterations, "Set a SCRAM credential.");
            }
        }
        Ok(())
    }
}

enum Change {
    Delete(ScramDeletion),
    Upsert(ScramUpsertion),
}

fn validate(
    user: &str,
    mechanism: Option<ScramMechanism>,
) -> Result<ScramMechanism, ScramCredentialError> {
    if user.is_empty() {
        return Err(ScramCredentialError::Unacceptable(
            "Username must not be empty",
        ));
    }
    mechanism.ok_or(ScramCredentialError::UnsupportedMechanism)
}
