//! A cluster broker serves clients only once its metadata image has caught up with the
//! controller's, as Kafka enables request processing only then. Before, a broker whose
//! image was still empty answered Metadata with no brokers and no topics, and librdkafka
//! took that list as the cluster's: it forgot every broker it knew and its producer never
//! sent again (a fresh RF=3 topic's records stayed queued until the test gave up).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::cluster_metadata::{broker_ids, three_voters, SLACK};
use super::harness::TestBroker;

const METADATA_VERSION: i16 = 12;

fn send_metadata(socket: &mut TcpStream) {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(METADATA_VERSION)
        .with_correlation_id(7);
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::Metadata.request_header_version(METADATA_VERSION),
        )
        .unwrap();
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut body, METADATA_VERSION)
        .unwrap();
    socket
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    socket.write_all(&body).unwrap();
}

fn read_metadata(socket: &mut TcpStream) -> std::io::Result<MetadataResponse> {
    let mut size = [0u8; 4];
    socket.read_exact(&mut size)?;
    let mut answer = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
    socket.read_exact(&mut answer)?;
    let mut answer = Bytes::from(answer);
    let header = ResponseHeader::decode(
        &mut answer,
        ApiKey::Metadata.response_header_version(METADATA_VERSION),
    )
    .unwrap();
    assert_eq!(header.correlation_id, 7);
    Ok(MetadataResponse::decode(&mut answer, METADATA_VERSION).unwrap())
}

#[test]
fn a_broker_answers_clients_only_once_its_metadata_has_caught_up() {
    let voters = three_voters();
    let config = |id: i32| {
        format!(
            "node_id = {id}\ncontroller_quorum_voters = \"{voters}\"\n\
             broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n"
        )
    };
    // Alone, node 1 has no quorum, so no controller answers its heartbeat: it cannot
    // catch up, and a client's Metadata must wait rather than be told of an empty cluster.
    let first = TestBroker::start(&config(1));
    let mut socket = TcpStream::connect(("127.0.0.1", first.port())).unwrap();
    send_metadata(&mut socket);
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    if let Ok(early) = read_metadata(&mut socket) {
        panic!(
            "a broker without a quorum answered Metadata: brokers {:?}, {} topics",
            broker_ids(&early),
            early.topics.len()
        );
    }
    // With a second voter the quorum forms and node 1 catches up: the request that waited
    // is answered, and the answer names node 1 itself.
    let second = TestBroker::start(&config(2));
    let started = Instant::now();
    socket.set_read_timeout(Some(SLACK)).unwrap();
    let answer = read_metadata(&mut socket).expect("answered once caught up");
    let ids = broker_ids(&answer);
    assert!(
        ids.contains(&1),
        "the first answer lists {ids:?} (after {:?})\n{}\n----\n{}",
        started.elapsed(),
        first.logs(),
        second.logs()
    );
}
