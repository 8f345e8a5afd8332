//! Fetch requests built to make the broker allocate: one partition listed 200 times with
//! partition_max_bytes of 2 GB, max_bytes of 0x7fffffff, 0 or -1, many partitions past the
//! broker's fetch_max_bytes, and a fetch larger than the broker-wide fetch memory budget.
//! The broker's peak resident memory (VmHWM) shows what it allocated.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use broker::storage::batch_builder::build_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{proc_status_bytes, topic, Wire};

const VALUE_BYTES: usize = 256 * 1024;
const BATCHES: usize = 8;
const MIB: usize = 1024 * 1024;

/// One record of VALUE_BYTES per batch, BATCHES batches per partition (2 MiB): the size
/// of one batch on disk.
fn fill(wire: &mut Wire, name: &str, partitions: i32) -> usize {
    let value = vec![7u8; VALUE_BYTES];
    let batch = build_batch(&[(Some(b"k"), Some(&value))], 1_000);
    for p in 0..partitions {
        for _ in 0..BATCHES {
            assert_eq!(wire.produce(name, p, -1, batch.clone()), 0);
        }
    }
    batch.len()
}

fn fetch(
    wire: &mut Wire,
    name: &str,
    parts: &[i32],
    partition_max: i32,
    max: i32,
) -> FetchResponse {
    let partitions = parts
        .iter()
        .map(|&p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(partition_max)
        })
        .collect();
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(partitions)]);
    wire.call(11, &req).expect("the broker answers the Fetch")
}

fn records_bytes(resp: &FetchResponse) -> usize {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

#[test]
fn a_partition_repeated_200_times_with_huge_limits_is_read_once_within_bounds() {
    let broker = TestBroker::start("fetch_max_bytes = 4194304");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("amp", 1);
    let batch = fill(&mut wire, "amp", 1);
    let before = proc_status_bytes(broker.pid(), "VmHWM");
    let repeated = vec![0; 200];
    // (max_bytes, partition entries answered, record bytes), checked after the memory.
    let mut answers = Vec::new();
    for max in [i32::MAX, 0, -1] {
        let resp = fetch(&mut wire, "amp", &repeated, 2_000_000_000, max);
        let entries: Vec<_> = resp.responses.iter().flat_map(|t| &t.partitions).collect();
        assert!(entries.iter().all(|p| p.error_code == 0));
        answers.push((max, entries.len(), records_bytes(&resp)));
    }
    let grown = proc_status_bytes(broker.pid(), "VmHWM").saturating_sub(before);
    eprintln!("peak resident memory grew by {grown} bytes");
    assert!(
        grown < 64 * MIB as u64,
        "peak memory grew by {grown} bytes for three fetches of a 2 MiB partition"
    );
    for (max, entries, got) in answers {
        // Kafka keys a fetch by topic-partition: a repeated partition is answered once.
        assert_eq!(entries, 1, "max_bytes {max}");
        if max > 0 {
            assert_eq!(got, BATCHES * batch, "max_bytes {max}: the whole partition");
        } else {
            // Zero or negative max_bytes: only the one batch KIP-74 allows.
            assert_eq!(got, batch, "max_bytes {max}");
        }
    }
    // And it keeps serving.
    let resp = fetch(&mut wire, "amp", &[0], MIB as i32, MIB as i32);
    assert!(records_bytes(&resp) >= batch);
}

#[test]
fn fetch_max_bytes_caps_a_fetch_of_many_partitions() {
    let broker = TestBroker::start("fetch_max_bytes = 4194304");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("wide", 4);
    let batch = fill(&mut wire, "wide", 4);
    let resp = fetch(&mut wire, "wide", &[0, 1, 2, 3], 2_000_000_000, i32::MAX);
    let got = records_bytes(&resp);
    assert!(got <= 4 * MIB, "{got} bytes returned past fetch_max_bytes");
    assert!(got >= 4 * MIB - batch, "only {got} bytes returned");
    let entries: Vec<_> = resp.responses.iter().flat_map(|t| &t.partitions).collect();
    assert_eq!(entries.len(), 4);
    assert!(entries
        .iter()
        .all(|p| p.error_code == 0 && p.high_watermark == BATCHES as i64));
    // Limits below one batch: one batch in all, from the first partition (KIP-74 gives the
    // first partition with data one batch, not every partition).
    let resp = fetch(&mut wire, "wide", &[0, 1, 2, 3], 1, 1);
    assert_eq!(records_bytes(&resp), batch);
    let first = &resp.responses[0].partitions[0];
    assert_eq!(first.records.as_ref().map_or(0, |r| r.len()), batch);
}

#[test]
fn the_fetch_memory_budget_caps_what_one_fetch_reads() {
    let budget = 1_100_000usize;
    let broker = TestBroker::start(&format!("fetch_memory_budget_bytes = {budget}"));
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("budget", 1);
    let batch = fill(&mut wire, "budget", 1);
    let resp = fetch(&mut wire, "budget", &[0], 10 * MIB as i32, 10 * MIB as i32);
    let got = records_bytes(&resp);
    assert!(got <= budget, "{got} bytes read past a budget of {budget}");
    assert_eq!(
        got,
        budget / batch * batch,
        "whole batches up to the budget"
    );
}

/// A real consumer whose limits are far below one record (librdkafka's
/// max.partition.fetch.bytes and fetch.max.bytes) still reads every partition to its end:
/// each fetch gives the first partition with data one batch (KIP-74), taken from the fetch
/// memory budget.
#[test]
fn a_consumer_with_limits_below_one_batch_reads_every_partition() {
    let broker = TestBroker::start("fetch_memory_budget_bytes = 2000000");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("big", 3);
    let value = vec![3u8; 100_000];
    let batch = build_batch(&[(Some(b"k"), Some(&value))], 1_000);
    for p in 0..3 {
        for _ in 0..4 {
            assert_eq!(wire.produce("big", p, -1, batch.clone()), 0);
        }
    }
    let consumer = crate::harness::consumer(
        &broker.bootstrap(),
        &[
            ("max.partition.fetch.bytes", "1024"),
            ("fetch.max.bytes", "1024"),
            ("message.max.bytes", "1000"),
            ("receive.message.max.bytes", "1000000"),
        ],
    );
    let got = crate::harness::consume(&consumer, "big", 3, 12, std::time::Duration::from_secs(30));
    assert_eq!(got.len(), 12, "every record once");
    for p in 0..3 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|c| c.partition == p)
            .map(|c| c.offset)
            .collect();
        assert_eq!(offsets, vec![0, 1, 2, 3], "partition {p}");
    }
}
