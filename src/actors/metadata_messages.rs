//! What the metadata actor accepts, and the durable records it writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::routing::{RoutingTable, TopicRoute};
use crate::config::Config;
use crate::error::{MetadataError, ScramCredentialError};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::storage::Storage;

/// One durable change to the topic set, replayed in order on start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum MetadataRecord {
    TopicCreated {
        name: String,
        id: u128,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    PartitionsCreated {
        name: String,
        partitions: i32,
    },
    TopicDeleted {
        name: String,
    },
    /// Producer ids below `end` may have been handed out; a restart continues from `end`.
    ProducerIdBlock {
        end: i64,
    },
    /// A topic's config overrides after AlterConfigs or IncrementalAlterConfigs.
    TopicConfigsChanged {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Both dynamic broker config layers after a change to either.
    BrokerConfigsChanged {
        dynamic: crate::broker_config::DynamicBrokerConfigs,
    },
    /// A user's SCRAM credential for one mechanism, set or replaced
    /// (AlterUserScramCredentials): the salted keys, never the password.
    ScramCredentialUpserted {
        user: String,
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    ScramCredentialDeleted {
        user: String,
        mechanism: ScramMechanism,
    },
    // Cluster mode (written through the metadata quorum). New variants go at the end: the
    // enum is serialized by index in Raft logs and snapshots.
    /// A broker registered (or came back with a new epoch or address); unfenced.
    BrokerRegistered {
        id: i32,
        epoch: i64,
        host: String,
        port: i32,
        rack: Option<String>,
        /// Every listener's advertised address (absent in records written before).
        #[serde(default)]
        listeners: Vec<super::metadata::BrokerListener>,
    },
    /// A broker missed its session timeout: clients no longer see it.
    BrokerFenced {
        id: i32,
    },
    /// A fenced broker heartbeats again.
    BrokerUnfenced {
        id: i32,
    },
    /// A partition's leader or ISR changed (leader -1: none in the ISR is alive). Applying
    /// it, or a `PartitionReassigned`, counts one partition epoch.
    PartitionChanged {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// A topic created with each partition's replicas; the first replica leads, all are
    /// in sync, leader epoch 0.
    TopicCreatedWithAssignments {
        name: String,
        id: u128,
        configs: BTreeMap<String, String>,
        assignments: Vec<Vec<i32>>,
    },
    /// CreatePartitions in cluster mode: the new partitions' replicas, appended in order.
    PartitionsCreatedWithAssignments {
        name: String,
        assignments: Vec<Vec<i32>>,
    },
    /// A broker claims producer ids `start..end` (cluster mode). Granted only when `start`
    /// is the end of every block so far, so two brokers never get the same ids.
    ProducerIdsClaimed {
        broker: i32,
        start: i64,
        end: i64,
    },
    /// CreateAcls: one ACL added to the authorizer's set (a duplicate changes nothing).
    AclCreated {
        acl: crate::security::acl::AclBinding,
    },
    /// DeleteAcls: one ACL removed from the authorizer's set.
    AclDeleted {
        acl: crate::security::acl::AclBinding,
    },
    /// A partition reassignment started, completed or was cancelled
    /// (AlterPartitionReassignments): the partition's whole state. While one is under way
    /// `replicas` holds the target and the replicas being removed, `adding` and `removing`
    /// say which; both empty: none under way.
    PartitionReassigned {
        topic: String,
        partition: i32,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// AlterClientQuotas: one quota key of one user and/or client-id entity set (Some) or
    /// removed (None).
    ClientQuotaChanged {
        entity: crate::quota::ClientQuotaEntity,
        key: String,
        value: Option<f64>,
    },
    /// The quorum's first leader committed the SCRAM credentials of its bootstrap file
    /// (`broker user add` on a stopped voter; `cluster::bootstrap`) just before this: no
    /// later leader applies its own file.
    ScramBootstrapped,
    /// A partition's whole state, its partition epoch included, as the compacted records
    /// hold it (Kafka's PartitionRecord in a snapshot): set as it is, no epoch counted.
    PartitionRestored {
        topic: String,
        partition: i32,
        state: super::metadata::PartitionImage,
    },
}

impl MetadataRecord {
    /// The user, mechanism and credential a `ScramCredentialUpserted` sets; None for any
    /// other record.
    pub fn scram_credential(&self) -> Option<(&str, ScramMechanism, ScramCredential)> {
        let MetadataRecord::ScramCredentialUpserted {
            user,
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        } = self
        else {
            return None;
        };
        let credential = ScramCredential {
            salt: salt.clone(),
            stored_key: stored_key.clone(),
            server_key: server_key.clone(),
            iterations: *iterations,
        };
        Some((user, *mechanism, credential))
    }
}

/// Producer ids reserved per durable record.
pub(super) const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means the broker default.
    pub num_partitions: i32,
    /// -1 means the broker default; only 1 is possible on one broker.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Manual replica assignment: each partition's replicas, in partition order (then
    /// `num_partitions` and `replication_factor` must be -1, as Kafka's).
    pub assignments: Option<Vec<Vec<i32>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

pub enum MetadataMsg {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: RpcReplyPort<Vec<Result<Arc<TopicRoute>, MetadataError>>>,
    },
    /// Auto-creation: create those of `names` that are missing and have valid names.
    EnsureTopics {
        names: Vec<String>,
        reply: RpcReplyPort<()>,
    },
    DeleteTopics {
        topics: Vec<TopicRef>,
        reply: RpcReplyPort<Vec<Result<(String, Uuid), MetadataError>>>,
    },
    CreatePartitions {
        topic: String,
        count: i32,
        /// Manual replicas of each new partition, in order (None: placed by the broker).
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        reply: RpcReplyPort<Result<(), MetadataError>>,
    },
    /// Change a topic's config overrides (persisted, then applied to its partitions at once).
    AlterTopicConfigs {
        topic: String,
        changes: Vec<crate::topic_config::ConfigChange>,
        /// AlterConfigs: the given configs replace every override.
        replace: bool,
        validate_only: bool,
        reply: RpcReplyPort<Result<(), MetadataError>>,
    },
    /// Change one layer of the dynamic broker configs (persisted, then applied to every
    /// partition whose topic does not override them).
    AlterBrokerConfigs {
        layer: crate::broker_config::BrokerLayer,
        changes: Vec<crate::topic_config::ConfigChange>,
        replace: bool,
        validate_only: bool,
        reply: RpcReplyPort<Result<(), MetadataError>>,
    },
    /// A new producer id for an idempotent producer (InitProducerId), unique across
    /// restarts.
    AllocateProducerId {
        reply: RpcReplyPort<Result<i64, MetadataError>>,
    },
    /// One user's SCRAM credential, for a connection's SASL exchange.
    ScramCredential {
        user: String,
        mechanism: ScramMechanism,
        reply: RpcReplyPort<Option<ScramCredential>>,
    },
    /// DescribeUserScramCredentials: the named users (None or empty: every user with a
    /// credential), each with its mechanisms and iteration counts.
    DescribeScramCredentials {
        users: Option<Vec<String>>,
        reply: RpcReplyPort<Vec<(String, ScramDescription)>>,
    },
    /// AlterUserScramCredentials: each user's result, in request order.
    AlterScramCredentials {
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
        reply: RpcReplyPort<Vec<(String, Result<(), ScramCredentialError>)>>,
    },
    /// CreateAcls: each ACL committed, or why not, in request order.
    CreateAcls {
        acls: Vec<crate::security::acl::AclBinding>,
        reply: RpcReplyPort<Vec<Result<(), MetadataError>>>,
    },
    /// DescribeAcls: the held ACLs the filter selects.
    DescribeAcls {
        filter: crate::security::acl_filter::AclFilter,
        reply: RpcReplyPort<Vec<crate::security::acl::AclBinding>>,
    },
    /// DeleteAcls: for each filter, the ACLs it removed, or why not.
    DeleteAcls {
        filters: Vec<crate::security::acl_filter::AclFilter>,
        reply: RpcReplyPort<Vec<Result<Vec<crate::security::acl::AclBinding>, MetadataError>>>,
    },
    /// AlterClientQuotas: each entity's keys set (Some) or removed (None), already
    /// validated; each entity's outcome, in request order.
    AlterClientQuotas {
        changes: Vec<ClientQuotaAlteration>,
        reply: RpcReplyPort<Vec<Result<(), MetadataError>>>,
    },
    /// Flush and fsync every partition, then stop them.
    Shutdown { reply: RpcReplyPort<()> },
    /// CreatePartitions' new partitions `first..`, started outside this actor; `reply`
    /// is its caller's, answered once they serve.
    PartitionsStarted {
        name: String,
        id: Uuid,
        first: i32,
        started: Vec<Result<ractor::ActorRef<super::partition::PartitionMsg>, String>>,
        reply: RpcReplyPort<Result<(), MetadataError>>,
    },
    /// A new topic's partitions, started outside this actor (see `topic_start`): each
    /// one's actor, or why its log could not be opened.
    TopicStarted {
        name: String,
        id: Uuid,
        started: Vec<Result<ractor::ActorRef<super::partition::PartitionMsg>, String>>,
    },
    /// A failed partition's restart, run outside this actor, finished (see
    /// `partition_restart`): the new actor, or why its log could not be opened.
    PartitionRestarted {
        topic: String,
        topic_id: Uuid,
        index: i32,
        started: Result<ractor::ActorRef<super::partition::PartitionMsg>, String>,
    },
    /// Cluster mode: the quorum applied more records; the actor follows the new image.
    Applied(Arc<crate::cluster::AppliedImage>),
    /// Cluster mode: the controller's applied metadata index at this broker's first
    /// answered heartbeat. Local replicas get no role before the image is that new.
    CaughtUp(u64),
    /// Cluster mode: the controller refused a partition leader's ISR change; passed on to
    /// the partition, which decides what `why` means for it.
    IsrChangeRefused {
        request: super::partition::AlterPartitionRequest,
        why: super::partition::IsrRefusal,
    },
}

impl crate::metrics::ActorKind for MetadataMsg {
    const KIND: &'static str = "metadata";
}

/// A user's SCRAM mechanisms and iteration counts, or why it cannot be described.
pub type ScramDescription = Result<Vec<(ScramMechanism, i32)>, ScramCredentialError>;

/// Remove one user's credential for one mechanism (None: an id Kafka does not know).
#[derive(Debug, Clone)]
pub struct ScramDeletion {
    pub user: String,
    pub mechanism: Option<ScramMechanism>,
}

/// Set one user's credential for one mechanism, already derived from the salted password
/// the client sent (None: a mechanism id Kafka does not know).
#[derive(Debug, Clone)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: Option<ScramMechanism>,
    pub credential: ScramCredential,
}

/// One entity's quota changes (AlterClientQuotas).
#[derive(Debug, Clone)]
pub struct ClientQuotaAlteration {
    pub entity: crate::quota::ClientQuotaEntity,
    pub ops: Vec<(crate::quota::QuotaKey, Option<f64>)>,
}

pub struct MetadataArgs {
    pub config: Arc<Config>,
    pub storage: Arc<dyn Storage>,
    pub routing: watch::Sender<Arc<RoutingTable>>,
    /// Where partition actors run (see `storage_runtime`); None: on the caller's runtime.
    pub storage_runtime: Option<tokio::runtime::Handle>,
    /// Cluster mode: records go through the metadata quorum and the image is its
    /// committed one. None: single-node mode, with the local record file.
    pub cluster: Option<crate::cluster::node::ClusterHandle>,
}
