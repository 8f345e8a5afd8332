//! Raw Kafka frames over TCP, for hostile-input tests: requests a client library would
//! refuse to send (repeated partitions, absurd limits, invalid acks, giant config values).
//! Every read has a timeout, so a broker that stops answering fails the test, not hangs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub struct Wire {
    stream: TcpStream,
    correlation: i32,
}

pub fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic(s: &str) -> TopicName {
    TopicName(text(s))
}

impl Wire {
    pub fn connect(port: u16) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the broker");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Wire {
            stream,
            correlation: 0,
        }
    }

    /// Sends `req` at `version`; the decoded response, or None when the broker closed the
    /// connection instead of answering.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> Option<R::Response> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(text("hostile")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header encodes");
        req.encode(&mut body, version).expect("request encodes");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).ok()?;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).ok()?;
        let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut response).ok()?;
        let mut buf = Bytes::from(response);
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut buf, header_version).expect("header decodes");
        assert_eq!(header.correlation_id, self.correlation);
        Some(R::Response::decode(&mut buf, version).expect("response decodes"))
    }

    /// Sends `bytes` as one size-prefixed frame with no Kafka header (a SASL token after a
    /// v0 handshake) and reads one such frame back; None when the broker closed instead.
    pub fn raw_token(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut frame = (bytes.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(bytes);
        self.stream.write_all(&frame).ok()?;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).ok()?;
        let mut response = vec![0u8; i32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut response).ok()?;
        Some(response)
    }

    /// Writes bytes as they are (a frame of any length prefix).
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Whether the broker closed the connection: a read ends (EOF or reset) within the
    /// read timeout without any byte.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    /// Creates a topic and asserts it was created.
    pub fn create_topic(&mut self, name: &str, partitions: i32) {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let resp = self.call(5, &req).expect("CreateTopics answered");
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    }

    /// Produces one batch to `name`/`partition` with `acks`; the partition's error code.
    pub fn produce(&mut self, name: &str, partition: i32, acks: i16, batch: Vec<u8>) -> i16 {
        self.produce_answer(name, partition, acks, batch).error_code
    }

    /// IncrementalAlterConfigs SET of one config on a resource (2 topic, 4 broker): the
    /// error code and message.
    pub fn set_config(
        &mut self,
        kind: i8,
        resource: &str,
        name: &str,
        value: &str,
    ) -> (i16, String) {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(text(resource))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text(name))
                    .with_config_operation(0)
                    .with_value(Some(text(value)))]),
        ]);
        let resp = self
            .call(1, &req)
            .expect("IncrementalAlterConfigs answered");
        let r = &resp.responses[0];
        let message = r.error_message.as_ref().map(|m| m.to_string());
        (r.error_code, message.unwrap_or_default())
    }

    /// Produces one batch to `name`/`partition` with `acks`; the partition's answer.
    pub fn produce_answer(
        &mut self,
        name: &str,
        partition: i32,
        acks: i16,
        batch: Vec<u8>,
    ) -> produce_response::PartitionProduceResponse {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(batch)))])]);
        let mut resp = self.call(9, &req).expect("Produce answered");
        resp.responses.remove(0).partition_responses.remove(0)
    }

    /// The latest offset (log end) of `name`/`partition`, as ListOffsets answers it.
    pub fn latest_offset(&mut self, name: &str, partition: i32) -> i64 {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1)])]);
        let resp = self.call(5, &req).expect("ListOffsets answered");
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    }
}

/// A field of /proc/<pid>/status in bytes (VmHWM: peak resident memory; VmRSS: now).
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}
