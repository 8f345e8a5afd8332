//! DescribeTopicPartitions v0 (KIP-966) against a real broker: sorted topics, partitions
//! paged by response_partition_limit with a cursor, unknown topics, a cursor outside the
//! request.

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::*;

use crate::harness::TestBroker;
use crate::hostile_wire::{topic, Wire};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;

fn describe(
    wire: &mut Wire,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(topic(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(topic(t))
                .with_partition_index(p)
        }));
    wire.call(0, &req)
        .expect("DescribeTopicPartitions answered")
}

/// One topic of an answer: name, error code, partition indexes.
type TopicSummary = (String, i16, Vec<i32>);

/// Each topic of an answer, and the next cursor.
fn summary(r: &DescribeTopicPartitionsResponse) -> (Vec<TopicSummary>, Option<(String, i32)>) {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

fn s(t: &str) -> String {
    t.to_string()
}

#[test]
fn topics_come_sorted_and_partitions_page_with_a_cursor() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("c", 1);
    wire.create_topic("a", 3);
    wire.create_topic("b", 2);

    // Every topic, four partitions a page.
    let first = describe(&mut wire, &[], 4, None);
    assert_eq!(
        summary(&first),
        (
            vec![(s("a"), 0, vec![0, 1, 2]), (s("b"), 0, vec![0])],
            Some((s("b"), 1))
        )
    );
    let a = &first.topics[0];
    assert_eq!(a.partitions[0].replica_nodes.len(), 1);
    assert_eq!(a.partitions[0].leader_id, a.partitions[0].isr_nodes[0]);
    assert_ne!(a.topic_id, uuid::Uuid::nil());
    let second = describe(&mut wire, &[], 4, Some(("b", 1)));
    assert_eq!(
        summary(&second),
        (vec![(s("b"), 0, vec![1]), (s("c"), 0, vec![0])], None)
    );

    // A page that ends exactly at a topic's last partition points at the next topic.
    assert_eq!(
        summary(&describe(&mut wire, &["b", "a"], 3, None)),
        (vec![(s("a"), 0, vec![0, 1, 2])], Some((s("b"), 0)))
    );

    // Requested names, sorted and deduplicated; an unknown one gets its error.
    assert_eq!(
        summary(&describe(&mut wire, &["c", "nope", "a", "c"], 2000, None)),
        (
            vec![
                (s("a"), 0, vec![0, 1, 2]),
                (s("c"), 0, vec![0]),
                (s("nope"), UNKNOWN_TOPIC_OR_PARTITION, vec![]),
            ],
            None
        )
    );

    // A cursor naming a topic outside the request is refused.
    let refused = describe(&mut wire, &["a"], 10, Some(("b", 0)));
    assert_eq!(refused.topics[0].error_code, INVALID_REQUEST);
}
