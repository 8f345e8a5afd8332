//! Typed errors of the actors, and the one place where they become Kafka error codes.

use kafka_protocol::ResponseError;

use crate::storage::producer_state::SequenceError;
use crate::storage::record_validator::RecordErrors;
use crate::storage::StorageError;

/// Why a partition refused a request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PartitionError {
    #[error("record batch failed its CRC or length check: {0}")]
    CorruptMessage(String),
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// Some records of a batch were refused (KIP-467): INVALID_TIMESTAMP when one was for
    /// its timestamp, else INVALID_RECORD, with each refused record's index.
    #[error("{}", .0.summary())]
    InvalidRecords(Box<RecordErrors>),
    #[error("record batch of {0} bytes is larger than the limit")]
    MessageTooLarge(usize),
    #[error("offset out of range")]
    OffsetOutOfRange,
    #[error("the partition's storage failed")]
    StorageFailed,
    #[error("the partition is not available")]
    NotAvailable,
    #[error("invalid request")]
    InvalidRequest,
    #[error("{0}")]
    OutOfOrderSequence(String),
    #[error("{0}")]
    InvalidProducerEpoch(String),
    /// The request's timeout passed before the partition took it, or its queue was full.
    #[error("the request timed out before the partition took it")]
    TimedOut,
    /// acks=all while the ISR is smaller than min.insync.replicas: nothing was appended.
    #[error("fewer in-sync replicas than min.insync.replicas")]
    NotEnoughReplicas,
    /// Appended, but the ISR shrank below min.insync.replicas before it was replicated.
    #[error("appended, but to fewer in-sync replicas than min.insync.replicas")]
    NotEnoughReplicasAfterAppend,
    /// The request's leader epoch is older than the partition's.
    #[error("the request's leader epoch is older than the partition's")]
    FencedLeaderEpoch,
    /// The request's leader epoch is newer than the partition's.
    #[error("the request's leader epoch is newer than the partition's")]
    UnknownLeaderEpoch,
    /// A transaction marker from a coordinator older than the producer's last one.
    #[error("{0}")]
    TransactionCoordinatorFenced(String),
}

impl From<StorageError> for PartitionError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::CorruptBatch(reason) => PartitionError::CorruptMessage(reason),
            StorageError::InvalidBatch(reason) => PartitionError::InvalidRecord(reason),
            StorageError::BatchTooLarge { size, .. } => PartitionError::MessageTooLarge(size),
            StorageError::OffsetOutOfRange { .. } => PartitionError::OffsetOutOfRange,
            StorageError::Sequence(e @ SequenceError::OutOfOrder { .. }) => {
                PartitionError::OutOfOrderSequence(e.to_string())
            }
            StorageError::Sequence(e @ SequenceError::InvalidEpoch { .. }) => {
                PartitionError::InvalidProducerEpoch(e.to_string())
            }
            StorageError::Sequence(e @ SequenceError::CoordinatorFenced { .. }) => {
                PartitionError::TransactionCoordinatorFenced(e.to_string())
            }
            _ => PartitionError::StorageFailed,
        }
    }
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        let err = match self {
            PartitionError::CorruptMessage(_) => ResponseError::CorruptMessage,
            PartitionError::InvalidRecord(_) => ResponseError::InvalidRecord,
            PartitionError::InvalidRecords(e) if e.is_timestamp() => {
                ResponseError::InvalidTimestamp
            }
            PartitionError::InvalidRecords(_) => ResponseError::InvalidRecord,
            PartitionError::MessageTooLarge(_) => ResponseError::MessageTooLarge,
            PartitionError::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
            PartitionError::StorageFailed => ResponseError::KafkaStorageError,
            PartitionError::NotAvailable => ResponseError::NotLeaderOrFollower,
            PartitionError::InvalidRequest => ResponseError::InvalidRequest,
            PartitionError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
            PartitionError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            PartitionError::TimedOut => ResponseError::RequestTimedOut,
            PartitionError::NotEnoughReplicas => ResponseError::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            PartitionError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
            PartitionError::TransactionCoordinatorFenced(_) => {
                ResponseError::TransactionCoordinatorFenced
            }
        };
        err.code()
    }
}

/// Why the metadata actor refused a topic change.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("topic already exists")]
    TopicExists,
    #[error("unknown topic")]
    UnknownTopic,
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("metadata storage failed: {0}")]
    Storage(String),
    #[error("the metadata actor is not available")]
    Unavailable,
    #[error("timed out before the topic's partitions started; creation continues")]
    TimedOut,
    #[error("the metadata quorum did not take the change: {0}")]
    Quorum(String),
}

impl MetadataError {
    pub fn code(&self) -> i16 {
        let err = match self {
            MetadataError::TopicExists => ResponseError::TopicAlreadyExists,
            MetadataError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
            MetadataError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            MetadataError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig,
            MetadataError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            MetadataError::InvalidRequest(_) => ResponseError::InvalidRequest,
            MetadataError::Storage(_) => ResponseError::KafkaStorageError,
            MetadataError::Unavailable => ResponseError::CoordinatorNotAvailable,
            MetadataError::TimedOut => ResponseError::RequestTimedOut,
            MetadataError::Quorum(_) => ResponseError::NotController,
        };
        err.code()
    }
}

/// Why one user's SCRAM credential could not be described or altered (KIP-554).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScramCredentialError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Duplicate(&'static str),
    #[error("Unknown SCRAM mechanism")]
    UnsupportedMechanism,
    #[error("{0}")]
    Unacceptable(&'static str),
    #[error("metadata storage failed: {0}")]
    Storage(String),
    #[error("the metadata actor is not available")]
    Unavailable,
}

impl ScramCredentialError {
    pub fn code(&self) -> i16 {
        let err = match self {
            ScramCredentialError::NotFound(_) => ResponseError::ResourceNotFound,
            ScramCredentialError::Duplicate(_) => ResponseError::DuplicateResource,
            ScramCredentialError::UnsupportedMechanism => ResponseError::UnsupportedSaslMechanism,
            ScramCredentialError::Unacceptable(_) => ResponseError::UnacceptableCredential,
            ScramCredentialError::Storage(_) => ResponseError::KafkaStorageError,
            ScramCredentialError::Unavailable => ResponseError::CoordinatorNotAvailable,
        };
        err.code()
    }
}
