//! Wire-level behaviour with real clients: every codec and every record field round-trips,
//! bad frames close only their own connection, auto-creation, topic administration with
//! Kafka's error codes, and ListOffsets by timestamp.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

use crate::harness::*;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn every_codec_and_every_field_round_trips() {
    let broker = TestBroker::start("");
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker.bootstrap(), &topic, 1);
        let (producer, deliveries) = producer(
            &broker.bootstrap(),
            &[
                ("compression.type", codec),
                ("acks", "all"),
                ("linger.ms", "20"),
            ],
        );
        let mut sent = Vec::new();
        for i in 0..200usize {
            let key = (i % 5 != 0).then(|| format!("key-{i}").into_bytes());
            let payload = (i % 7 != 0).then(|| format!("value-{i}-{}", "z".repeat(i)).into_bytes());
            let headers = vec![
                ("h-one".to_string(), Some(format!("{i}").into_bytes())),
                ("h-null".to_string(), None),
            ];
            let timestamp = 1_600_000_000_000 + i as i64 * 1000;
            let mut owned = OwnedHeaders::new();
            for (k, v) in &headers {
                owned = owned.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic)
                .partition(0)
                .timestamp(timestamp)
                .headers(owned);
            if let Some(k) = &key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = &payload {
                record = record.payload(p.as_slice());
            }
            send(&producer, record);
            sent.push((key, payload, headers, timestamp));
        }
        flush(&producer);
        assert_eq!(deliveries.ok.load(Ordering::SeqCst), 200, "codec {codec}");
        let consumer = consumer(&broker.bootstrap(), &[]);
        let got = consume(&consumer, &topic, 1, 200, Duration::from_secs(30));
        assert_eq!(got.len(), 200, "codec {codec}");
        for (i, (record, (key, payload, headers, timestamp))) in got.iter().zip(&sent).enumerate() {
            assert_eq!(record.offset, i as i64);
            assert_eq!(&record.key, key, "codec {codec} record {i} key");
            assert_eq!(&record.payload, payload, "codec {codec} record {i} value");
            assert_eq!(&record.headers, headers, "codec {codec} record {i} headers");
            assert_eq!(
                record.timestamp,
                Some(*timestamp),
                "codec {codec} record {i} timestamp"
            );
        }
    }
    // The bytes on disk are the producer's: a compressed topic's segment is smaller than
    // the uncompressed one holding the same records.
    let size = |t: &str| {
        std::fs::read_dir(broker.data_dir().join(format!("{t}-0")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum::<u64>()
    };
    assert!(size("codec-zstd") < size("codec-none"));
}

/// Sends raw bytes on a fresh socket and reports whether the broker closed it (EOF or
/// reset) within the bound; also returns any bytes it answered.
fn send_raw(port: u16, bytes: &[u8]) -> (bool, Vec<u8>) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = socket.write_all(bytes);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return (true, answer),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (false, answer)
            }
            Err(_) => return (true, answer),
        }
        if Instant::now() > deadline {
            return (false, answer);
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn bad_frames_close_only_their_own_connection() {
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "steady", 1);
    let bootstrap = broker.bootstrap();
    // A real client keeps producing and consuming while the garbage arrives.
    let steady = std::thread::spawn(move || {
        let (producer, deliveries) = producer(&bootstrap, &[("acks", "1")]);
        for i in 0..1000usize {
            let v = format!("steady-{i}");
            send(
                &producer,
                BaseRecord::to("steady")
                    .partition(0)
                    .key(b"k".as_slice())
                    .payload(v.as_bytes()),
            );
            if i % 100 == 0 {
                flush(&producer);
            }
        }
        flush(&producer);
        let consumer = consumer(&bootstrap, &[]);
        let got = consume(&consumer, "steady", 1, 1000, Duration::from_secs(30));
        (deliveries.ok.load(Ordering::SeqCst), got.len())
    });
    let port = broker.port();
    // Length prefixes: far above the maximum, and negative.
    let (closed, _) = send_raw(port, &0x7fff_ffffi32.to_be_bytes());
    assert!(closed, "an oversized length prefix closes the connection");
    let (closed, _) = send_raw(port, &(-1i32).to_be_bytes());
    assert!(closed, "a negative length prefix closes the connection");
    // Garbage, an unknown API key, a frame too short for a header.
    let (closed, _) = send_raw(port, &[0xab; 64]);
    assert!(closed);
    let mut unknown = 9999i16.to_be_bytes().to_vec();
    unknown.extend_from_slice(&0i16.to_be_bytes());
    unknown.extend_from_slice(&7i32.to_be_bytes());
    unknown.extend_from_slice(&[0, 0]);
    assert!(send_raw(port, &frame(&unknown)).0, "unknown API key closes");
    assert!(
        send_raw(port, &frame(&[0, 3, 0])).0,
        "a frame shorter than a header closes"
    );
    // A Metadata v1 request whose topic array claims 2^31-1 entries in a few bytes: the
    // decoder must fail on missing bytes, not reserve memory for the claimed count.
    let mut huge = 3i16.to_be_bytes().to_vec();
    huge.extend_from_slice(&1i16.to_be_bytes());
    huge.extend_from_slice(&8i32.to_be_bytes());
    huge.extend_from_slice(&(-1i16).to_be_bytes());
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    huge.extend_from_slice(&[0, 1, b'a']);
    assert!(
        send_raw(port, &frame(&huge)).0,
        "a malformed Metadata request closes"
    );
    // ApiVersions newer than the broker knows: a v0 answer with UNSUPPORTED_VERSION (35).
    let mut newer = 18i16.to_be_bytes().to_vec();
    newer.extend_from_slice(&99i16.to_be_bytes());
    newer.extend_from_slice(&42i32.to_be_bytes());
    newer.extend_from_slice(&(-1i16).to_be_bytes());
    let (_, answer) = send_raw(port, &frame(&newer));
    assert!(answer.len() >= 10, "an ApiVersions answer came back");
    assert_eq!(&answer[4..8], &42i32.to_be_bytes(), "correlation id");
    assert_eq!(&answer[8..10], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");

    let (acked, consumed) = steady.join().expect("the steady client ran");
    assert_eq!((acked, consumed), (1000, 1000));
    let consumer = consumer(&broker.bootstrap(), &[]);
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the broker still answers Metadata");
    assert!(metadata.topics().iter().any(|t| t.name() == "steady"));
    let logs = broker.logs();
    assert!(
        logs.contains("bad frame") || logs.contains("cannot serve"),
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn producing_to_a_missing_topic_creates_it() {
    let broker = TestBroker::start("default_partitions = 2");
    let (producer, deliveries) = producer(&broker.bootstrap(), &[("acks", "1")]);
    send(
        &producer,
        BaseRecord::to("auto-created")
            .key(b"k".as_slice())
            .payload(b"v".as_slice()),
    );
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 1);
    let consumer = consumer(&broker.bootstrap(), &[]);
    let metadata = consumer
        .fetch_metadata(Some("auto-created"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 2);
}

#[test]
fn topic_administration_with_kafka_error_codes() {
    let broker = TestBroker::start("");
    let admin = admin(&broker.bootstrap());
    let options = AdminOptions::new();
    let created = block_on(admin.create_topics(
        &[NewTopic::new("admin-t", 4, TopicReplication::Fixed(1))],
        &options,
    ))
    .unwrap();
    assert_eq!(created, vec![Ok("admin-t".to_string())]);
    let again = block_on(admin.create_topics(
        &[NewTopic::new("admin-t", 4, TopicReplication::Fixed(1))],
        &options,
    ))
    .unwrap();
    assert_eq!(
        again,
        vec![Err((
            "admin-t".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    let invalid = block_on(admin.create_topics(
        &[
            NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
            NewTopic::new("..", 1, TopicReplication::Fixed(1)),
            NewTopic::new("three-replicas", 1, TopicReplication::Fixed(3)),
        ],
        &options,
    ))
    .unwrap();
    assert_eq!(
        invalid,
        vec![
            Err(("bad/name".to_string(), RDKafkaErrorCode::InvalidTopic)),
            Err(("..".to_string(), RDKafkaErrorCode::InvalidTopic)),
            Err((
                "three-replicas".to_string(),
                RDKafkaErrorCode::InvalidReplicationFactor
            )),
        ]
    );
    let grown =
        block_on(admin.create_partitions(&[NewPartitions::new("admin-t", 6)], &options)).unwrap();
    assert_eq!(grown, vec![Ok("admin-t".to_string())]);
    let shrink =
        block_on(admin.create_partitions(&[NewPartitions::new("admin-t", 2)], &options)).unwrap();
    assert_eq!(
        shrink,
        vec![Err((
            "admin-t".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let consumer = consumer(&broker.bootstrap(), &[]);
    let metadata = consumer
        .fetch_metadata(Some("admin-t"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 6);
    let configs = block_on(admin.describe_configs(
        &[rdkafka::admin::ResourceSpecifier::Topic("admin-t")],
        &options,
    ))
    .unwrap();
    let config = configs[0].as_ref().expect("configs described");
    let retention = config.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert!(retention.is_default);
    let deleted = block_on(admin.delete_topics(&["admin-t", "never-was"], &options)).unwrap();
    assert_eq!(
        deleted,
        vec![
            Ok("admin-t".to_string()),
            Err((
                "never-was".to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            ))
        ]
    );
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(metadata.topics().iter().all(|t| t.name() != "admin-t"));
    assert!(
        !broker.data_dir().join("admin-t-0").exists(),
        "the partition directory moved aside"
    );
}

#[test]
fn list_offsets_by_timestamp() {
    let broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "times", 1);
    let (producer, deliveries) = producer(
        &broker.bootstrap(),
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
        ],
    );
    for i in 0..100i64 {
        let v = format!("t{i}");
        send_and_wait(
            &producer,
            &deliveries,
            BaseRecord::to("times")
                .partition(0)
                .key(b"k".as_slice())
                .payload(v.as_bytes())
                .timestamp(1_700_000_000_000 + i * 1000),
        );
    }
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 100);
    let consumer = consumer(&broker.bootstrap(), &[]);
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, rdkafka::Offset::Offset(ts))
            .unwrap();
        let found = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .unwrap();
        found.elements()[0].offset()
    };
    assert_eq!(
        lookup(1_700_000_000_000 + 42 * 1000),
        rdkafka::Offset::Offset(42)
    );
    assert_eq!(
        lookup(1_700_000_000_000 + 42 * 1000 - 500),
        rdkafka::Offset::Offset(42)
    );
    assert_eq!(lookup(0), rdkafka::Offset::Offset(0));
    assert_eq!(
        lookup(1_800_000_000_000),
        rdkafka::Offset::End,
        "after the last record: -1"
    );

    // Several records in one uncompressed batch: the answer is the record, not the batch.
    create_topic(&broker.bootstrap(), "times-batched", 1);
    let (batched, batched_deliveries) = crate::harness::producer(
        &broker.bootstrap(),
        &[("acks", "all"), ("linger.ms", "200")],
    );
    for i in 0..10i64 {
        let v = format!("b{i}");
        send(
            &batched,
            BaseRecord::to("times-batched")
                .partition(0)
                .key(b"k".as_slice())
                .payload(v.as_bytes())
                .timestamp(1_700_000_000_000 + i * 1000),
        );
    }
    flush(&batched);
    assert_eq!(batched_deliveries.ok.load(Ordering::SeqCst), 10);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        "times-batched",
        0,
        rdkafka::Offset::Offset(1_700_000_000_000 + 6 * 1000 - 1),
    )
    .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(found.elements()[0].offset(), rdkafka::Offset::Offset(6));
}

/// A Metadata v1 request for every topic (null topic array), framed, with a client id of
/// `padding` bytes.
fn metadata_request_padded(correlation_id: i32, padding: usize) -> Vec<u8> {
    let mut body = 3i16.to_be_bytes().to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(padding as i16).to_be_bytes());
    body.extend(std::iter::repeat_n(b'c', padding));
    body.extend_from_slice(&(-1i32).to_be_bytes()); // null topics: all
    frame(&body)
}

fn metadata_request(correlation_id: i32) -> Vec<u8> {
    metadata_request_padded(correlation_id, 0)
}

#[test]
fn stuck_and_slow_clients_hold_up_nobody_else() {
    let broker =
        TestBroker::start("max_in_flight_per_connection = 4\nmax_connection_buffered_bytes = 4096");
    create_topic(&broker.bootstrap(), "busy", 1);
    let port = broker.port();
    // A client that writes requests and never reads a response: once its few in-flight
    // requests are answered into a full socket, the broker stops reading it.
    let stuck = std::thread::spawn(move || {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
        socket
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut written = 0usize;
        for i in 0..200_000 {
            if socket.write_all(&metadata_request_padded(i, 1000)).is_err() {
                break; // the broker stopped reading us: our send buffer is full
            }
            written += 1;
        }
        (written, socket)
    });
    // A client that sends one request a byte at a time.
    let slow = std::thread::spawn(move || {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for byte in metadata_request(1) {
            socket.write_all(&[byte]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut size = [0u8; 4];
        socket
            .read_exact(&mut size)
            .map(|_| i32::from_be_bytes(size))
    });
    // Meanwhile a normal client is served promptly.
    let started = Instant::now();
    let (producer, deliveries) = producer(&broker.bootstrap(), &[("acks", "all")]);
    for i in 0..500usize {
        let v = format!("busy-{i}");
        send(
            &producer,
            BaseRecord::to("busy")
                .partition(0)
                .key(b"k".as_slice())
                .payload(v.as_bytes()),
        );
    }
    flush(&producer);
    assert_eq!(deliveries.ok.load(Ordering::SeqCst), 500);
    let consumer = consumer(&broker.bootstrap(), &[]);
    assert_eq!(
        consume(&consumer, "busy", 1, 500, Duration::from_secs(30)).len(),
        500
    );
    println!(
        "normal client served in {:?} beside a stuck and a slow client",
        started.elapsed()
    );
    let (written, _socket) = stuck.join().unwrap();
    assert!(
        written < 200_000,
        "the broker kept reading a client that never reads"
    );
    let answered = slow
        .join()
        .unwrap()
        .expect("the slow client got its answer");
    assert!(answered > 0);
}

#[test]
fn idle_connections_are_closed() {
    let broker = TestBroker::start("connections_max_idle_ms = 300");
    let started = Instant::now();
    let (closed, _) = send_raw(broker.port(), &[]);
    assert!(closed, "an idle connection was closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Half a frame, then silence: closed as well.
    let (closed, _) = send_raw(broker.port(), &metadata_request(5)[..7]);
    assert!(closed);
    // A working client is unaffected between its requests.
    let consumer = consumer(&broker.bootstrap(), &[]);
    assert!(consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .is_ok());
}
