//! Incremental fetch sessions (KIP-227) in raw Fetch frames against a broker process: a
//! full fetch creates a session, incremental fetches add and forget partitions and are
//! answered only with partitions that changed, a wrong epoch is INVALID_FETCH_SESSION_EPOCH
//! (71), an unknown id FETCH_SESSION_ID_NOT_FOUND (70), FINAL_EPOCH closes the session,
//! and the cache holds `max_incremental_fetch_session_cache_slots` sessions.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, MetadataRequest};
use uuid::Uuid;

use broker::storage::batch_builder::build_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{topic, Wire};

const NAME: &str = "sessions";

/// A fetch of `NAME` by name (v12), partitions with their fetch offsets.
fn fetch_v12(session_id: i32, epoch: i32, parts: &[(i32, i64)], forget: &[i32]) -> FetchRequest {
    let mut req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1024 * 1024)
        .with_session_id(session_id)
        .with_session_epoch(epoch);
    if !parts.is_empty() {
        req.topics = vec![FetchTopic::default()
            .with_topic(topic(NAME))
            .with_partitions(partitions(parts))];
    }
    if !forget.is_empty() {
        req.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(topic(NAME))
            .with_partitions(forget.to_vec())];
    }
    req
}

fn partitions(parts: &[(i32, i64)]) -> Vec<FetchPartition> {
    parts
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(64 * 1024)
        })
        .collect()
}

/// (partition, has records) of every partition the response lists.
fn listed(resp: &FetchResponse) -> Vec<(i32, bool)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                p.records.as_ref().is_some_and(|r| !r.is_empty()),
            )
        })
        .collect()
}

fn produce_one(wire: &mut Wire, partition: i32) {
    let batch = build_batch(&[(Some(b"k"), Some(b"v"))], 1_000);
    assert_eq!(wire.produce(NAME, partition, -1, batch), 0);
}

fn call(wire: &mut Wire, version: i16, req: &FetchRequest) -> FetchResponse {
    wire.call(version, req)
        .expect("the broker answers the Fetch")
}

#[test]
fn an_incremental_session_answers_only_what_changed() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic(NAME, 5);
    produce_one(&mut wire, 0);

    // A full fetch with epoch 0 creates a session and lists every partition.
    let all: Vec<(i32, i64)> = (0..4).map(|p| (p, 0)).collect();
    let full = call(&mut wire, 12, &fetch_v12(0, 0, &all, &[]));
    assert_eq!(full.error_code, 0);
    let id = full.session_id;
    assert_ne!(id, 0, "a full fetch with epoch 0 creates a session");
    assert_eq!(
        listed(&full),
        vec![(0, true), (1, false), (2, false), (3, false)]
    );

    // Partition 0 moves past its record: nothing changed, nothing is listed.
    let resp = call(&mut wire, 12, &fetch_v12(id, 1, &[(0, 1)], &[]));
    assert_eq!((resp.error_code, resp.session_id), (0, id));
    assert_eq!(listed(&resp), vec![]);

    // A record on partition 2: only partition 2, though the request names none.
    produce_one(&mut wire, 2);
    let resp = call(&mut wire, 12, &fetch_v12(id, 2, &[], &[]));
    assert_eq!(listed(&resp), vec![(2, true)]);

    // Add partition 4 (listed the first time, though empty) and forget partition 2: a new
    // record there is no longer answered.
    produce_one(&mut wire, 2);
    let resp = call(&mut wire, 12, &fetch_v12(id, 3, &[(4, 0)], &[2]));
    assert_eq!(listed(&resp), vec![(4, false)]);
    produce_one(&mut wire, 3);
    let resp = call(&mut wire, 12, &fetch_v12(id, 4, &[], &[]));
    assert_eq!(listed(&resp), vec![(3, true)]);

    // A wrong epoch: 71, no partitions; the session is still there at the right epoch.
    let resp = call(&mut wire, 12, &fetch_v12(id, 9, &[], &[]));
    assert_eq!((resp.error_code, resp.session_id), (71, 0));
    assert!(resp.responses.is_empty());
    // An unknown id: 70, no partitions.
    let other = if id == i32::MAX { 1 } else { id + 1 };
    let resp = call(&mut wire, 12, &fetch_v12(other, 1, &[], &[]));
    assert_eq!((resp.error_code, resp.session_id), (70, 0));
    assert!(resp.responses.is_empty());
    let resp = call(&mut wire, 12, &fetch_v12(id, 5, &[], &[]));
    assert_eq!((resp.error_code, resp.session_id), (0, id));

    // FINAL_EPOCH: a full fetch without a session, and the session is closed.
    let resp = call(&mut wire, 12, &fetch_v12(id, -1, &[(0, 0)], &[]));
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
    assert_eq!(listed(&resp), vec![(0, true)]);
    let resp = call(&mut wire, 12, &fetch_v12(id, 6, &[], &[]));
    assert_eq!(resp.error_code, 70, "FINAL_EPOCH closed the session");

    // A full fetch naming more partitions than exist gets no session.
    let many: Vec<(i32, i64)> = (0..6).map(|p| (p, 0)).collect();
    let resp = call(&mut wire, 12, &fetch_v12(0, 0, &many, &[]));
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
}

fn topic_id(wire: &mut Wire) -> Uuid {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic(NAME)))
    ]));
    let resp = wire.call(12, &req).expect("Metadata answered");
    resp.topics[0].topic_id
}

#[test]
fn a_session_by_topic_id_stays_by_topic_id() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic(NAME, 2);
    let id = topic_id(&mut wire);
    let by_id = |session_id, epoch, parts: &[(i32, i64)]| {
        let mut req = fetch_v12(session_id, epoch, &[], &[]);
        if !parts.is_empty() {
            req.topics = vec![FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(partitions(parts))];
        }
        req
    };
    let full = call(&mut wire, 13, &by_id(0, 0, &[(0, 0), (1, 0)]));
    let session = full.session_id;
    assert_ne!(session, 0);
    assert_eq!(listed(&full), vec![(0, false), (1, false)]);
    produce_one(&mut wire, 1);
    let resp = call(&mut wire, 13, &by_id(session, 1, &[]));
    assert_eq!((resp.error_code, resp.session_id), (0, session));
    assert_eq!(listed(&resp), vec![(1, true)]);
    assert_eq!(resp.responses[0].topic_id, id);
    // The same session by name (v12): FETCH_SESSION_TOPIC_ID_ERROR (106), as Kafka answers.
    let resp = call(&mut wire, 12, &fetch_v12(session, 2, &[], &[]));
    assert_eq!((resp.error_code, resp.session_id), (106, 0));
}

#[test]
fn the_cache_holds_its_slots_and_evicts_the_idle_session() {
    // Two slots; nothing is idle long enough to be evicted: a third session is refused.
    let broker = TestBroker::start("max_incremental_fetch_session_cache_slots = 2");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic(NAME, 3);
    let a = call(&mut wire, 12, &fetch_v12(0, 0, &[(0, 0)], &[])).session_id;
    let b = call(&mut wire, 12, &fetch_v12(0, 0, &[(1, 0)], &[])).session_id;
    assert!(a != 0 && b != 0 && a != b);
    let c = call(&mut wire, 12, &fetch_v12(0, 0, &[(2, 0)], &[]));
    assert_eq!((c.error_code, c.session_id), (0, 0), "no free slot");
    assert_eq!(
        listed(&c),
        vec![(2, false)],
        "still answered, without a session"
    );
    for s in [a, b] {
        assert_eq!(
            call(&mut wire, 12, &fetch_v12(s, 1, &[], &[])).error_code,
            0
        );
    }
    drop(wire);
    drop(broker);

    // Sessions unused for over 0 ms may be evicted: the least recently used one goes.
    let broker = TestBroker::start(
        "max_incremental_fetch_session_cache_slots = 2\n\
         min_incremental_fetch_session_eviction_ms = 0",
    );
    let mut wire = Wire::connect(broker.port());
    wire.create_topic(NAME, 3);
    let a = call(&mut wire, 12, &fetch_v12(0, 0, &[(0, 0)], &[])).session_id;
    let b = call(&mut wire, 12, &fetch_v12(0, 0, &[(1, 0)], &[])).session_id;
    // a is used again, so b is now the least recently used.
    assert_eq!(
        call(&mut wire, 12, &fetch_v12(a, 1, &[], &[])).error_code,
        0
    );
    let c = call(&mut wire, 12, &fetch_v12(0, 0, &[(2, 0)], &[])).session_id;
    assert_ne!(c, 0, "the idle session was evicted for the new one");
    assert_eq!(
        call(&mut wire, 12, &fetch_v12(b, 1, &[], &[])).error_code,
        70
    );
    assert_eq!(
        call(&mut wire, 12, &fetch_v12(a, 2, &[], &[])).error_code,
        0
    );
    assert_eq!(
        call(&mut wire, 12, &fetch_v12(c, 1, &[], &[])).error_code,
        0
    );
}

/// librdkafka never asks for a session (it sends session 0, FINAL_EPOCH): with the cache
/// on, and a session of another client open on the same partitions, it still reads every
/// record of many partitions exactly once.
#[test]
fn librdkafka_reads_many_partitions_exactly_once_beside_a_session() {
    use rdkafka::producer::BaseRecord;

    use crate::harness::{
        assert_contiguous, consume, consumer, create_topic, flush, producer, send,
    };

    const PARTITIONS: i32 = 100;
    const PER_PARTITION: usize = 10;
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), NAME, PARTITIONS);
    let mut wire = Wire::connect(broker.port());
    let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let session = call(&mut wire, 12, &fetch_v12(0, 0, &all, &[])).session_id;
    assert_ne!(session, 0);
    let (producer, _) = producer(&broker.bootstrap(), &[]);
    for i in 0..PER_PARTITION {
        for p in 0..PARTITIONS {
            let value = format!("{p}-{i}");
            send(
                &producer,
                BaseRecord::to(NAME).partition(p).payload(value.as_bytes()),
            );
        }
    }
    flush(&producer);
    let expected = PARTITIONS as usize * PER_PARTITION;
    let records = consume(
        &consumer(&broker.bootstrap(), &[]),
        NAME,
        PARTITIONS,
        expected,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(records.len(), expected);
    assert_contiguous(&records, PARTITIONS);
    // The raw session sees every partition once, as records.
    let resp = call(&mut wire, 12, &fetch_v12(session, 1, &[], &[]));
    assert_eq!(listed(&resp).len(), PARTITIONS as usize);
    assert!(listed(&resp).iter().all(|(_, records)| *records));
}

/// The cache's size is on /metrics, as Kafka's NumIncrementalFetchSessions and
/// NumIncrementalFetchPartitionsCached.
#[test]
fn the_session_cache_size_is_on_metrics() {
    use crate::client_metrics::{sample, scrape_until};

    let port = crate::harness::free_port();
    let broker = TestBroker::start(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    let mut wire = Wire::connect(broker.port());
    wire.create_topic(NAME, 3);
    let a = call(&mut wire, 12, &fetch_v12(0, 0, &[(0, 0)], &[])).session_id;
    let b = call(&mut wire, 12, &fetch_v12(0, 0, &[(1, 0), (2, 0)], &[])).session_id;
    assert!(a != 0 && b != 0);
    let sizes = |page: &str| {
        (
            sample(page, "broker_fetch_sessions", &[]),
            sample(page, "broker_fetch_session_partitions", &[]),
        )
    };
    scrape_until(port, "two sessions of 3 partitions", |p| {
        sizes(p) == (Some(2.0), Some(3.0))
    });
    call(&mut wire, 12, &fetch_v12(b, -1, &[], &[]));
    scrape_until(port, "one session of 1 partition", |p| {
        sizes(p) == (Some(1.0), Some(1.0))
    });
}
