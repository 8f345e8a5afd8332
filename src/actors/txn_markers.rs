//! Where a transaction's markers go, and the WriteTxnMarkers request (API 27) that carries
//! them to partitions led by other brokers (Kafka's TransactionMarkerChannelManager).
//!
//! A partition led here takes its marker from its partition actor; one led by another
//! broker gets it over an inter-broker connection, one request per broker for all its
//! partitions. A group's pending offsets end with a marker on its `__consumer_offsets`
//! partition, at that partition's leader (the group's coordinator). A partition whose
//! leader moved answers NOT_LEADER_OR_FOLLOWER; the coordinator tries again with a fresh
//! routing snapshot until every marker is written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use ractor::ActorRef;

use super::partition::PartitionMsg;
use super::routing::RoutingTable;
use crate::cluster::broker_client::{self, CallSpec};
use crate::coordinator::offsets_topic::{partition_for, OFFSETS_TOPIC};

/// The only WriteTxnMarkers version there is.
pub const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// Bounds a WriteTxnMarkers response (a result per partition, nothing more).
const RESPONSE_LIMIT: usize = 1024 * 1024;

/// Where one transaction's markers go, from one routing snapshot.
#[derive(Default)]
pub struct MarkerPlan {
    /// Partitions led here (every one in single-node mode).
    pub local: Vec<(String, i32, ActorRef<PartitionMsg>)>,
    /// Groups coordinated here (every one in single-node mode).
    pub local_groups: Vec<String>,
    /// By leader address: the partitions it leads, `__consumer_offsets` ones included.
    pub remote: BTreeMap<String, BTreeSet<(String, i32)>>,
    /// Partitions with no leader now: tried again later.
    pub leaderless: Vec<String>,
}

impl MarkerPlan {
    pub fn new(
        routes: &RoutingTable,
        partitions: &BTreeSet<(String, i32)>,
        groups: &BTreeSet<String>,
    ) -> MarkerPlan {
        let mut plan = MarkerPlan::default();
        for (topic, partition) in partitions {
            // A topic deleted meanwhile has nobody left to read the marker.
            let Some(route) = routes.topic(topic) else {
                continue;
            };
            let Some(actor) = route.partition(*partition) else {
                continue;
            };
            match routes.cluster.as_ref().and_then(|c| {
                let leader = c.not_leader(route, *partition)?;
                Some(c.endpoint(leader).map(|b| format!("{}:{}", b.host, b.port)))
            }) {
                None => plan.local.push((topic.clone(), *partition, actor.clone())),
                Some(Some(address)) => {
                    let led = plan.remote.entry(address).or_default();
                    led.insert((topic.clone(), *partition));
                }
                Some(None) => plan.leaderless.push(format!("{topic}-{partition}")),
            }
        }
        let offsets = routes.topic(OFFSETS_TOPIC);
        for group_id in groups {
            let (Some(cluster), Some(route)) = (routes.cluster.as_ref(), offsets) else {
                plan.local_groups.push(group_id.clone());
                continue;
            };
            let index = partition_for(group_id, route.partitions.len() as i32);
            match cluster.not_leader(route, index) {
                None => plan.local_groups.push(group_id.clone()),
                Some(leader) => match cluster.endpoint(leader) {
                    Some(b) => {
                        let led = plan.remote.entry(format!("{}:{}", b.host, b.port));
                        led.or_default().insert((OFFSETS_TOPIC.to_string(), index));
                    }
                    None => plan.leaderless.push(format!("group {group_id}")),
                },
            }
        }
        plan
    }
}

/// One transaction's marker for other brokers.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Sends the marker for `partitions` to the broker at `address` in one WriteTxnMarkers
/// request; answers the partitions not written, each with why.
pub async fn write_remote(
    connector: &broker_client::BrokerConnector,
    address: &str,
    marker: Marker,
    partitions: &BTreeSet<(String, i32)>,
    wait: Duration,
) -> Vec<String> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics)]);
    let spec = CallSpec {
        version: WRITE_TXN_MARKERS_VERSION,
        correlation: 1,
        client_id: "txn-marker-sender",
        wait,
        response_limit: RESPONSE_LIMIT,
    };
    let answer = async {
        let mut connection = connector.connect(address, wait).await?;
        broker_client::call(&mut connection.stream, spec, &req).await
    };
    let resp = match answer.await {
        Ok(resp) => resp,
        Err(err) => {
            return partitions
                .iter()
                .map(|(t, p)| format!("{t}-{p} at {address}: {err}"))
                .collect()
        }
    };
    let results: BTreeMap<(String, i32), i16> = resp
        .markers
        .iter()
        .filter(|m| m.producer_id.0 == marker.producer_id)
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| ((t.name.0.to_string(), p.partition_index), p.error_code))
        })
        .collect();
    partitions
        .iter()
        .filter_map(|key| match results.get(key) {
            Some(0) => None,
            Some(code) => Some(format!("{}-{} at {address}: error {code}", key.0, key.1)),
            None => Some(format!("{}-{} at {address}: no answer", key.0, key.1)),
        })
        .collect()
}
