//! The transaction coordinator's state and messages, in the broker's own terms (the
//! handlers translate to and from the wire).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use super::group_registry::GroupRegistryMsg;
use super::metadata::MetadataMsg;
use super::routing::RoutingSnapshot;
use super::txn_loading::TxnStateTopicArgs;
use crate::storage::Storage;

/// Kafka's transaction states (TransactionState), as ListTransactions names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnStatus {
    pub fn name(&self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
        }
    }

    pub const ALL: [TxnStatus; 6] = [
        TxnStatus::Empty,
        TxnStatus::Ongoing,
        TxnStatus::PrepareCommit,
        TxnStatus::PrepareAbort,
        TxnStatus::CompleteCommit,
        TxnStatus::CompleteAbort,
    ];
}

/// Everything the coordinator knows of one transactional id; written whole to its file at
/// every state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before a bump made by the coordinator itself (a timed-out transaction),
    /// so that producer may still re-initialise (KIP-360); -1 when none.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnStatus,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    /// Wall clock when the current transaction began; -1 when none is open.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// What every transaction coordinator needs to reach.
#[derive(Clone)]
pub struct TxnDeps {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub metadata: ActorRef<MetadataMsg>,
    pub routing: RoutingSnapshot,
    pub groups: ActorRef<GroupRegistryMsg>,
    /// transaction.max.timeout.ms: a longer requested timeout is refused.
    pub max_timeout: Duration,
    /// How long a marker write may take before EndTxn answers and the coordinator retries.
    pub marker_timeout: Duration,
    /// transactional.id.expiration.ms: an idle id older than this is removed.
    pub id_expiration: Duration,
    /// How often the registry asks its coordinators to check for expiry.
    pub expiration_check_interval: Duration,
    /// How markers reach other brokers (sockets, TLS, SASL login).
    pub connector: crate::cluster::broker_client::BrokerConnector,
    /// Cluster mode: ids live on `__transaction_state`; None: in files under `dir`.
    pub transaction_state: Option<TxnStateTopicArgs>,
}

/// Errors are Kafka error codes: the coordinator's answers are the protocol's.
pub type TxnResult<T> = Result<T, i16>;

pub enum TxnMsg {
    /// InitProducerId with a transactional id. `expected`: the producer id and epoch the
    /// client already holds (KIP-360), if any. Answers (producer id, epoch).
    InitProducerId {
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        reply: RpcReplyPort<TxnResult<(i64, i16)>>,
    },
    AddPartitions {
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        reply: RpcReplyPort<TxnResult<()>>,
    },
    AddGroup {
        producer_id: i64,
        producer_epoch: i16,
        group_id: String,
        reply: RpcReplyPort<TxnResult<()>>,
    },
    EndTxn {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        reply: RpcReplyPort<TxnResult<()>>,
    },
    Describe {
        reply: RpcReplyPort<TxnMetadata>,
    },
    /// The transaction begun as number `txn` may have run past its timeout.
    TimeoutCheck {
        txn: u64,
    },
    /// Finish a transaction left in PrepareCommit/PrepareAbort (after a restart, or after
    /// a marker write failed).
    Resume,
    /// Remove this transactional id, memory and file, if it has no transaction open and
    /// its last update is `transactional.id.expiration.ms` older than `now_ms`; answers
    /// whether it did (its file is removed and it stops).
    ExpireIfIdle {
        now_ms: i64,
        reply: RpcReplyPort<bool>,
    },
}

impl crate::metrics::ActorKind for TxnMsg {
    const KIND: &'static str = "transaction";
}
