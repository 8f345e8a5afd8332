//! ListOffsets v1-v8: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4)
//! and by timestamp. Every answer comes from the partition actor, the one owner of the
//! log start offset and high watermark. A timestamp after the last record answers -1.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use crate::actors::partition::PartitionMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, version: i16, req: ListOffsetsRequest) -> ResponseFuture {
    let routes = ctx.routes();
    // Kafka's IsolationLevel: 1 is READ_COMMITTED (latest = the last stable offset).
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let route = routes.topic(topic.name.0.as_str()).cloned();
        let mut pending = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let rx = route
                .as_ref()
                .and_then(|r| r.partition(p.partition_index))
                .and_then(|actor| {
                    ask(actor, |reply| PartitionMsg::ListOffset {
                        timestamp: p.timestamp,
                        read_committed,
                        reply,
                    })
                });
            pending.push((p.partition_index, rx));
        }
        topics.push((topic.name, pending));
    }
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, pending) in topics {
            let mut partitions = Vec::with_capacity(pending.len());
            for (index, rx) in pending {
                let entry = ListOffsetsPartitionResponse::default().with_partition_index(index);
                partitions.push(match rx {
                    None => entry
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_timestamp(-1)
                        .with_offset(-1),
                    Some(rx) => match rx.await {
                        Ok(Ok((offset, timestamp))) => {
                            let entry = entry.with_offset(offset).with_timestamp(timestamp);
                            // The leader epoch exists from v4 on; the codec refuses it before.
                            if version >= 4 && offset >= 0 {
                                entry.with_leader_epoch(0)
                            } else {
                                entry
                            }
                        }
                        Ok(Err(err)) => entry
                            .with_error_code(err.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                        Err(_) => entry
                            .with_error_code(ResponseError::NotLeaderOrFollower.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                    },
                });
            }
            responses.push(
                ListOffsetsTopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions),
            );
        }
        ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(responses))
    })
}
