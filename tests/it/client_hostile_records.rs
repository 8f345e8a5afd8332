//! Hostile record batches against a real broker process: a zstd decompression bomb
//! produced to a compacted topic (whose key check decompresses) is refused with
//! INVALID_RECORD, the broker's memory stays small, and it keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use broker::storage::batch_builder::build_batch;

use crate::harness::TestBroker;

const PRODUCE_VERSION: i16 = 9;

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A v2 batch of one keyed record whose value is `zeros` zero bytes, zstd-compressed as
/// it is produced (the zeros are never all in memory): a few hundred KB that expand to
/// `zeros` bytes. The record is well formed, so only the bound can refuse it.
fn zstd_bomb(zeros: u64) -> Vec<u8> {
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

/// Sends one Produce (acks=1) of `batch` to partition 0 of `topic` on `socket` and
/// answers its partition's error code.
fn produce(socket: &mut TcpStream, correlation_id: i32, topic: &str, batch: Vec<u8>) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(correlation_id);
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .unwrap();
    request.encode(&mut body, PRODUCE_VERSION).unwrap();
    socket
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    socket.write_all(&body).unwrap();

    let mut size = [0u8; 4];
    socket.read_exact(&mut size).expect("a Produce response");
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    socket
        .read_exact(&mut answer)
        .expect("a whole Produce response");
    let mut answer = Bytes::from(answer);
    let header = ResponseHeader::decode(
        &mut answer,
        ApiKey::Produce.response_header_version(PRODUCE_VERSION),
    )
    .unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let response = ProduceResponse::decode(&mut answer, PRODUCE_VERSION).unwrap();
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
    let code = produce(&mut socket, 1, "bombed", bomb);
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
