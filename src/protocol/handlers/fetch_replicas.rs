//! The replicas side of Fetch in cluster mode:
//! - a follower's fetch, served by the partition's leader role up to its log end;
//! - fetch from the closest replica (KIP-392): from v11 a consumer may fetch from a
//!   follower, which serves up to its own high watermark, and with
//!   `replica_selector_class` set to Kafka's RackAwareReplicaSelector the leader names an
//!   in-sync replica in the consumer's rack (`rack_id`) as its preferred read replica,
//!   answering that partition with no records so the client moves there;
//! - KIP-951: a partition refused with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH
//!   carries the current leader and its epoch (v12+), and the response the leaders'
//!   endpoints (v16+), so the client need not ask Metadata first.

use std::collections::BTreeSet;

use kafka_protocol::messages::fetch_response::{LeaderIdAndEpoch, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchResponse};
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use crate::actors::metadata::PartitionImage;
use crate::actors::partition::{lag_clock_ms, PartitionMsg, ReadOutcome, ReplicationMsg};
use crate::actors::routing::{ClusterView, TopicRoute};
use crate::protocol::context::ask;

use super::text;

/// The first Fetch version a follower may serve to a consumer (KIP-392).
pub const FOLLOWER_FETCH_VERSION: i16 = 11;
/// The first Fetch version with the current leader in a partition's answer (KIP-951).
const CURRENT_LEADER_VERSION: i16 = 12;
/// The first Fetch version with the leaders' endpoints in the response (KIP-951).
const NODE_ENDPOINTS_VERSION: i16 = 16;

/// Kafka's `replica.selector.class` values this broker implements.
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// KIP-392, as Kafka's RackAwareReplicaSelector: the in-sync replica other than this
/// leader whose broker is live and in `client_rack`, the lowest id when several are.
/// None when this broker does not lead the partition, or no such replica exists (then
/// the leader serves the fetch itself).
pub fn preferred_read_replica(
    cluster: &ClusterView,
    placement: &PartitionImage,
    client_rack: &str,
) -> Option<i32> {
    if placement.leader != cluster.node_id {
        return None;
    }
    let leader_rack = cluster.endpoint(cluster.node_id)?.rack.as_deref();
    if leader_rack == Some(client_rack) {
        return None;
    }
    placement
        .isr
        .iter()
        .copied()
        .filter(|id| *id != cluster.node_id)
        .filter(|id| {
            cluster
                .endpoint(*id)
                .is_some_and(|b| b.rack.as_deref() == Some(client_rack))
        })
        .min()
}

/// A follower's fetch of one partition: up to the leader's log end. `on_append` is
/// answered once the log end passes `offset` when the read found nothing (the long poll,
/// parked by the same message as the read), and dropped otherwise.
pub async fn read_for_follower(
    actor: &ractor::ActorRef<PartitionMsg>,
    read_timeout: std::time::Duration,
    (offset, current_leader_epoch, max_bytes): (i64, i32, usize),
    replica_id: i32,
    on_append: oneshot::Sender<()>,
) -> Result<ReadOutcome, i16> {
    let rx = ask(actor, |reply| {
        PartitionMsg::Replication(ReplicationMsg::ReplicaFetch {
            replica_id,
            fetch_offset: offset,
            current_leader_epoch,
            max_bytes,
            now_ms: lag_clock_ms(),
            on_append: Some(on_append.into()),
            reply,
        })
    })
    .ok_or(ResponseError::NotLeaderOrFollower.code())?;
    match tokio::time::timeout(read_timeout, rx).await {
        Ok(Ok(Ok(read))) => Ok(ReadOutcome {
            records: read.records,
            high_watermark: read.high_watermark,
            last_stable_offset: read.high_watermark,
            log_start_offset: read.log_start_offset,
            aborted: Vec::new(),
            next_batch_bytes: read.next_batch_bytes,
        }),
        Ok(Ok(Err(err))) => Err(err.code()),
        Ok(Err(_)) => Err(ResponseError::NotLeaderOrFollower.code()),
        Err(_) => Err(ResponseError::RequestTimedOut.code()),
    }
}

/// KIP-951: the current leader on every partition refused for leadership, and (v16+)
/// the endpoints of those leaders. `routes` pairs each response topic with its route.
pub fn add_leader_hints<'a>(
    response: &mut FetchResponse,
    routes: impl Iterator<Item = Option<&'a TopicRoute>>,
    cluster: &ClusterView,
    version: i16,
    listener: &str,
) {
    if version < CURRENT_LEADER_VERSION {
        return;
    }
    let refused = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::FencedLeaderEpoch.code(),
    ];
    let mut leaders = BTreeSet::new();
    for (topic, route) in response.responses.iter_mut().zip(routes) {
        let Some(route) = route else { continue };
        for p in topic.partitions.iter_mut() {
            if !refused.contains(&p.error_code) {
                continue;
            }
            let Some(placement) = route.placement(p.partition_index) else {
                continue;
            };
            // This broker too: a consumer fenced here learns the epoch it leads at.
            if placement.leader < 0 {
                continue;
            }
            leaders.insert(placement.leader);
            set_current_leader(p, placement.leader, placement.leader_epoch);
        }
    }
    if version < NODE_ENDPOINTS_VERSION {
        return;
    }
    response.node_endpoints = leaders
        .into_iter()
        .filter_map(|id| {
            let broker = cluster.endpoint(id)?;
            let (host, port) = broker.endpoint_for(listener);
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(text(host.to_string()))
                    .with_port(port)
                    .with_rack(broker.rack.clone().map(text)),
            )
        })
        .collect();
}

fn set_current_leader(p: &mut PartitionData, leader: i32, epoch: i32) {
    p.current_leader = LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(epoch);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::actors::metadata::BrokerImage;

    fn cluster(node_id: i32, racks: &[(i32, &str)]) -> ClusterView {
        let brokers: BTreeMap<i32, BrokerImage> = racks
            .iter()
            .map(|(id, rack)| {
                let broker = BrokerImage {
                    epoch: 0,
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    rack: Some(rack.to_string()),
                    fenced: false,
                    listeners: Vec::new(),
                };
                (*id, broker)
            })
            .collect();
        ClusterView {
            node_id,
            brokers,
            caught_up: true,
        }
    }

    fn route(leader: i32, isr: Vec<i32>) -> PartitionImage {
        PartitionImage {
            leader,
            isr,
            ..PartitionImage::new(vec![1, 2, 3])
        }
    }

    #[test]
    fn the_leader_names_an_in_sync_replica_in_the_clients_rack() {
        let racks = [(1, "a"), (2, "b"), (3, "c")];
        let on_1 = cluster(1, &racks);
        // A consumer in rack b: broker 2, in the ISR.
        assert_eq!(
            preferred_read_replica(&on_1, &route(1, vec![1, 2, 3]), "b"),
            Some(2)
        );
        // The leader's own rack, a rack with no replica, or 2 out of the ISR: the leader.
        assert_eq!(
            preferred_read_replica(&on_1, &route(1, vec![1, 2, 3]), "a"),
            None
        );
        assert_eq!(
            preferred_read_replica(&on_1, &route(1, vec![1, 2, 3]), "z"),
            None
        );
        assert_eq!(
            preferred_read_replica(&on_1, &route(1, vec![1, 3]), "b"),
            None
        );
        // Only the leader names one; a fenced broker is never named.
        assert_eq!(
            preferred_read_replica(&cluster(2, &racks), &route(1, vec![1, 2, 3]), "c"),
            None
        );
        let mut fenced = on_1.clone();
        fenced.brokers.get_mut(&2).unwrap().fenced = true;
        assert_eq!(
            preferred_read_replica(&fenced, &route(1, vec![1, 2, 3]), "b"),
            None
        );
    }
}
