//! The partition actor's arguments, messages and the outcomes its replies carry.

use super::*;
/// Where a partition lives and how its log behaves.
#[derive(Debug, Clone)]
pub struct PartitionArgs {
    pub topic: String,
    pub partition: i32,
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub log: LogConfig,
    pub flush_policy: FlushPolicy,
    pub flush_interval: Duration,
    pub retention_check_interval: Duration,
    /// Memory for a cleaning pass's key map (compacted topics).
    pub cleaner: crate::storage::cleaner::CleanerLimits,
    pub producer_expiry: ProducerExpiry,
    /// Set for a replicated partition (a cluster); None: single-node, no roles.
    pub replica: Option<ReplicaArgs>,
}

/// Result of an accepted append, as the Produce response reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// The stamp of a LogAppendTime topic's batches; -1 for CreateTime.
    pub log_append_time_ms: i64,
}

/// Whole batches read for a Fetch, with the offsets the response reports.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub records: Bytes,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// For read_committed: aborted transactions overlapping the records returned.
    pub aborted: Vec<AbortedTxn>,
    /// Size of the batch at the read offset when one is readable (below the bound), so a
    /// Fetch that got nothing because it did not fit can take budget for it (KIP-74).
    pub next_batch_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
    pub flushed_offset: i64,
    /// Bytes of all segments.
    pub size_bytes: u64,
}

/// ListOffsets special timestamps (Kafka's ListOffsetsRequest constants).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

pub enum PartitionMsg {
    /// Append the record batches of one Produce partition entry, in the order received.
    Append {
        records: Bytes,
        acks: i16,
        reply: RpcReplyPort<Result<AppendOutcome, PartitionError>>,
    },
    /// An Append admitted against this partition's queue budget (a Produce request): the
    /// admission is given back when the message is taken, and one whose client was
    /// already told it timed out is answered REQUEST_TIMED_OUT without appending.
    QueuedAppend {
        records: Bytes,
        acks: i16,
        reply: RpcReplyPort<Result<AppendOutcome, PartitionError>>,
        admission: crate::actors::routing::QueueAdmission,
    },
    /// Read whole batches from `offset`, below the high watermark (read_committed: below
    /// the last stable offset, with the aborted transactions in that range), once `check`
    /// passes.
    Read {
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        read_committed: bool,
        check: LeaderCheck,
        reply: RpcReplyPort<Result<ReadOutcome, PartitionError>>,
    },
    /// Answered as soon as the high watermark (read_committed: the last stable offset) is
    /// above `offset` (a parked fetch).
    WaitForData {
        offset: i64,
        read_committed: bool,
        notify: RpcReplyPort<()>,
    },
    /// (offset, timestamp, leader epoch) for a ListOffsets timestamp, once `check` passes;
    /// offset -1 when none. The epoch is the one the offset was written in (the current
    /// leader epoch for the latest offset; 0 on a single-node partition).
    ListOffset {
        timestamp: i64,
        read_committed: bool,
        check: LeaderCheck,
        reply: RpcReplyPort<Result<(i64, i64, i32), PartitionError>>,
    },
    /// Write a transaction's commit or abort marker (from the transaction coordinator);
    /// answered once an fsync covers it.
    WriteTxnMarker {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        reply: RpcReplyPort<Result<(), PartitionError>>,
    },
    /// The producers this partition remembers (DescribeProducers).
    Producers {
        reply: RpcReplyPort<Vec<ProducerSummary>>,
    },
    Offsets {
        reply: RpcReplyPort<PartitionOffsets>,
    },
    /// Write and fsync everything now (shutdown).
    Flush {
        reply: RpcReplyPort<Result<(), PartitionError>>,
    },
    /// Move the partition's directory aside for deletion and stop.
    Delete { reply: RpcReplyPort<()> },
    /// A background fsync finished.
    FlushDone {
        up_to: i64,
        result: std::io::Result<()>,
    },
    /// The background flush interval passed.
    FlushTick,
    /// The retention check interval passed: apply retention by the system clock.
    RetentionTick,
    /// Apply retention as of `now_ms` (tests drive the clock); answers (segments deleted,
    /// log start offset).
    ApplyRetention {
        now_ms: i64,
        reply: RpcReplyPort<(usize, i64)>,
    },
    /// New topic configs (AlterConfigs): take them from now on.
    UpdateConfig { log: LogConfig },
    /// A cleaning pass finished on its blocking thread.
    CleaningDone {
        outcome: Result<CleanOutcome, StorageError>,
        started: std::time::Instant,
    },
    /// DeleteRecords: move the log start offset to `offset` (-1: the high watermark);
    /// answers the new log start offset (the low watermark).
    DeleteRecords {
        offset: i64,
        reply: RpcReplyPort<Result<i64, PartitionError>>,
    },
    /// The producer id expiration check interval passed: expire by the system clock.
    ProducerExpiryTick,
    /// Expire idle producers as of `now_ms` (tests drive the clock); answers how many.
    ExpireProducers {
        now_ms: i64,
        reply: RpcReplyPort<usize>,
    },
    /// Roles, follower fetches and ISR changes of a replicated partition (see
    /// `replication::ReplicationMsg`); refused by a single-node one.
    Replication(ReplicationMsg),
}

impl crate::metrics::ActorKind for PartitionMsg {
    const KIND: &'static str = "partition";
}
