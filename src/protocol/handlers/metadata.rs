//! Metadata v0-v12: brokers (this one; in a cluster every unfenced one), cluster id,
//! controller, and topics with their ids and partitions (in a cluster each partition's
//! leader, leader epoch, replicas, ISR and offline replicas, as the quorum committed them). `topics = null` (v1+) or an empty list (v0) means every topic. Missing
//! topics are auto-created when the broker allows it and the request does (v4+).

use std::collections::BTreeSet;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, ResponseKind};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{text, topic_name};
use crate::actors::metadata::MetadataMsg;
use crate::actors::metadata::PartitionImage;
use crate::actors::routing::{ClusterView, TopicRoute};
use crate::coordinator::offsets_topic::OFFSETS_TOPIC;
use crate::coordinator::transaction_state_topic::TRANSACTION_STATE_TOPIC;
use crate::protocol::context::{ask, ClientInfo};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authorizer_view::{AuthorizerView, CLUSTER_NAME};
use crate::topic_config::validate_topic_name;

enum Wanted {
    Name(String),
    Id(Uuid),
}

pub async fn prepare(
    ctx: &BrokerContext,
    version: i16,
    req: MetadataRequest,
    client: &ClientInfo,
    view: &AuthorizerView,
) -> ResponseFuture {
    let wanted: Option<Vec<Wanted>> = match req.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.into_iter()
                .map(|t| match t.name {
                    Some(name) => Wanted::Name(name.0.to_string()),
                    None => Wanted::Id(t.topic_id),
                })
                .collect(),
        ),
    };
    let allow_auto =
        ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    if let (Some(list), true) = (&wanted, allow_auto) {
        let routes = ctx.routes();
        let missing: Vec<String> = list
            .iter()
            .filter_map(|w| match w {
                Wanted::Name(n)
                    if routes.topic(n).is_none()
                        && validate_topic_name(n).is_ok()
                        && view.allows_topic(AclOperation::Describe, n)
                        && view.allows_create_topic(n) =>
                {
                    Some(n.clone())
                }
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            if let Some(rx) = ask(&ctx.metadata, |reply| MetadataMsg::EnsureTopics {
                names: missing,
                reply,
            }) {
                let _ = rx.await;
            }
        }
    }
    let ctx = ctx.clone();
    let advertised = ctx.advertised_for(&client.listener);
    let asks = Asks {
        topic_operations: req.include_topic_authorized_operations,
        cluster_operations: req.include_cluster_authorized_operations,
        auto_create: allow_auto,
    };
    let view = view.clone();
    let listener = client.listener.clone();
    Box::pin(async move {
        let advertised = (advertised, listener.as_str());
        ResponseKind::Metadata(build(&ctx, wanted, advertised, &view, asks))
    })
}

/// KIP-430: which authorized-operation sets the request asked for.
#[derive(Clone, Copy)]
struct Asks {
    topic_operations: bool,
    cluster_operations: bool,
    /// Missing topics were to be auto-created (if the principal may create them).
    auto_create: bool,
}

fn build(
    ctx: &BrokerContext,
    wanted: Option<Vec<Wanted>>,
    ((host, port), listener): ((String, i32), &str),
    view: &AuthorizerView,
    asks: Asks,
) -> MetadataResponse {
    let routes = ctx.routes();
    let node = BrokerId(ctx.config.node_id);
    let cluster = routes.cluster.as_deref();
    let describable = |name: &str| view.allows_topic(AclOperation::Describe, name);
    let topic_entry = |route: &TopicRoute| {
        let entry = topic_entry(route, node, cluster);
        if asks.topic_operations {
            entry.with_topic_authorized_operations(
                view.authorized_operations(ResourceType::Topic, &route.name),
            )
        } else {
            entry
        }
    };
    let denied = |name: &str| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
    };
    let topics = match wanted {
        // Every topic: those the principal may not describe are left out.
        None => routes
            .topics()
            .into_iter()
            .filter(|r| describable(&r.name))
            .map(|r| topic_entry(r))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|w| match w {
                Wanted::Name(name) if !describable(&name) => denied(&name),
                Wanted::Name(name) => match routes.topic(&name) {
                    Some(route) => topic_entry(route),
                    // Missing, and auto-creation refused for want of CREATE.
                    None if asks.auto_create
                        && validate_topic_name(&name).is_ok()
                        && !routes.starting.contains(&name)
                        && !view.allows_create_topic(&name) =>
                    {
                        denied(&name)
                    }
                    None => {
                        let code = if validate_topic_name(&name).is_err() {
                            ResponseError::InvalidTopicException.code()
                        } else if routes.starting.contains(&name) {
                            // Created, its partitions still starting (Kafka's answer for
                            // a topic without leaders yet).
                            ResponseError::LeaderNotAvailable.code()
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        };
                        MetadataResponseTopic::default()
                            .with_name(Some(topic_name(&name)))
                            .with_error_code(code)
                    }
                },
                Wanted::Id(id) => match routes.topic_by_id(&id) {
                    Some(route) if describable(&route.name) => topic_entry(route),
                    _ => MetadataResponseTopic::default()
                        .with_topic_id(id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    let brokers = match cluster {
        Some(cluster) => cluster
            .brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, b)| {
                let (host, port) = b.endpoint_for(listener);
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(*id))
                    .with_host(text(host.to_string()))
                    .with_port(port)
                    .with_rack(b.rack.clone().map(text))
            })
            .collect(),
        None => vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(text(host))
            .with_port(port)],
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(text(ctx.config.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
        .with_cluster_authorized_operations(if asks.cluster_operations {
            view.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            i32::MIN
        })
}

fn topic_entry(
    route: &TopicRoute,
    node: BrokerId,
    cluster: Option<&ClusterView>,
) -> MetadataResponseTopic {
    let partitions = (0..route.partitions.len() as i32)
        .map(|index| match (cluster, route.placement(index)) {
            (Some(cluster), Some(p)) => placed_partition(cluster, index, p),
            _ => MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]),
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&route.name)))
        .with_topic_id(route.id)
        .with_is_internal(route.name == OFFSETS_TOPIC || route.name == TRANSACTION_STATE_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

/// A partition as the quorum placed it; replicas on fenced brokers are offline, and a
/// partition with no leader is LEADER_NOT_AVAILABLE.
fn placed_partition(
    cluster: &ClusterView,
    index: i32,
    p: &PartitionImage,
) -> MetadataResponsePartition {
    let ids = |list: &[i32]| list.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let offline: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|id| cluster.endpoint(*id).is_none())
        .collect();
    let code = if p.leader == -1 {
        ResponseError::LeaderNotAvailable.code()
    } else {
        0
    };
    MetadataResponsePartition::default()
        .with_error_code(code)
        .with_partition_index(index)
        .with_leader_id(BrokerId(p.leader))
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(ids(&p.replicas))
        .with_isr_nodes(ids(&p.isr))
        .with_offline_replicas(ids(&offline))
}
