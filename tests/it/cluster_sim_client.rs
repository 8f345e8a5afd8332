//! The whole-cluster simulation's Kafka client (`cluster_sim`): requests written with the
//! kafka-protocol codec over turmoil's TCP, through the broker's own inter-broker client
//! code (`broker_client::call`), so every length read back is bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use broker::cluster::broker_client::{self, CallSpec};
use broker::sockets::Stream;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    InitProducerIdRequest, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub(crate) const PORT: u16 = 9092;
/// A whole exchange's deadline on the client's side.
const CALL_WAIT: Duration = Duration::from_secs(3);

/// Error codes a client retries (Kafka's RetriableException subclasses that come up here).
pub(crate) fn retriable(code: i16) -> bool {
    matches!(
        code,
        3 | 5 | 6 | 7 | 13 | 14 | 15 | 16 | 19 | 20 | 56 | 74 | 75 | 76 | 100
    )
}

/// One connection to one broker, requests one at a time.
pub(crate) struct Conn {
    stream: Stream,
    correlation: i32,
}

fn host(id: i32) -> String {
    format!("b{id}")
}

impl Conn {
    pub(crate) async fn open(broker: i32) -> Option<Conn> {
        let addr = format!("{}:{PORT}", host(broker));
        let connect = turmoil::net::TcpStream::connect(addr);
        let stream = tokio::time::timeout(CALL_WAIT, connect).await.ok()?.ok()?;
        Some(Conn {
            stream: Stream::Simulated(Box::new(stream)),
            correlation: 0,
        })
    }

    /// One request and its response; None on any failure (the connection is then useless).
    pub(crate) async fn call<R: Request>(&mut self, version: i16, req: &R) -> Option<R::Response> {
        self.correlation += 1;
        let spec = CallSpec {
            version,
            correlation: self.correlation,
            client_id: "sim-client",
            wait: CALL_WAIT,
            response_limit: 16 << 20,
        };
        broker_client::call(&mut self.stream, spec, req).await.ok()
    }
}

/// Keeps at most one connection per broker, dropping one whose exchange failed.
#[derive(Default)]
pub(crate) struct Conns(BTreeMap<i32, Conn>);

impl Conns {
    pub(crate) async fn call<R: Request>(
        &mut self,
        broker: i32,
        version: i16,
        req: &R,
    ) -> Option<R::Response> {
        let mut conn = match self.0.remove(&broker) {
            Some(conn) => conn,
            None => Conn::open(broker).await?,
        };
        let response = conn.call(version, req).await?;
        self.0.insert(broker, conn);
        Some(response)
    }
}

pub(crate) async fn metadata(conns: &mut Conns, broker: i32) -> Option<MetadataResponse> {
    let req = MetadataRequest::default().with_topics(None);
    conns.call(broker, 12, &req).await
}

/// Leader id and epoch of each partition of `topic` that has a leader, and the ISR size.
pub(crate) fn leaders(meta: &MetadataResponse, topic: &str) -> BTreeMap<i32, (i32, i32, usize)> {
    meta.topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        .map(|p| {
            let leader = (p.leader_id.0, p.leader_epoch, p.isr_nodes.len());
            (p.partition_index, leader)
        })
        .collect()
}

pub(crate) async fn create_topic(
    conns: &mut Conns,
    broker: i32,
    topic: &str,
    partitions: i32,
) -> Option<i16> {
    let config = CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("min.insync.replicas"))
        .with_value(Some(StrBytes::from_static_str("2")));
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(3)
            .with_configs(vec![config])]);
    let resp = conns.call(broker, 7, &req).await?;
    resp.topics.first().map(|t| t.error_code)
}

/// An idempotent producer's id and epoch, or the error code.
pub(crate) async fn init_producer_id(
    conns: &mut Conns,
    broker: i32,
) -> Option<Result<(i64, i16), i16>> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = conns.call(broker, 4, &req).await?;
    Some(match resp.error_code {
        0 => Ok((resp.producer_id.0, resp.producer_epoch)),
        code => Err(code),
    })
}

/// One record `value` as an idempotent batch at `sequence`.
pub(crate) fn batch(producer: (i64, i16), sequence: i32, value: &[u8]) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: producer.0,
        producer_epoch: producer.1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("a batch encodes");
    buf.freeze()
}

/// Produce acks=all of `records` to one partition: (error code, base offset).
pub(crate) async fn produce(
    conns: &mut Conns,
    broker: i32,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> Option<(i16, i64)> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1_500)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let resp = conns.call(broker, 9, &req).await?;
    let p = resp.responses.first()?.partition_responses.first()?;
    Some((p.error_code, p.base_offset))
}

/// What one Fetch of one partition answered.
pub(crate) struct Fetched {
    pub(crate) error_code: i16,
    pub(crate) high_watermark: i64,
    /// (offset, value) of each data record, control batches left out.
    pub(crate) records: Vec<(i64, Vec<u8>)>,
}

/// A consumer's Fetch (replica id -1, read committed up to the high watermark). From
/// `version` 11 a follower serves it too, up to its own high watermark (KIP-392); below, only
/// the leader does.
pub(crate) async fn fetch(
    conns: &mut Conns,
    version: i16,
    broker: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Option<Fetched> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(256 << 10)])]);
    let resp = conns.call(broker, version, &req).await?;
    let p = resp.responses.first()?.partitions.first()?;
    let mut records = Vec::new();
    if let Some(bytes) = &p.records {
        records = decode(bytes.clone())?;
    }
    Some(Fetched {
        error_code: p.error_code,
        high_watermark: p.high_watermark,
        records,
    })
}

/// The data records of the whole batches in `bytes` (a fetch may end in part of one).
pub(crate) fn decode(mut bytes: Bytes) -> Option<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let length = i32::from_be_bytes(bytes[8..12].try_into().ok()?);
        let whole = 12 + usize::try_from(length).ok()?;
        if bytes.len() < whole {
            break;
        }
        let mut one = bytes.split_to(whole);
        let set = RecordBatchDecoder::decode(&mut one).ok()?;
        for record in set.records.into_iter().filter(|r| !r.control) {
            out.push((
                record.offset,
                record.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
    }
    Some(out)
}

/// The coordinator of `group`, or the error code.
pub(crate) async fn find_coordinator(
    conns: &mut Conns,
    broker: i32,
    group: &str,
) -> Option<Result<i32, i16>> {
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.into()))
        .with_key_type(0);
    let resp = conns.call(broker, 3, &req).await?;
    Some(match resp.error_code {
        0 => Ok(resp.node_id.0),
        code => Err(code),
    })
}

/// A simple (generation -1) commit of `offset` for one partition: its error code.
pub(crate) async fn commit(
    conns: &mut Conns,
    broker: i32,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Option<i16> {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])]);
    let resp = conns.call(broker, 8, &req).await?;
    Some(resp.topics.first()?.partitions.first()?.error_code)
}

/// The committed offset of one partition (-1: none), or the error code.
pub(crate) async fn committed(
    conns: &mut Conns,
    broker: i32,
    group: &str,
    topic: &str,
    partition: i32,
) -> Option<Result<i64, i16>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_indexes(vec![partition])]));
    let resp = conns.call(broker, 7, &req).await?;
    if resp.error_code != 0 {
        return Some(Err(resp.error_code));
    }
    let p = resp.topics.first()?.partitions.first()?;
    Some(match p.error_code {
        0 => Ok(p.committed_offset),
        code => Err(code),
    })
}
