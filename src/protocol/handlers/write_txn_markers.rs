//! WriteTxnMarkers v1 (API 27): another broker's transaction coordinator ends a
//! transaction in the partitions this broker leads. Each partition's actor writes the
//! commit or abort marker; on a `__consumer_offsets` partition the marker ends the
//! producer's pending offsets in every group of that partition, coordinated here. A
//! partition led elsewhere answers NOT_LEADER_OR_FOLLOWER, so the coordinator looks up
//! the new leader and sends it there.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ResponseKind, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;

use crate::actors::group_registry::GroupRegistryMsg;
use crate::actors::partition::PartitionMsg;
use crate::actors::Reply;
use crate::coordinator::offsets_topic::OFFSETS_TOPIC;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

enum Pending {
    Marker(Option<Reply<Result<(), crate::error::PartitionError>>>),
    Groups(Option<Reply<i16>>),
    Refused(i16),
}

pub fn prepare(ctx: &BrokerContext, req: WriteTxnMarkersRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let mut markers = Vec::with_capacity(req.markers.len());
    for marker in req.markers {
        let (producer_id, commit) = (marker.producer_id.0, marker.transaction_result);
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let route = routes.topic(topic.name.0.as_str());
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for index in topic.partition_indexes {
                let pending = match route.and_then(|r| Some((r, r.partition(index)?))) {
                    None => Pending::Refused(ResponseError::UnknownTopicOrPartition.code()),
                    Some((route, actor)) => {
                        let elsewhere = routes
                            .cluster
                            .as_ref()
                            .and_then(|c| c.not_leader(route, index));
                        if elsewhere.is_some() {
                            Pending::Refused(ResponseError::NotLeaderOrFollower.code())
                        } else if route.name == OFFSETS_TOPIC {
                            Pending::Groups(ask(&ctx.groups, |reply| GroupRegistryMsg::TxnMarker {
                                partition: index,
                                producer_id,
                                commit,
                                reply,
                            }))
                        } else {
                            Pending::Marker(ask(actor, |reply| PartitionMsg::WriteTxnMarker {
                                producer_id,
                                producer_epoch: marker.producer_epoch,
                                commit,
                                coordinator_epoch: marker.coordinator_epoch,
                                reply,
                            }))
                        }
                    }
                };
                partitions.push((index, pending));
            }
            topics.push((topic.name, partitions));
        }
        markers.push((marker.producer_id, topics));
    }
    Box::pin(async move {
        let gone = ResponseError::NotLeaderOrFollower.code();
        let mut results = Vec::with_capacity(markers.len());
        for (producer_id, topics) in markers {
            let mut topic_results = Vec::with_capacity(topics.len());
            for (name, partitions) in topics {
                let mut partition_results = Vec::with_capacity(partitions.len());
                for (index, pending) in partitions {
                    let code = match pending {
                        Pending::Refused(code) => code,
                        Pending::Marker(Some(rx)) => match rx.await {
                            Ok(Ok(())) => 0,
                            Ok(Err(err)) => err.code(),
                            Err(_) => gone,
                        },
                        Pending::Groups(Some(rx)) => rx.await.unwrap_or(gone),
                        Pending::Marker(None) | Pending::Groups(None) => gone,
                    };
                    partition_results.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(code),
                    );
                }
                topic_results.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(name)
                        .with_partitions(partition_results),
                );
            }
            results.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(producer_id)
                    .with_topics(topic_results),
            );
        }
        ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(results))
    })
}
