//! Transactions across three real broker processes: a librdkafka transactional producer
//! (given all three addresses) writes to a topic whose three partitions are led by three
//! different brokers, so its transaction coordinator must send markers to the other two
//! (WriteTxnMarkers). A read_committed consumer reads every committed record, and never
//! one of the aborted transaction. Bounded waits only.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::producer::{BaseRecord, Producer};

use super::client_transactions::{payloads, transactional_producer};
use super::cluster_metadata::{
    broker_ids, create_topic_with, every, start_cluster_with, topic, wait_everywhere, SLACK,
};
use super::harness::{consume, consumer, send};

const TOPIC: &str = "spread-txn";
const PER_PARTITION: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `PER_PARTITION` records named `{name}-{partition}-{i}` to every partition in one
/// transaction, then commits or aborts it; answers the names.
fn transaction(
    producer: &super::harness::CountingProducer,
    name: &str,
    commit: bool,
) -> BTreeSet<String> {
    producer.begin_transaction().expect("begin");
    let mut written = BTreeSet::new();
    for partition in 0..3 {
        for i in 0..PER_PARTITION {
            let value = format!("{name}-{partition}-{i:03}");
            send(
                producer,
                BaseRecord::to(TOPIC)
                    .partition(partition)
                    .payload(value.as_bytes()),
            );
            written.insert(value);
        }
    }
    // Flushed first, so an aborted transaction's records really are in the logs.
    producer.flush(TIMEOUT).expect("flushed");
    if commit {
        producer.commit_transaction(TIMEOUT).expect("commit");
    } else {
        producer.abort_transaction(TIMEOUT).expect("abort");
    }
    written
}

#[test]
fn a_transaction_over_partitions_led_by_three_brokers_commits_and_aborts_whole() {
    let brokers = start_cluster_with(0, (200, 2_000), "offsets_topic_num_partitions = 3\n");
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], TOPIC, 3, &[]);
    wait_everywhere(
        &every(&brokers),
        SLACK,
        "three partitions led by three brokers",
        |r| {
            topic(r, TOPIC).is_some_and(|t| {
                let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
                t.partitions.len() == 3
                    && leaders.len() == 3
                    && !leaders.contains(&-1)
                    && t.partitions.iter().all(|p| p.isr_nodes.len() == 3)
            })
        },
    );
    let bootstrap = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (producer, _) = transactional_producer(&bootstrap, "spread-producer");
    let mut committed = transaction(&producer, "first", true);
    let aborted = transaction(&producer, "aborted", false);
    committed.extend(transaction(&producer, "last", true));

    let reader = consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let seen = payloads(&consume(&reader, TOPIC, 3, committed.len(), TIMEOUT));
    let logs = || {
        brokers
            .iter()
            .map(|b| b.logs())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let read_aborted: Vec<&String> = seen.iter().filter(|v| aborted.contains(*v)).collect();
    assert!(
        read_aborted.is_empty(),
        "read_committed read aborted records: {read_aborted:?}"
    );
    assert_eq!(
        seen.len(),
        committed.len(),
        "read_committed: exactly the committed records\n{}",
        logs()
    );
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), committed);
}
