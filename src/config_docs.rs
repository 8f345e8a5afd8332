//! What DescribeConfigs says about each config when asked (KIP-569): its type and a
//! sentence of documentation. The text describes what this broker does with the config,
//! which for the configs it applies with one value only (see `topic_config`) is that.

/// Kafka's DescribeConfigs config types (KIP-569).
pub const BOOLEAN: i8 = 1;
pub const STRING: i8 = 2;
pub const INT: i8 = 3;
pub const LONG: i8 = 5;
pub const DOUBLE: i8 = 6;
pub const LIST: i8 = 7;

/// (name, type, documentation) of every topic config.
const TOPIC: &[(&str, i8, &str)] = &[
    ("cleanup.policy", LIST, "How old segments go: `delete` removes them by retention.ms and retention.bytes, `compact` keeps the latest record of every key; both may be given."),
    ("compression.type", STRING, "The codec batches are stored with: `producer` keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd makes the broker recompress batches that differ."),
    ("delete.retention.ms", LONG, "How long a compacted topic keeps a tombstone (a record with a null value) after cleaning reached it, so consumers can see the delete."),
    ("file.delete.delay.ms", LONG, "Only 0 is accepted: segment files leave the log directory as soon as retention or the cleaner drops them."),
    ("flush.messages", LONG, "Only the default is accepted: fsync follows the broker's log.flush_policy (by default before acks=all is answered)."),
    ("flush.ms", LONG, "Only the default is accepted: fsync follows the broker's log.flush_policy (by default before acks=all is answered)."),
    ("follower.replication.throttled.replicas", LIST, "Only an empty list is accepted: this broker does not replicate yet."),
    ("index.interval.bytes", INT, "Bytes of log between two entries of the sparse offset index: smaller means faster lookups and larger indexes."),
    ("leader.replication.throttled.replicas", LIST, "Only an empty list is accepted: this broker does not replicate yet."),
    ("local.retention.bytes", LONG, "Only -2 is accepted: without tiered storage the local log is the whole log, kept by retention.bytes."),
    ("local.retention.ms", LONG, "Only -2 is accepted: without tiered storage the local log is the whole log, kept by retention.ms."),
    ("max.compaction.lag.ms", LONG, "The longest a record may stay uncleaned in a compacted topic: a dirty segment older than this is cleaned even below min.cleanable.dirty.ratio."),
    ("max.message.bytes", INT, "The largest record batch, after compression, the topic accepts; a larger one is answered MESSAGE_TOO_LARGE."),
    ("message.downconversion.enable", BOOLEAN, "Only false is accepted: only Fetch v4 and later (message format v2) is served, so records are never down-converted."),
    ("message.timestamp.after.max.ms", LONG, "How far in the future of the broker's clock a CreateTime record's timestamp may be; later is INVALID_TIMESTAMP."),
    ("message.timestamp.before.max.ms", LONG, "How far in the past of the broker's clock a CreateTime record's timestamp may be; earlier is INVALID_TIMESTAMP."),
    ("message.timestamp.type", STRING, "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the broker's time when it is appended."),
    ("min.cleanable.dirty.ratio", DOUBLE, "The share of a compacted log that must be uncleaned before a cleaning pass starts."),
    ("min.compaction.lag.ms", LONG, "The shortest time a record stays uncleaned in a compacted topic."),
    ("min.insync.replicas", INT, "The fewest in-sync replicas an acks=all produce needs; with one broker there is one, so a value above 1 makes acks=all produces fail with NOT_ENOUGH_REPLICAS."),
    ("preallocate", BOOLEAN, "Only false is accepted: segment files grow as records are appended."),
    ("remote.storage.enable", BOOLEAN, "Only false is accepted: tiered storage is not implemented."),
    ("retention.bytes", LONG, "The oldest closed segments are removed while a partition is larger than this (-1: no limit)."),
    ("retention.ms", LONG, "Closed segments whose newest record is older than this are removed (-1: kept forever)."),
    ("segment.bytes", INT, "A partition rolls a new segment file once the active one reaches this size."),
    ("segment.index.bytes", INT, "Only the default is accepted: indexes are sized by segment.bytes and index.interval.bytes."),
    ("segment.jitter.ms", LONG, "Only 0 is accepted: segments roll exactly at segment.ms."),
    ("segment.ms", LONG, "A partition rolls a new segment file once the active one has been open this long."),
    ("unclean.leader.election.enable", BOOLEAN, "Only false is accepted: a single broker has no other replica to elect."),
];

/// (name, type, documentation) of the broker configs that are not topic defaults.
const BROKER: &[(&str, i8, &str)] = &[
    ("advertised.listeners", LIST, "The address each listener tells its clients to connect to (config.toml advertised_listeners, or advertised_listener)."),
    ("auto.create.topics.enable", BOOLEAN, "Whether Metadata (when the client allows it) and Produce create a missing topic (config.toml auto_create_topics)."),
    ("broker.id", INT, "This broker's id (config.toml node_id)."),
    ("default.replication.factor", INT, "The replication factor of a topic created with -1: 1, one broker."),
    ("listeners", LIST, "The listeners, NAME://host:port each (config.toml listeners, or listen)."),
    ("log.cleaner.dedupe.buffer.size", LONG, "Memory for the cleaner's key map per pass; a pass maps only as many segments as fit (config.toml log.cleaner_dedupe_buffer_bytes)."),
    ("log.dirs", STRING, "Where partitions, metadata, group offsets and transaction state live (config.toml data_dir)."),
    ("log.flush.interval.ms", LONG, "How often each partition fsyncs what it has not yet fsynced (config.toml log.flush_interval_ms)."),
    ("log.retention.check.interval.ms", LONG, "How often each partition applies retention and checks whether a cleaning pass is due (config.toml log.retention_check_interval_ms)."),
    ("max.incremental.fetch.session.cache.slots", INT, "Incremental fetch sessions (KIP-227) the broker keeps at once; 0 turns them off (config.toml max_incremental_fetch_session_cache_slots)."),
    ("min.incremental.fetch.session.eviction.ms", INT, "A fetch session unused this long may be evicted for a new one; one created this long before its last use may be evicted for one with more partitions (config.toml min_incremental_fetch_session_eviction_ms)."),
    ("node.id", INT, "This broker's id (config.toml node_id)."),
    ("producer.id.expiration.check.interval.ms", LONG, "How often each partition forgets idle idempotent producers (config.toml producer_id_expiration_check_interval_ms)."),
    ("producer.id.expiration.ms", LONG, "A partition forgets an idempotent producer with no open transaction whose last batch is older than this (config.toml producer_id_expiration_ms)."),
    ("num.partitions", INT, "The partition count of an auto-created topic and of CreateTopics with -1 (config.toml default_partitions)."),
    ("socket.request.max.bytes", INT, "The largest request frame; a longer one closes the connection (config.toml max_request_bytes)."),
    ("transaction.remove.expired.transaction.cleanup.interval.ms", INT, "How often the transaction coordinators look for expired transactional ids (config.toml transaction_remove_expired_transaction_cleanup_interval_ms)."),
    ("transactional.id.expiration.ms", INT, "A transactional id with no transaction in progress and no update for this long is removed with its state file (config.toml transactional_id_expiration_ms)."),
];

/// The type and documentation of a topic config, or of a broker config (a topic default
/// is documented as the topic config it is the default of, named by `topic_synonym`).
pub fn describe(name: &str, topic_synonym: Option<&str>) -> (i8, Option<String>) {
    let find = |table: &[(&str, i8, &'static str)], n: &str| {
        table
            .iter()
            .find(|(t, _, _)| *t == n)
            .map(|(_, kind, doc)| (*kind, *doc))
    };
    if let Some(topic) = topic_synonym {
        if let Some((kind, doc)) = find(TOPIC, topic) {
            return (
                kind,
                Some(format!(
                    "The broker-wide default of topic config {topic}. {doc}"
                )),
            );
        }
    }
    match find(TOPIC, name).or_else(|| find(BROKER, name)) {
        Some((kind, doc)) => (kind, Some(doc.to_string())),
        None => (0, None),
    }
}
