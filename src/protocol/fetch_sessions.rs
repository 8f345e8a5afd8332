//! The mailbox of the broker-wide fetch session cache (`fetch_session_cache`, KIP-227): one
//! task owns the cache and serves Fetch handlers through it, so no lock guards it. Also the
//! conversions between a Fetch request's topics and a session's partition keys.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

pub use crate::protocol::fetch_session_cache::{
    owned, Answered, Cache, Context, PartitionKey, Requested, ENTRY_BYTES, FINAL_EPOCH,
    INITIAL_EPOCH,
};

/// Requests queued for the cache's task before handlers wait for room.
const MAILBOX: usize = 1024;

enum Msg {
    Begin {
        session_id: i32,
        epoch: i32,
        uses_ids: bool,
        changes: Vec<Requested>,
        forgotten: Vec<PartitionKey>,
        limit: usize,
        reply: oneshot::Sender<Context>,
    },
    Create {
        uses_ids: bool,
        partitions: Vec<(Requested, Answered)>,
        limit: usize,
        reply: oneshot::Sender<i32>,
    },
    Respond {
        session_id: i32,
        epoch: i32,
        answers: Vec<(PartitionKey, Answered)>,
        reply: oneshot::Sender<Result<Vec<bool>, i16>>,
    },
}

/// The mailbox of the broker-wide session cache.
#[derive(Clone)]
pub struct FetchSessions {
    tx: mpsc::Sender<Msg>,
}

impl FetchSessions {
    /// Starts the cache's task (on the current runtime); it ends when every handle is gone.
    pub fn start(slots: usize, eviction: Duration) -> FetchSessions {
        let (tx, mut rx) = mpsc::channel(MAILBOX);
        let mut cache = Cache::new(slots, eviction);
        let sessions_gauge = metrics::gauge!(crate::metrics::FETCH_SESSIONS);
        let partitions_gauge = metrics::gauge!(crate::metrics::FETCH_SESSION_PARTITIONS);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let now = Instant::now();
                match msg {
                    Msg::Begin {
                        session_id,
                        epoch,
                        uses_ids,
                        changes,
                        forgotten,
                        limit,
                        reply,
                    } => {
                        let context = cache
                            .begin(now, session_id, epoch, uses_ids, changes, forgotten, limit);
                        let _ = reply.send(context);
                    }
                    Msg::Create {
                        uses_ids,
                        partitions,
                        limit,
                        reply,
                    } => {
                        let _ = reply.send(cache.create(now, uses_ids, partitions, limit));
                    }
                    Msg::Respond {
                        session_id,
                        epoch,
                        answers,
                        reply,
                    } => {
                        let _ = reply.send(cache.respond(session_id, epoch, answers));
                    }
                }
                sessions_gauge.set(cache.len() as f64);
                partitions_gauge.set(cache.partitions() as f64);
            }
        });
        FetchSessions { tx }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn begin(
        &self,
        session_id: i32,
        epoch: i32,
        uses_ids: bool,
        changes: Vec<Requested>,
        forgotten: Vec<PartitionKey>,
        limit: usize,
    ) -> Context {
        let msg = |reply| Msg::Begin {
            session_id,
            epoch,
            uses_ids,
            changes,
            forgotten,
            limit,
            reply,
        };
        self.call(msg, || gone(epoch)).await
    }

    pub async fn create(
        &self,
        uses_ids: bool,
        partitions: Vec<(Requested, Answered)>,
        limit: usize,
    ) -> i32 {
        let msg = |reply| Msg::Create {
            uses_ids,
            partitions,
            limit,
            reply,
        };
        self.call(msg, || 0).await
    }

    pub async fn respond(
        &self,
        session_id: i32,
        epoch: i32,
        answers: Vec<(PartitionKey, Answered)>,
    ) -> Result<Vec<bool>, i16> {
        let msg = |reply| Msg::Respond {
            session_id,
            epoch,
            answers,
            reply,
        };
        self.call(msg, || Err(ResponseError::FetchSessionIdNotFound.code()))
            .await
    }

    /// Sends the cache's task a message and awaits its reply; `gone` answers when the
    /// task has stopped (the broker is shutting down).
    async fn call<T>(
        &self,
        msg: impl FnOnce(oneshot::Sender<T>) -> Msg,
        gone: impl FnOnce() -> T,
    ) -> T {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(msg(reply)).await.is_err() {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }
}

/// The cache's task is gone (the broker is stopping): no sessions.
fn gone(epoch: i32) -> Context {
    if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
        Context::Sessionless
    } else {
        Context::Error(ResponseError::FetchSessionIdNotFound.code())
    }
}

/// A topic as a session keys it: by id (v13+) or by name, copied out of the frame.
fn topic_key(uses_ids: bool, id: Uuid, name: &TopicName) -> (Uuid, TopicName) {
    if uses_ids {
        (id, TopicName::default())
    } else {
        (Uuid::nil(), owned(name))
    }
}

/// The request's partitions as a session keys them, names copied out of the frame.
pub fn requested(topics: &[FetchTopic], uses_ids: bool) -> Vec<Requested> {
    topics
        .iter()
        .flat_map(|t| {
            let (id, name) = topic_key(uses_ids, t.topic_id, &t.topic);
            t.partitions.iter().map(move |p| Requested {
                key: (id, name.clone(), p.partition),
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
            })
        })
        .collect()
}

pub fn forgotten(req: &FetchRequest, uses_ids: bool) -> Vec<PartitionKey> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let (id, name) = topic_key(uses_ids, t.topic_id, &t.topic);
            t.partitions.iter().map(move |&p| (id, name.clone(), p))
        })
        .collect()
}

/// A session's partitions as request topics (consecutive partitions of a topic together),
/// so they are resolved as a request's are.
pub fn as_fetch_topics(partitions: &[Requested], uses_ids: bool) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for r in partitions {
        let (id, name, index) = &r.key;
        let same = topics.last().is_some_and(|t| {
            if uses_ids {
                t.topic_id == *id
            } else {
                t.topic == *name
            }
        });
        if !same {
            topics.push(
                FetchTopic::default()
                    .with_topic(name.clone())
                    .with_topic_id(*id),
            );
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(
                FetchPartition::default()
                    .with_partition(*index)
                    .with_fetch_offset(r.offset)
                    .with_partition_max_bytes(r.max_bytes)
                    .with_current_leader_epoch(r.current_leader_epoch),
            );
        }
    }
    topics
}
