//! Hostile record batches against a real broker process: a zstd decompression bomb
//! produced to a compacted topic (whose key check decompresses) is refused with
//! INVALID_RECORD, the broker's memory stays small, and it keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use broker::storage::batch_builder::{build_batch, put_varlong};

use crate::harness::{create_topic, TestBroker};

const PRODUCE_VERSION: i16 = 9;

fn zigzag(v: i64, out: &mut Vec<u8>) {
    put_varlong(out, v);
}

/// A v2 batch of one keyed record whose value is `zeros` zero bytes, zstd-compressed as
/// it is produced (the zeros are never all in memory): a few hundred KB that expand to
/// `zeros` bytes. The record is well formed, so only the bound can refuse it.
pub(crate) fn zstd_bomb(zeros: u64) -> Vec<u8> {
    let mut fields = vec![0u8]; // attributes
    zigzag(0, &mut fields); // timestamp delta
    zigzag(0, &mut fields); // offset delta
    zigzag(1, &mut fields); // key length
    fields.push(b'k');
    zigzag(zeros as i64, &mut fields); // value length
    let mut tail = Vec::new();
    zigzag(0, &mut tail); // header count
    let mut prefix = Vec::new();
    zigzag(
        fields.len() as i64 + zeros as i64 + tail.len() as i64,
        &mut prefix,
    );
    prefix.extend_from_slice(&fields);

    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(&prefix).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        encoder.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    encoder.write_all(&tail).unwrap();
    let records = encoder.finish().unwrap();

    let mut batch = Vec::with_capacity(61 + records.len());
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes()); // batch length
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    batch.extend_from_slice(&4i16.to_be_bytes()); // attributes: zstd
    batch.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    batch.extend_from_slice(&1_000i64.to_be_bytes()); // base timestamp
    batch.extend_from_slice(&1_000i64.to_be_bytes()); // max timestamp
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&1i32.to_be_bytes()); // records count
    batch.extend_from_slice(&records);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Sends one request on `socket` and reads its response (raw frames: what a client
/// library would refuse to send).
pub(crate) fn request<Req: Encodable, Resp: Decodable>(
    socket: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id);
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    socket
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    socket.write_all(&body).unwrap();

    let mut size = [0u8; 4];
    socket.read_exact(&mut size).expect("a response");
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    socket.read_exact(&mut answer).expect("a whole response");
    let mut answer = Bytes::from(answer);
    let header = ResponseHeader::decode(&mut answer, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    Resp::decode(&mut answer, version).unwrap()
}

/// One Produce (acks=1) of `batch` to partition 0 of `topic`: its partition's error code.
fn produce(socket: &mut TcpStream, correlation_id: i32, topic: &str, batch: Vec<u8>) -> i16 {
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = request(
        socket,
        ApiKey::Produce,
        PRODUCE_VERSION,
        correlation_id,
        &produce,
    );
    response.responses[0].partition_responses[0].error_code
}

fn create_compacted_topic(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .unwrap()[0]
        .clone()
        .unwrap();
}

#[test]
fn a_zstd_bomb_to_a_compacted_topic_is_refused_in_bounded_memory() {
    let broker = TestBroker::start("");
    create_compacted_topic(&broker.bootstrap(), "bombed");
    // 2 GiB of zeros: far past 64 x max.message.bytes (64 MiB by default).
    let bomb = zstd_bomb(2 << 30);
    eprintln!("zstd bomb: {} bytes expanding to 2 GiB", bomb.len());
    assert!(bomb.len() < 1_000_000, "the bomb fits max.message.bytes");

    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sent = std::time::Instant::now();
    let code = produce(&mut socket, 1, "bombed", bomb);
    eprintln!("refused after {:?} (debug build)", sent.elapsed());
    assert!(
        code == ResponseError::InvalidRecord.code() || code == ResponseError::CorruptMessage.code(),
        "a decompression bomb is refused, got error {code}"
    );
    // Still serving, on the same connection and partition.
    let ok = build_batch(&[(Some(b"key"), Some(b"value"))], 1_000);
    assert_eq!(produce(&mut socket, 2, "bombed", ok), 0);
    let peak_mib = broker.peak_rss_kib() / 1024;
    eprintln!("broker peak RSS after the bomb: {peak_mib} MiB");
    assert!(peak_mib < 128, "broker peak RSS {peak_mib} MiB");
}

/// The topic names the broker lists.
fn topic_names(bootstrap: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(20))
        .unwrap();
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_metadata_record_over_the_reader_limit_is_refused_and_no_topic_is_lost() {
    let mut broker = TestBroker::start("");
    create_topic(&broker.bootstrap(), "before", 1);
    // 70 MB in a free-text config: more than the record file's reader accepts (64 MiB).
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("big")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(
                    "leader.replication.throttled.replicas",
                ))
                .with_value(Some(StrBytes::from_string(
                    "x".repeat(70_000_000),
                )))])]);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let response: CreateTopicsResponse = request(&mut socket, ApiKey::CreateTopics, 5, 1, &create);
    let code = response.topics[0].error_code;
    assert_ne!(
        code, 0,
        "a topic whose record cannot be read back is not acknowledged"
    );
    drop(socket);
    create_topic(&broker.bootstrap(), "after", 1);
    assert_eq!(broker.sigterm().code(), Some(0));
    broker.restart();
    assert_eq!(topic_names(&broker.bootstrap()), vec!["after", "before"]);
}

/// Runs the broker binary with `args`, bounded: its exit code and everything it wrote.
fn run_broker(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "broker {args:?} still running after 30 s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_metadata_file_corrupt_in_its_middle_stops_the_start_until_check_repair() {
    let mut broker = TestBroker::start("");
    for name in ["one", "two", "three"] {
        create_topic(&broker.bootstrap(), name, 1);
    }
    assert_eq!(broker.sigterm().code(), Some(0));
    let data = broker.data_dir();
    let topics_log = data.join("__meta").join("topics.log");
    let mut bytes = std::fs::read(&topics_log).unwrap();
    let first = 8 + u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(bytes.len() > first + 20, "more than one record");
    bytes[first + 12] ^= 0xff; // inside the second record's payload
    std::fs::write(&topics_log, &bytes).unwrap();

    let config = data.parent().unwrap().join("config.toml");
    let (code, output) = run_broker(&["--config".as_ref(), config.as_os_str()]);
    assert_ne!(code, Some(0), "the broker refuses to start:\n{output}");
    assert!(
        output.contains("topics.log") && output.contains(&format!("byte {first}")),
        "the refusal names the file and byte {first}:\n{output}"
    );
    assert_eq!(
        std::fs::read(&topics_log).unwrap(),
        bytes,
        "nothing was cut"
    );

    let (code, output) = run_broker(&["check".as_ref(), "--data-dir".as_ref(), data.as_os_str()]);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains(&format!("topics.log:{first}:")), "{output}");

    let (code, output) = run_broker(&[
        "check".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--repair".as_ref(),
    ]);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("repaired: cut"), "{output}");
    broker.restart();
    assert!(topic_names(&broker.bootstrap()).contains(&"one".to_string()));
}
