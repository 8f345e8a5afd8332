//! Incremental fetch sessions (KIP-227), as Kafka's FetchSession.scala keeps them.
//!
//! A full Fetch with epoch 0 creates a session when the cache has a free slot or can evict
//! one; its answer carries the new session id. Later Fetches name the session with the next
//! epoch and list only the partitions whose fetch offset or limit changed, and the ones to
//! forget; the broker reads every partition of the session and answers only those with
//! records or with a changed high watermark, log start offset, last stable offset or an
//! error. Epoch -1 (FINAL_EPOCH) closes the named session and is answered without one.
//!
//! One owner: the cache is state of one task, reached through its mailbox; no lock.
//! Bounds: at most `max_incremental_fetch_session_cache_slots` sessions, each holding at
//! most as many partitions as exist on the broker, keyed by topic id or by a topic name no
//! longer than Kafka's 249 bytes. A request that would pass either is answered without a
//! session (a full fetch) or FETCH_SESSION_ID_NOT_FOUND after closing the session (an
//! incremental one), so the client starts over. So the cache holds at most
//! slots x partitions x `ENTRY_BYTES` (192 B), plus for sessions by name (below v13) up to
//! 249 bytes of topic name per partition (shared by the partitions one request names).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use tracing::{debug, warn};
use uuid::Uuid;

pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;
/// Kafka's longest topic name: no session keeps a longer one, as no such topic can exist.
const MAX_TOPIC_NAME: usize = 249;

/// A partition as a session knows it: by topic id from Fetch v13 (the name empty), by
/// topic name before (the id nil).
pub type PartitionKey = (Uuid, TopicName, i32);

/// Memory of one cached partition: its key in the map and in the order, and its state
/// (the name's own bytes, at most 249, come on top for sessions by name).
/// 192 bytes on 64-bit targets, checked below.
pub const ENTRY_BYTES: usize =
    2 * std::mem::size_of::<PartitionKey>() + std::mem::size_of::<Cached>() + 32;

// The bound docs/RELIABILITY.md and README.md state.
const _: () = assert!(ENTRY_BYTES <= 192);

/// A partition named by a request, with its fetch offset and limit.
#[derive(Debug, Clone)]
pub struct Requested {
    pub key: PartitionKey,
    pub offset: i64,
    pub max_bytes: i32,
    /// The requester's leader epoch (-1: not checked), kept so that an incremental fetch
    /// of a partition it does not list is still checked against the epoch it last named
    /// (Kafka's CachedPartition.leaderEpoch): a replica fetcher's session relies on it.
    pub current_leader_epoch: i32,
}

/// What a response said of one partition.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    pub has_records: bool,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub error: i16,
    /// KIP-392: sent to a closer replica (always answered, as Kafka's session does).
    pub redirected: bool,
}

/// How one Fetch is served.
#[derive(Debug)]
pub enum Context {
    /// The request's partitions, answered with session id 0.
    Sessionless,
    /// The request's partitions; a session is created from the answer if there is room.
    Full,
    /// The session's partitions, in its order; the answer lists only what changed.
    Incremental {
        session_id: i32,
        /// The session's epoch once this request is answered.
        epoch: i32,
        partitions: Vec<Requested>,
    },
    /// A top-level error with no partitions: the client starts over.
    Error(i16),
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    order: u64,
}

struct Session {
    uses_ids: bool,
    /// The epoch the next request must carry.
    epoch: i32,
    partitions: HashMap<PartitionKey, Cached>,
    /// The order partitions are read and answered in: those that returned records move to
    /// the end, so one busy partition does not take every response's bytes.
    order: BTreeMap<u64, PartitionKey>,
    next_order: u64,
    created: Instant,
    last_used: Instant,
    /// Older than the eviction time when last used (Kafka's evictableByAll): a session
    /// with more partitions may take its slot.
    evictable: bool,
}

impl Session {
    fn push(&mut self, key: PartitionKey, cached: Cached) {
        let order = self.next_order;
        self.next_order += 1;
        self.order.insert(order, key.clone());
        self.partitions.insert(key, Cached { order, ..cached });
    }

    fn remove(&mut self, key: &PartitionKey) {
        if let Some(c) = self.partitions.remove(key) {
            self.order.remove(&c.order);
        }
    }

    fn move_to_end(&mut self, key: &PartitionKey) {
        if let Some(c) = self.partitions.get(key).copied() {
            self.order.remove(&c.order);
            self.push(key.clone(), c);
        }
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

fn name_too_long(key: &PartitionKey) -> bool {
    key.1.len() > MAX_TOPIC_NAME
}

/// A topic name that owns its bytes (a request's names point into its whole frame).
pub fn owned(name: &TopicName) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The session cache itself: plain state, owned by the task `fetch_sessions::FetchSessions`
/// starts.
pub struct Cache {
    slots: usize,
    eviction: Duration,
    sessions: HashMap<i32, Session>,
}

impl Cache {
    pub fn new(slots: usize, eviction: Duration) -> Cache {
        Cache {
            slots,
            eviction,
            sessions: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Partitions cached over all sessions.
    pub fn partitions(&self) -> usize {
        self.sessions.values().map(|s| s.partitions.len()).sum()
    }

    /// Kafka's FetchManager.newContext. `limit`: the partitions that exist.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &mut self,
        now: Instant,
        session_id: i32,
        epoch: i32,
        uses_ids: bool,
        changes: Vec<Requested>,
        forgotten: Vec<PartitionKey>,
        limit: usize,
    ) -> Context {
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // A full fetch closes the session it names.
            if session_id != 0 && self.sessions.remove(&session_id).is_some() {
                debug!(session_id, "Closed a fetch session on a full fetch.");
            }
            return if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full
            };
        }
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Context::Error(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.epoch != epoch {
            return Context::Error(ResponseError::InvalidFetchSessionEpoch.code());
        }
        if session.uses_ids != uses_ids {
            return Context::Error(ResponseError::FetchSessionTopicIdError.code());
        }
        // A partition listed twice is added once.
        let added = changes
            .iter()
            .filter(|c| !session.partitions.contains_key(&c.key))
            .map(|c| &c.key)
            .collect::<HashSet<_>>()
            .len();
        if session.partitions.len() + added > limit || changes.iter().any(|c| name_too_long(&c.key))
        {
            // More than could exist: close it; the client starts over with a full fetch
            // (which gets no session while it names too many).
            warn!(
                session_id,
                "Closed a fetch session that named more partitions than exist, or a topic name longer than 249 bytes."
            );
            self.sessions.remove(&session_id);
            return Context::Error(ResponseError::FetchSessionIdNotFound.code());
        }
        for c in changes {
            match session.partitions.get_mut(&c.key) {
                Some(cached) => {
                    cached.offset = c.offset;
                    cached.max_bytes = c.max_bytes;
                    cached.current_leader_epoch = c.current_leader_epoch;
                }
                // A partition new to the session is answered the first time whatever it
                // holds: nothing was sent of it yet.
                None => session.push(
                    c.key,
                    Cached {
                        offset: c.offset,
                        max_bytes: c.max_bytes,
                        current_leader_epoch: c.current_leader_epoch,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        order: 0,
                    },
                ),
            }
        }
        for key in &forgotten {
            session.remove(key);
        }
        if session.partitions.is_empty() {
            self.sessions.remove(&session_id);
            return Context::Sessionless;
        }
        session.epoch = next_epoch(epoch);
        session.last_used = now;
        session.evictable = now.duration_since(session.created) > self.eviction;
        let partitions = session
            .order
            .values()
            .map(|key| {
                let c = &session.partitions[key];
                Requested {
                    key: key.clone(),
                    offset: c.offset,
                    max_bytes: c.max_bytes,
                    current_leader_epoch: c.current_leader_epoch,
                }
            })
            .collect();
        Context::Incremental {
            session_id,
            epoch: session.epoch,
            partitions,
        }
    }

    /// Kafka's FetchSessionCache.maybeCreateSession: the new session's id, or 0 when there
    /// is no room (or the request named more than could be kept).
    pub fn create(
        &mut self,
        now: Instant,
        uses_ids: bool,
        partitions: Vec<(Requested, Answered)>,
        limit: usize,
    ) -> i32 {
        if partitions.is_empty()
            || partitions.len() > limit
            || partitions.iter().any(|(r, _)| name_too_long(&r.key))
        {
            return 0;
        }
        if self.sessions.len() >= self.slots && !self.try_evict(now, partitions.len()) {
            return 0;
        }
        let mut id = 0;
        while id == 0 || self.sessions.contains_key(&id) {
            id = (Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff) as i32;
        }
        let mut session = Session {
            uses_ids,
            epoch: next_epoch(INITIAL_EPOCH),
            partitions: HashMap::with_capacity(partitions.len()),
            order: BTreeMap::new(),
            next_order: 0,
            created: now,
            last_used: now,
            evictable: false,
        };
        for (r, a) in partitions {
            session.push(
                r.key,
                Cached {
                    offset: r.offset,
                    max_bytes: r.max_bytes,
                    current_leader_epoch: r.current_leader_epoch,
                    high_watermark: if a.error != 0 { -1 } else { a.high_watermark },
                    last_stable_offset: a.last_stable_offset,
                    log_start_offset: a.log_start_offset,
                    order: 0,
                },
            );
        }
        self.sessions.insert(id, session);
        id
    }

    /// Kafka's FetchSessionCache.tryEvict: first the least recently used session if idle
    /// past the eviction time; else the smallest session that has been evictable since its
    /// last use, if it holds fewer partitions than the newcomer.
    fn try_evict(&mut self, now: Instant, size: usize) -> bool {
        let lru = self
            .sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_used, **id))
            .map(|(id, s)| (*id, s.last_used));
        if let Some((id, last_used)) = lru {
            if now.duration_since(last_used) > self.eviction {
                debug!(session_id = id, "Evicted an idle fetch session.");
                self.sessions.remove(&id);
                return true;
            }
        }
        let smallest = self
            .sessions
            .iter()
            .filter(|(_, s)| s.evictable)
            .map(|(id, s)| (s.partitions.len(), *id))
            .min();
        match smallest {
            Some((len, id)) if size > len => {
                debug!(
                    session_id = id,
                    "Evicted a smaller fetch session for a larger one."
                );
                self.sessions.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Kafka's IncrementalFetchContext.updateAndGenerateResponseData: which partitions the
    /// answer lists (records, or a change since last sent, or an error), remembering what
    /// it sends. The epoch must still be the one `begin` set: another request with the same
    /// epoch may have come in between.
    pub fn respond(
        &mut self,
        session_id: i32,
        epoch: i32,
        answers: Vec<(PartitionKey, Answered)>,
    ) -> Result<Vec<bool>, i16> {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Err(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        }
        let mut listed = Vec::with_capacity(answers.len());
        for (key, a) in answers {
            let Some(c) = session.partitions.get_mut(&key) else {
                listed.push(true);
                continue;
            };
            let mut must = a.has_records || a.redirected;
            if c.high_watermark != a.high_watermark {
                must = true;
                c.high_watermark = a.high_watermark;
            }
            if c.log_start_offset != a.log_start_offset {
                must = true;
                c.log_start_offset = a.log_start_offset;
            }
            if c.last_stable_offset != a.last_stable_offset {
                must = true;
                c.last_stable_offset = a.last_stable_offset;
            }
            if a.error != 0 {
                // Sent again once the error goes away.
                c.high_watermark = -1;
                must = true;
            }
            if a.has_records {
                session.move_to_end(&key);
            }
            listed.push(must);
        }
        Ok(listed)
    }
}
