//! Client quotas (KIP-546 and Kafka's ClientQuotaManager) against a broker process:
//! AlterClientQuotas then DescribeClientQuotas on raw frames (every match type, strict,
//! validate_only, the per-entry errors) and after a restart; a producer over its
//! producer_byte_rate answered with throttle_time_ms and muted for that long; librdkafka
//! producers and consumers over their byte rates held near them.
//!
//! The throughput tests run the broker with `quota_window_num = 2`: with Kafka's 11
//! windows a client that just started may take ten windows' worth at once (its rate is
//! measured over at least `num - 1` windows), which over a 5 s measurement is three times
//! the quota by design. `quota::sensor`'s unit tests cover the 11-window arithmetic.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};

use crate::harness::{self, TestBroker};
use crate::hostile_wire::{text, Wire};

const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

type Entity<'a> = Vec<(&'a str, Option<&'a str>)>;
/// (key, value, remove)
type Op<'a> = (&'a str, f64, bool);

/// One entity's described quotas: its (type, name) pairs and its (key, value) pairs.
type Described = (Vec<(String, Option<String>)>, Vec<(String, f64)>);

fn alter(w: &mut Wire, entries: Vec<(Entity, Vec<Op>)>, validate_only: bool) -> Vec<i16> {
    use alter_client_quotas_request::{EntityData, EntryData, OpData};
    let entries = entries
        .into_iter()
        .map(|(entity, ops)| {
            EntryData::default()
                .with_entity(
                    entity
                        .into_iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(text(t))
                                .with_entity_name(n.map(text))
                        })
                        .collect(),
                )
                .with_ops(
                    ops.into_iter()
                        .map(|(k, v, remove)| {
                            OpData::default()
                                .with_key(text(k))
                                .with_value(v)
                                .with_remove(remove)
                        })
                        .collect(),
                )
        })
        .collect();
    let req = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let resp = w.call(1, &req).expect("AlterClientQuotas answered");
    resp.entries.iter().map(|e| e.error_code).collect()
}

fn describe(
    w: &mut Wire,
    filter: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> (i16, Vec<Described>) {
    use describe_client_quotas_request::ComponentData;
    let components = filter
        .iter()
        .map(|(t, m, n)| {
            ComponentData::default()
                .with_entity_type(text(t))
                .with_match_type(*m)
                .with_match(n.map(text))
        })
        .collect();
    let req = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let resp = w.call(1, &req).expect("DescribeClientQuotas answered");
    let mut entries: Vec<Described> = resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|c| {
                    (
                        c.entity_type.to_string(),
                        c.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let values = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            (entity, values)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    (resp.error_code, entries)
}

fn count(w: &mut Wire, filter: &[(&str, i8, Option<&str>)], strict: bool) -> usize {
    let (error, entries) = describe(w, filter, strict);
    assert_eq!(error, 0, "{filter:?}");
    entries.len()
}

#[test]
fn alter_then_describe_round_trips_every_match_type_and_survives_a_restart() {
    let mut broker = TestBroker::start("");
    let mut w = Wire::connect(broker.port());
    let set = |k, v| (k, v, false);
    let codes = alter(
        &mut w,
        vec![
            (
                vec![("user", Some("alice"))],
                vec![set("producer_byte_rate", 1024.0)],
            ),
            (
                vec![("user", None)],
                vec![set("consumer_byte_rate", 2048.0)],
            ),
            (
                vec![("user", Some("alice")), ("client-id", Some("c1"))],
                vec![
                    set("request_percentage", 50.5),
                    set("controller_mutation_rate", 3.0),
                ],
            ),
            (
                vec![("client-id", None)],
                vec![set("producer_byte_rate", 4096.0)],
            ),
        ],
        false,
    );
    assert_eq!(codes, [0, 0, 0, 0]);

    // EXACT: every entity naming alice; strict: alice alone.
    assert_eq!(count(&mut w, &[("user", EXACT, Some("alice"))], false), 2);
    let (_, strict) = describe(&mut w, &[("user", EXACT, Some("alice"))], true);
    assert_eq!(
        strict,
        vec![(
            vec![("user".to_string(), Some("alice".to_string()))],
            vec![("producer_byte_rate".to_string(), 1024.0)]
        )]
    );
    // DEFAULT: the default user.
    let (_, defaults) = describe(&mut w, &[("user", DEFAULT, None)], false);
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].0, vec![("user".to_string(), None)]);
    assert_eq!(
        defaults[0].1,
        vec![("consumer_byte_rate".to_string(), 2048.0)]
    );
    // SPECIFIED: any client id, the default included; strict leaves out alice/c1.
    assert_eq!(count(&mut w, &[("client-id", SPECIFIED, None)], false), 2);
    assert_eq!(count(&mut w, &[("client-id", SPECIFIED, None)], true), 1);
    assert_eq!(
        count(
            &mut w,
            &[("user", SPECIFIED, None), ("client-id", EXACT, Some("c1"))],
            true
        ),
        1
    );
    assert_eq!(count(&mut w, &[], false), 4);
    assert_eq!(count(&mut w, &[], true), 0);

    // validate_only checks and writes nothing.
    let codes = alter(
        &mut w,
        vec![
            (
                vec![("user", Some("bob"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            (vec![("user", Some("bob"))], vec![set("nonsense", 1.0)]),
        ],
        true,
    );
    assert_eq!(codes, [0, INVALID_REQUEST]);
    assert_eq!(count(&mut w, &[("user", EXACT, Some("bob"))], false), 0);

    // Each entry is answered apart; the valid one in the same request is applied.
    let codes = alter(
        &mut w,
        vec![
            (vec![("user", Some("carol"))], vec![set("bogus_key", 1.0)]),
            (
                vec![("user", Some("carol"))],
                vec![set("producer_byte_rate", 10.5)],
            ),
            (
                vec![("user", Some("carol"))],
                vec![set("consumer_byte_rate", -1.0)],
            ),
            (vec![], vec![set("producer_byte_rate", 1.0)]),
            (
                vec![("user", Some("a")), ("user", Some("b"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            (
                vec![("group", Some("g"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            (
                vec![("user", Some("dave"))],
                vec![set("producer_byte_rate", 100.0)],
            ),
        ],
        false,
    );
    assert_eq!(
        codes,
        [
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            UNSUPPORTED_VERSION,
            0
        ]
    );
    assert_eq!(count(&mut w, &[("user", EXACT, Some("carol"))], false), 0);
    assert_eq!(count(&mut w, &[("user", EXACT, Some("dave"))], false), 1);

    // Malformed filters fail the whole Describe.
    for bad in [
        vec![("user", EXACT, None)],
        vec![("user", DEFAULT, Some("x"))],
        vec![("user", SPECIFIED, Some("x"))],
        vec![("user", 7, None)],
        vec![("user", SPECIFIED, None), ("user", DEFAULT, None)],
        vec![("ip", SPECIFIED, None), ("user", SPECIFIED, None)],
    ] {
        assert_eq!(describe(&mut w, &bad, false).0, INVALID_REQUEST, "{bad:?}");
    }
    assert_eq!(
        describe(&mut w, &[("group", SPECIFIED, None)], false).0,
        UNSUPPORTED_VERSION
    );

    // Removing dave's only key removes the entity.
    let codes = alter(
        &mut w,
        vec![(
            vec![("user", Some("dave"))],
            vec![("producer_byte_rate", 0.0, true)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    assert_eq!(count(&mut w, &[("user", EXACT, Some("dave"))], false), 0);

    let before = describe(&mut w, &[], false);
    drop(w);
    let status = broker.sigterm();
    assert!(status.success(), "{status}");
    broker.restart();
    let mut w = Wire::connect(broker.port());
    assert_eq!(
        describe(&mut w, &[], false),
        before,
        "the quotas after a restart"
    );
    assert_eq!(before.1.len(), 4);
}

/// A Produce of `bytes` of records to `topic`/0 on raw frames: (error, throttle_time_ms).
fn produce_raw(w: &mut Wire, topic: &str, bytes: usize) -> (i16, i32) {
    use produce_request::{PartitionProduceData, TopicProduceData};
    let value = vec![b'q'; bytes];
    let now = broker::storage::log::wall_clock_ms();
    let batch = broker::storage::batch_builder::build_batch(&[(None, Some(value.as_slice()))], now);
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(crate::hostile_wire::topic(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.into()))])]);
    let resp = w.call(9, &req).expect("Produce answered");
    (
        resp.responses[0].partition_responses[0].error_code,
        resp.throttle_time_ms,
    )
}

#[test]
fn a_producer_over_its_quota_gets_throttle_time_and_is_muted_that_long() {
    let broker = TestBroker::start("");
    let mut w = Wire::connect(broker.port());
    w.create_topic("q", 1);
    // The raw-frame client's id is "hostile": 10 kB/s for it.
    let codes = alter(
        &mut w,
        vec![(
            vec![("client-id", Some("hostile"))],
            vec![("producer_byte_rate", 10_000.0, false)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    // 60 kB over the 10 windows a new client is measured over is within 10 kB/s; the
    // second 60 kB is not.
    let (error, first) = produce_raw(&mut w, "q", 60_000);
    assert_eq!((error, first), (0, 0));
    let (error, throttle) = produce_raw(&mut w, "q", 60_000);
    assert_eq!(error, 0);
    assert!(throttle > 0, "throttle_time_ms {throttle}");
    assert!(throttle <= 1000, "bounded by one window: {throttle}");
    // The connection is muted: the next request is answered no sooner than the throttle
    // ends (less what passed since the answer, a few ms).
    let sent = Instant::now();
    let (error, _) = produce_raw(&mut w, "q", 10);
    let waited = sent.elapsed();
    assert_eq!(error, 0);
    assert!(
        waited >= Duration::from_millis(throttle as u64 * 8 / 10),
        "answered after {waited:?}, throttled for {throttle} ms"
    );
    // Another client id is not throttled meanwhile.
    let mut other = Wire::connect(broker.port());
    let codes = describe(&mut other, &[("client-id", EXACT, Some("hostile"))], true);
    assert_eq!(codes.1.len(), 1);
}

const QUOTA: f64 = 200_000.0;
const MEASURE: Duration = Duration::from_secs(5);

#[test]
fn a_librdkafka_producer_at_full_speed_is_held_near_its_byte_rate() {
    let broker = TestBroker::start("quota_window_num = 2");
    let mut w = Wire::connect(broker.port());
    w.create_topic("p", 1);
    let codes = alter(
        &mut w,
        vec![(
            vec![("client-id", Some("noisy"))],
            vec![("producer_byte_rate", QUOTA, false)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let (producer, deliveries) = harness::producer(
        &broker.bootstrap(),
        &[
            ("client.id", "noisy"),
            ("linger.ms", "5"),
            ("batch.size", "16384"),
            ("queue.buffering.max.kbytes", "2048"),
        ],
    );
    let value = vec![b'n'; 1000];
    let started = Instant::now();
    while started.elapsed() < MEASURE {
        harness::send(&producer, BaseRecord::to("p").payload(value.as_slice()));
        producer.poll(Duration::ZERO);
    }
    let delivered = deliveries.ok.load(Ordering::SeqCst) as f64 * value.len() as f64;
    let elapsed = started.elapsed().as_secs_f64();
    let failed = deliveries.failed.load(Ordering::SeqCst);
    producer.purge(rdkafka::producer::PurgeConfig::default().queue());
    let rate = delivered / elapsed;
    println!("producer held at {rate:.0} B/s against a quota of {QUOTA} B/s");
    assert!(rate < 2.0 * QUOTA, "{rate:.0} B/s against {QUOTA}");
    assert!(
        rate > 0.25 * QUOTA,
        "{rate:.0} B/s: the producer was starved"
    );
    assert_eq!(failed, 0);
}

#[test]
fn a_librdkafka_consumer_is_held_near_its_byte_rate() {
    let broker = TestBroker::start("quota_window_num = 2");
    let mut w = Wire::connect(broker.port());
    w.create_topic("c", 1);
    // 3 MB written before any quota: enough for 15 s at the quota.
    // Small batches: a fetch may pass its cap by one whole batch (KIP-74).
    let (producer, deliveries) = harness::producer(
        &broker.bootstrap(),
        &[("linger.ms", "5"), ("batch.size", "16384")],
    );
    let value = vec![b'c'; 1000];
    for _ in 0..3000 {
        harness::send(&producer, BaseRecord::to("c").payload(value.as_slice()));
    }
    harness::flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 3000);
    let codes = alter(
        &mut w,
        vec![(
            vec![("client-id", Some("slow"))],
            vec![("consumer_byte_rate", QUOTA, false)],
        )],
        false,
    );
    assert_eq!(codes, [0]);
    let consumer = harness::consumer(
        &broker.bootstrap(),
        &[("client.id", "slow"), ("auto.offset.reset", "earliest")],
    );
    consumer.subscribe(&["c"]).expect("subscribe");
    let mut consumed = 0f64;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "consumed nothing within 30 s");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            started.get_or_insert_with(Instant::now);
            consumed += m.payload().map_or(0, |p| p.len()) as f64;
        }
        if started.is_some_and(|s| s.elapsed() >= MEASURE) {
            break;
        }
    }
    let rate = consumed / started.expect("consumed").elapsed().as_secs_f64();
    println!("consumer held at {rate:.0} B/s against a quota of {QUOTA} B/s");
    assert!(rate < 2.0 * QUOTA, "{rate:.0} B/s against {QUOTA}");
    assert!(
        rate > 0.25 * QUOTA,
        "{rate:.0} B/s: the consumer was starved"
    );
}
