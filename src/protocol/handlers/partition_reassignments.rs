//! AlterPartitionReassignments v0-v1 and ListPartitionReassignments v0 (KIP-455).
//! Alter goes to the controller on the quorum's leader (see `cluster::reassignment`);
//! List reads the reassignments under way from this broker's committed metadata. In
//! single-node mode this broker is every partition's only possible replica: moving a
//! partition to itself changes nothing, anything else is INVALID_REPLICA_ASSIGNMENT, and
//! none is ever under way.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};
use kafka_protocol::ResponseError;

use super::{text, topic_name};
use crate::cluster::reassignment::{Reassignment, ReassignmentError};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn alter(ctx: &BrokerContext, req: AlterPartitionReassignmentsRequest) -> ResponseFuture {
    // v0 decodes it as its default, true: any count allowed.
    let allow_rf_change = req.allow_replication_factor_change;
    let requests: Vec<Reassignment> = req
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| Reassignment {
                topic: name.clone(),
                partition: p.partition_index,
                target: p.replicas.map(|r| r.into_iter().map(|b| b.0).collect()),
                allow_replication_factor_change: allow_rf_change,
            })
        })
        .collect();
    let quorum = ctx.quorum.clone();
    let routes = ctx.routes();
    let node = ctx.config.node_id;
    Box::pin(async move {
        let keys: Vec<(String, i32)> = requests
            .iter()
            .map(|r| (r.topic.clone(), r.partition))
            .collect();
        let answers: Vec<((String, i32), i16, Option<String>)> = match quorum {
            Some(quorum) => match quorum.alter_reassignments(requests).await {
                Ok(outcomes) => outcomes
                    .into_iter()
                    .map(|(key, result)| match result {
                        Ok(()) => (key, 0, None),
                        Err(err) => (key, err.code(), Some(err.to_string())),
                    })
                    .collect(),
                Err(err) => {
                    let code = ResponseError::NotController.code();
                    let why = err.to_string();
                    keys.into_iter()
                        .map(|k| (k, code, Some(why.clone())))
                        .collect()
                }
            },
            None => requests
                .into_iter()
                .map(|r| {
                    let known = routes
                        .topic(&r.topic)
                        .is_some_and(|t| t.partition(r.partition).is_some());
                    let result = match r.target {
                        _ if !known => Err(ReassignmentError::UnknownTopicOrPartition),
                        None => Err(ReassignmentError::NoReassignmentInProgress),
                        Some(target) if target == [node] => Ok(()),
                        Some(_) => Err(ReassignmentError::InvalidReplicaAssignment(
                            "a single broker holds the only replica of every partition".into(),
                        )),
                    };
                    let key = (r.topic, r.partition);
                    match result {
                        Ok(()) => (key, 0, None),
                        Err(err) => (key, err.code(), Some(err.to_string())),
                    }
                })
                .collect(),
        };
        let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
        for ((topic, partition), code, message) in answers {
            let entry = ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message(message.map(text));
            let name = topic_name(&topic);
            match topics.iter_mut().find(|t| t.name == name) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(
                    ReassignableTopicResponse::default()
                        .with_name(name)
                        .with_partitions(vec![entry]),
                ),
            }
        }
        ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default()
                .with_allow_replication_factor_change(allow_rf_change)
                .with_responses(topics),
        )
    })
}

pub fn list(ctx: &BrokerContext, req: ListPartitionReassignmentsRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let mut topics = Vec::new();
    for route in routes.topics() {
        let asked: Option<&Vec<i32>> = match &wanted {
            None => None,
            Some(list) => match list.iter().find(|(name, _)| *name == route.name) {
                Some((_, partitions)) => Some(partitions),
                None => continue,
            },
        };
        let partitions: Vec<_> = route
            .placements
            .iter()
            .enumerate()
            .filter(|(index, p)| {
                p.reassigning() && asked.is_none_or(|a| a.contains(&(*index as i32)))
            })
            .map(|(index, p)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(index as i32)
                    .with_replicas(ids(&p.replicas))
                    .with_adding_replicas(ids(&p.adding))
                    .with_removing_replicas(ids(&p.removing))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&route.name))
                    .with_partitions(partitions),
            );
        }
    }
    Box::pin(async move {
        ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_topics(topics),
        )
    })
}
