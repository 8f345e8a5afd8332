//! The replica fetcher's side of an incremental fetch session (KIP-227), as Kafka's
//! FetchSessionHandler keeps it: the first Fetch is a full one listing every partition
//! (epoch 0), and when the leader answers with a session id, later Fetches name that
//! session with the next epoch and list only the partitions added or changed since the
//! last one (fetch offset, log start offset, leader epoch or limit), plus those to forget.
//! An idle round so names no partition at all, and the leader answers only partitions
//! with records or a changed high watermark.
//!
//! A top-level FETCH_SESSION_ID_NOT_FOUND starts over with a full fetch and no session; any
//! other error, or a round whose answer never came, starts over with a full fetch that
//! closes the old session (its id with epoch 0), as Kafka's `nextCloseExisting`.
//!
//! Plain state, owned by one replica fetcher and lent to its round task.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// Kafka's FetchMetadata.INITIAL_EPOCH: a full fetch (that creates a session).
const INITIAL_EPOCH: i32 = 0;

/// What one partition's fetch says to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionFetch {
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub leader_epoch: i32,
    pub max_bytes: i32,
}

/// The session part of one Fetch: its id and epoch, and the partitions it lists.
#[derive(Debug, Default)]
pub struct SessionFetch {
    pub session_id: i32,
    pub epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten: Vec<ForgottenTopic>,
    /// A full fetch: every partition listed.
    pub full: bool,
}

#[derive(Debug, Default)]
pub struct FetchSessionHandler {
    /// The leader's session id; 0: none.
    session_id: i32,
    /// The epoch the next Fetch carries; 0: a full fetch.
    epoch: i32,
    /// The partitions as the session holds them, once the leader takes the last Fetch.
    sent: HashMap<(String, i32), PartitionFetch>,
}

impl FetchSessionHandler {
    /// The next Fetch for `wanted` (every partition to fetch now, with what it says).
    /// The handler takes `wanted` as the session's partitions from here on; if the
    /// answer does not come, call `reset`.
    pub fn build(&mut self, wanted: &BTreeMap<(String, i32), PartitionFetch>) -> SessionFetch {
        let full = self.epoch == INITIAL_EPOCH;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for ((topic, partition), p) in wanted {
            let changed = full || self.sent.get(&(topic.clone(), *partition)) != Some(p);
            if changed {
                push_partition(&mut topics, topic, partition_of(*partition, p));
            }
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        if !full {
            let mut gone: Vec<_> = self
                .sent
                .keys()
                .filter(|k| !wanted.contains_key(*k))
                .collect();
            gone.sort();
            for (topic, partition) in gone {
                match forgotten.last_mut() {
                    Some(t) if t.topic.0.as_str() == topic => t.partitions.push(*partition),
                    _ => forgotten.push(
                        ForgottenTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
        }
        self.sent = wanted.iter().map(|(k, p)| (k.clone(), *p)).collect();
        SessionFetch {
            session_id: self.session_id,
            epoch: self.epoch,
            topics,
            forgotten,
            full,
        }
    }

    /// The leader's answer: its top-level error code and session id. True when its
    /// partitions are to be taken; false when the next Fetch starts over (full).
    pub fn handle_response(&mut self, error_code: i16, session_id: i32) -> bool {
        if error_code != 0 {
            if error_code == ResponseError::FetchSessionIdNotFound.code() {
                self.session_id = 0;
            }
            self.epoch = INITIAL_EPOCH;
            self.sent.clear();
            return false;
        }
        if session_id == 0 {
            // No session (the leader's cache is full, or it closed ours): full fetches.
            self.session_id = 0;
            self.epoch = INITIAL_EPOCH;
        } else if self.epoch == INITIAL_EPOCH || session_id != self.session_id {
            self.session_id = session_id;
            self.epoch = 1;
        } else {
            self.epoch = next_epoch(self.epoch);
        }
        true
    }

    /// The last Fetch got no answer: the next one is full and closes the session.
    pub fn reset(&mut self) {
        self.epoch = INITIAL_EPOCH;
        self.sent.clear();
    }

    /// The session the leader holds for us (0: none).
    pub fn session_id(&self) -> i32 {
        self.session_id
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn partition_of(partition: i32, p: &PartitionFetch) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_current_leader_epoch(p.leader_epoch)
        .with_fetch_offset(p.fetch_offset)
        .with_log_start_offset(p.log_start_offset)
        .with_partition_max_bytes(p.max_bytes)
}

/// Adds a partition to the request, joining consecutive partitions of one topic.
fn push_partition(topics: &mut Vec<FetchTopic>, topic: &str, partition: FetchPartition) {
    match topics.last_mut() {
        Some(t) if t.topic.0.as_str() == topic => t.partitions.push(partition),
        _ => topics.push(
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![partition]),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> PartitionFetch {
        PartitionFetch {
            fetch_offset: offset,
            log_start_offset: 0,
            leader_epoch: 3,
            max_bytes: 1024,
        }
    }

    fn listed(fetch: &SessionFetch) -> Vec<(String, i32, i64)> {
        fetch
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition, p.fetch_offset))
            })
            .collect()
    }

    #[test]
    fn a_full_fetch_then_only_changes_then_forgotten_partitions() {
        let mut handler = FetchSessionHandler::default();
        let mut wanted = BTreeMap::new();
        wanted.insert(("a".to_string(), 0), at(5));
        wanted.insert(("a".to_string(), 1), at(7));
        wanted.insert(("b".to_string(), 0), at(0));
        let first = handler.build(&wanted);
        assert!(first.full);
        assert_eq!((first.session_id, first.epoch), (0, 0));
        assert_eq!(listed(&first).len(), 3);
        assert_eq!(
            first.topics.len(),
            2,
            "partitions of one topic share an entry"
        );
        assert!(handler.handle_response(0, 42));

        // Nothing changed: an empty incremental fetch.
        let idle = handler.build(&wanted);
        assert!(!idle.full);
        assert_eq!((idle.session_id, idle.epoch), (42, 1));
        assert!(idle.topics.is_empty() && idle.forgotten.is_empty());
        assert!(handler.handle_response(0, 42));

        // One partition moved on, one is dropped.
        wanted.insert(("a".to_string(), 1), at(9));
        wanted.remove(&("b".to_string(), 0));
        let next = handler.build(&wanted);
        assert_eq!(next.epoch, 2);
        assert_eq!(listed(&next), vec![("a".to_string(), 1, 9)]);
        assert_eq!(next.forgotten.len(), 1);
        assert_eq!(next.forgotten[0].topic.0.as_str(), "b");
        assert_eq!(next.forgotten[0].partitions, vec![0]);
        assert!(handler.handle_response(0, 42));

        // A new leader epoch is a change too.
        wanted.insert(
            ("a".to_string(), 0),
            PartitionFetch {
                leader_epoch: 4,
                ..at(5)
            },
        );
        assert_eq!(
            listed(&handler.build(&wanted)),
            vec![("a".to_string(), 0, 5)]
        );
    }

    #[test]
    fn session_errors_start_over_with_a_full_fetch() {
        let mut handler = FetchSessionHandler::default();
        let mut wanted = BTreeMap::new();
        wanted.insert(("a".to_string(), 0), at(5));
        handler.build(&wanted);
        assert!(handler.handle_response(0, 42));
        handler.build(&wanted);
        // The leader lost our session's epoch: full again, closing session 42.
        let code = ResponseError::InvalidFetchSessionEpoch.code();
        assert!(!handler.handle_response(code, 0));
        let full = handler.build(&wanted);
        assert!(full.full);
        assert_eq!((full.session_id, full.epoch), (42, 0));
        assert_eq!(listed(&full).len(), 1);
        assert!(handler.handle_response(0, 43));
        assert_eq!(handler.session_id(), 43);
        // The leader forgot the session: full, and no session named.
        handler.build(&wanted);
        let code = ResponseError::FetchSessionIdNotFound.code();
        assert!(!handler.handle_response(code, 0));
        let full = handler.build(&wanted);
        assert_eq!((full.session_id, full.epoch), (0, 0));
        // No answer at all: full again.
        assert!(handler.handle_response(0, 44));
        handler.build(&wanted);
        handler.reset();
        assert!(handler.build(&wanted).full);
        // A leader without room for sessions: every fetch is full.
        assert!(handler.handle_response(0, 0));
        assert!(handler.build(&wanted).full);
    }
}
