//! The consumer group protocol's broker configs (Kafka's GroupCoordinatorConfig
//! `group.consumer.*`): session timeout, heartbeat interval, server-side assignors and the
//! migration policy between classic and consumer groups.

use std::time::Duration;

use super::assignors;

/// Kafka's group.consumer.migration.policy: whether an empty group of one protocol may
/// become a group of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    Bidirectional,
}

impl MigrationPolicy {
    pub fn parse(s: &str) -> Option<MigrationPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "disabled" => Some(MigrationPolicy::Disabled),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            _ => None,
        }
    }
    /// Classic -> consumer.
    pub fn upgrade(&self) -> bool {
        matches!(
            self,
            MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional
        )
    }
    /// Consumer -> classic.
    pub fn downgrade(&self) -> bool {
        matches!(
            self,
            MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional
        )
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupSettings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Assignor names, the first the default.
    pub assignors: Vec<String>,
    pub migration_policy: MigrationPolicy,
}

impl Default for ConsumerGroupSettings {
    /// Kafka's defaults.
    fn default() -> Self {
        ConsumerGroupSettings {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
            assignors: assignors::ASSIGNORS.iter().map(|a| a.to_string()).collect(),
            migration_policy: MigrationPolicy::Bidirectional,
        }
    }
}

/// The broker config's consumer group keys are usable: known assignors (at least one), a
/// known migration policy, a heartbeat interval shorter than the session timeout.
pub fn check_config(
    assignors: &[String],
    policy: &str,
    session_timeout_ms: u64,
    heartbeat_interval_ms: u64,
) -> Result<(), String> {
    if assignors.is_empty() {
        return Err("group_consumer_assignors must name at least one assignor".into());
    }
    if let Some(unknown) = assignors
        .iter()
        .find(|a| !assignors::ASSIGNORS.contains(&a.as_str()))
    {
        return Err(format!(
            "group_consumer_assignors: unknown assignor {unknown} (known: uniform, range)"
        ));
    }
    if MigrationPolicy::parse(policy).is_none() {
        return Err(format!("group_consumer_migration_policy: unknown policy {policy} (disabled, upgrade, downgrade, bidirectional)"));
    }
    if heartbeat_interval_ms == 0 || heartbeat_interval_ms >= session_timeout_ms {
        return Err("group_consumer_heartbeat_interval_ms must be at least 1 and below group_consumer_session_timeout_ms".into());
    }
    Ok(())
}
