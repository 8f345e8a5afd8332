//! Client quotas (KIP-546 and Kafka's ClientQuotaManager): which quota applies to whom
//! (`entity`), how usage is measured (`sensor`), the one owner of the measured rates
//! (`manager`), and how a request is throttled (`enforce`).
//!
//! The quota configs are records in the metadata log, owned by the metadata actor, which
//! publishes them in every routing snapshot; connections read them from there.

pub mod enforce;
pub mod entity;
pub mod manager;
pub mod sensor;

pub use entity::{ClientQuotaEntity, ClientQuotas, QuotaKey};
pub use manager::ClientQuotaManager;
pub use sensor::QuotaWindows;
