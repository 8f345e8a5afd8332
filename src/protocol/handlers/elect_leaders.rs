//! ElectLeaders v0-v2: preferred (v0 always) or unclean leader elections, decided by the
//! controller on the quorum's leader (see `cluster::elections`). In single-node mode this
//! broker is every partition's only replica and leader, so no election is ever needed.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::{text, topic_name};
use crate::cluster::elections::{ElectLeaders, ElectionError, ElectionOutcome, ElectionType};
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, version: i16, req: ElectLeadersRequest) -> ResponseFuture {
    let election = if version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_wire(req.election_type)
    };
    let partitions: Option<Vec<(String, i32)>> = req.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let quorum = ctx.quorum.clone();
    let routes = ctx.routes();
    Box::pin(async move {
        let Some(election) = election else {
            let why = format!("unknown election type {}", req.election_type);
            let all = failed(&partitions, ResponseError::InvalidRequest.code(), &why);
            return response(ResponseError::InvalidRequest.code(), all);
        };
        let outcomes = match quorum {
            Some(quorum) => {
                let request = ElectLeaders {
                    election,
                    partitions: partitions.clone(),
                };
                match quorum.elect_leaders(request).await {
                    Ok(outcomes) => answered(outcomes),
                    Err(err) => {
                        let code = ResponseError::NotController.code();
                        let all = failed(&partitions, code, &err.to_string());
                        let top = if partitions.is_none() { code } else { 0 };
                        return response(top, all);
                    }
                }
            }
            // Single-node: every existing partition already has its only possible leader.
            None => partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, index)| {
                    let known = routes
                        .topic(&topic)
                        .is_some_and(|t| t.partition(index).is_some());
                    let err = if known {
                        ElectionError::ElectionNotNeeded
                    } else {
                        ElectionError::UnknownTopicOrPartition
                    };
                    ((topic, index), err.code(), Some(err.to_string()))
                })
                .collect(),
        };
        response(0, outcomes)
    })
}

type Answer = ((String, i32), i16, Option<String>);

fn answered(outcomes: Vec<ElectionOutcome>) -> Vec<Answer> {
    outcomes
        .into_iter()
        .map(|(partition, result)| match result {
            Ok(()) => (partition, 0, None),
            Err(err) => (partition, err.code(), Some(err.to_string())),
        })
        .collect()
}

fn failed(partitions: &Option<Vec<(String, i32)>>, code: i16, why: &str) -> Vec<Answer> {
    partitions
        .iter()
        .flatten()
        .map(|p| (p.clone(), code, Some(why.to_string())))
        .collect()
}

/// Results grouped by topic, topics in the order they first appear.
fn response(error_code: i16, answers: Vec<Answer>) -> ResponseKind {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), code, message) in answers {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(text));
        let name = topic_name(&topic);
        match topics.iter_mut().find(|t| t.topic == name) {
            Some(entry) => entry.partition_result.push(result),
            None => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(name)
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ResponseKind::ElectLeaders(
        ElectLeadersResponse::default()
            .with_error_code(error_code)
            .with_replica_election_results(topics),
    )
}
