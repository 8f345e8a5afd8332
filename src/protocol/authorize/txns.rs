//! Transaction and cluster checks: InitProducerId needs WRITE on its transactional id, or
//! without one IDEMPOTENT_WRITE on the cluster (or WRITE on some topic); the other
//! transactional APIs WRITE on the transactional id (AddPartitionsToTxn also WRITE on each
//! topic, AddOffsetsToTxn and TxnOffsetCommit READ on the group, TxnOffsetCommit READ on
//! each topic); ListTransactions and DescribeTransactions DESCRIBE on the id;
//! DescribeLogDirs and DescribeUserScramCredentials DESCRIBE on the cluster,
//! AlterUserScramCredentials ALTER on it. DescribeCluster needs nothing but reports the
//! cluster's authorized operations when asked (KIP-430).

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{
    serve, serve_then, split, Checked, CLUSTER_DENIED, GROUP_DENIED, TOPIC_DENIED, TXN_ID_DENIED,
};
use crate::security::acl::{AclOperation as Op, ResourceType};
use crate::security::authorizer_view::{AuthorizerView, CLUSTER_NAME};

pub fn init_producer_id(req: InitProducerIdRequest, view: &AuthorizerView) -> Checked {
    let code = match &req.transactional_id {
        Some(id) if !view.allows_transactional_id(Op::Write, id) => Some(TXN_ID_DENIED),
        Some(_) => None,
        None if !view.allows_cluster(Op::IdempotentWrite) && !view.allows_any_topic_write() => {
            Some(CLUSTER_DENIED)
        }
        None => None,
    };
    match code {
        Some(code) => Checked::Refuse(ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )),
        None => Checked::Serve(RequestKind::InitProducerId(req), None),
    }
}

/// v0-v3: one transaction. Refused whole when the id or any topic is refused: the
/// refused partitions get their error, the others OPERATION_NOT_ATTEMPTED, as in Kafka.
pub fn add_partitions_to_txn(req: AddPartitionsToTxnRequest, view: &AuthorizerView) -> Checked {
    use add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };
    let id_denied = !view.allows_transactional_id(Op::Write, &req.v3_and_below_transactional_id);
    let mut any_denied = id_denied;
    let codes: Vec<_> = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let code = if id_denied {
                Some(TXN_ID_DENIED)
            } else if !view.allows_topic(Op::Write, &t.name) {
                any_denied = true;
                Some(TOPIC_DENIED)
            } else {
                None
            };
            (t, code)
        })
        .collect();
    if !any_denied {
        return Checked::Serve(RequestKind::AddPartitionsToTxn(req), None);
    }
    let not_attempted = ResponseError::OperationNotAttempted.code();
    let results = codes
        .into_iter()
        .map(|(topic, code)| {
            let partitions = topic.partitions.iter().map(|p| {
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(*p)
                    .with_partition_error_code(code.unwrap_or(not_attempted))
            });
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions.collect())
        })
        .collect();
    Checked::Refuse(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    ))
}

pub fn add_offsets_to_txn(req: AddOffsetsToTxnRequest, view: &AuthorizerView) -> Checked {
    let code = if !view.allows_transactional_id(Op::Write, &req.transactional_id) {
        TXN_ID_DENIED
    } else if !view.allows_group(Op::Read, &req.group_id) {
        GROUP_DENIED
    } else {
        return Checked::Serve(RequestKind::AddOffsetsToTxn(req), None);
    };
    Checked::Refuse(ResponseKind::AddOffsetsToTxn(
        AddOffsetsToTxnResponse::default().with_error_code(code),
    ))
}

pub fn txn_offset_commit(mut req: TxnOffsetCommitRequest, view: &AuthorizerView) -> Checked {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let code = if !view.allows_transactional_id(Op::Write, &req.transactional_id) {
        TXN_ID_DENIED
    } else if !view.allows_group(Op::Read, &req.group_id) {
        GROUP_DENIED
    } else {
        TOPIC_DENIED
    };
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        code == TOPIC_DENIED && view.allows_topic(Op::Read, &t.name)
    });
    let answer = move |denied: Vec<txn_offset_commit_request::TxnOffsetCommitRequestTopic>| {
        denied.into_iter().map(move |topic| {
            let partitions = topic.partitions.iter().map(|p| {
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            });
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions.collect())
        })
    };
    if code != TOPIC_DENIED {
        return Checked::Refuse(ResponseKind::TxnOffsetCommit(
            TxnOffsetCommitResponse::default().with_topics(answer(denied).collect()),
        ));
    }
    req.topics = kept;
    serve(
        RequestKind::TxnOffsetCommit(req),
        denied,
        move |resp, denied| {
            if let ResponseKind::TxnOffsetCommit(r) = resp {
                r.topics.extend(answer(denied));
            }
        },
    )
}

pub fn end_txn(req: EndTxnRequest, view: &AuthorizerView) -> Checked {
    if view.allows_transactional_id(Op::Write, &req.transactional_id) {
        return Checked::Serve(RequestKind::EndTxn(req), None);
    }
    Checked::Refuse(ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(TXN_ID_DENIED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    ))
}

/// Lists only the transactional ids the principal may describe.
pub fn list_transactions(req: ListTransactionsRequest, view: &AuthorizerView) -> Checked {
    let view = view.clone();
    serve_then(RequestKind::ListTransactions(req), move |resp| {
        if let ResponseKind::ListTransactions(r) = resp {
            r.transaction_states
                .retain(|t| view.allows_transactional_id(Op::Describe, &t.transactional_id));
        }
    })
}

pub fn describe_transactions(
    mut req: DescribeTransactionsRequest,
    view: &AuthorizerView,
) -> Checked {
    use describe_transactions_response::TransactionState;
    let (kept, denied) = split(std::mem::take(&mut req.transactional_ids), |id| {
        view.allows_transactional_id(Op::Describe, id)
    });
    req.transactional_ids = kept;
    serve(
        RequestKind::DescribeTransactions(req),
        denied,
        |resp, denied| {
            if let ResponseKind::DescribeTransactions(r) = resp {
                r.transaction_states.extend(denied.into_iter().map(|id| {
                    TransactionState::default()
                        .with_transactional_id(id)
                        .with_error_code(TXN_ID_DENIED)
                }));
            }
        },
    )
}

pub fn describe_log_dirs(req: DescribeLogDirsRequest, view: &AuthorizerView) -> Checked {
    if view.allows_cluster(Op::Describe) {
        return Checked::Serve(RequestKind::DescribeLogDirs(req), None);
    }
    Checked::Refuse(ResponseKind::DescribeLogDirs(
        DescribeLogDirsResponse::default().with_error_code(CLUSTER_DENIED),
    ))
}

pub fn describe_user_scram_credentials(
    req: DescribeUserScramCredentialsRequest,
    view: &AuthorizerView,
) -> Checked {
    if view.allows_cluster(Op::Describe) {
        return Checked::Serve(RequestKind::DescribeUserScramCredentials(req), None);
    }
    Checked::Refuse(ResponseKind::DescribeUserScramCredentials(
        DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER_DENIED),
    ))
}

pub fn alter_user_scram_credentials(
    req: AlterUserScramCredentialsRequest,
    view: &AuthorizerView,
) -> Checked {
    use alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
    if view.allows_cluster(Op::Alter) {
        return Checked::Serve(RequestKind::AlterUserScramCredentials(req), None);
    }
    let mut users: Vec<_> = req
        .deletions
        .iter()
        .map(|d| d.name.clone())
        .chain(req.upsertions.iter().map(|u| u.name.clone()))
        .collect();
    users.sort();
    users.dedup();
    let results = users
        .into_iter()
        .map(|user| {
            AlterUserScramCredentialsResult::default()
                .with_user(user)
                .with_error_code(CLUSTER_DENIED)
        })
        .collect();
    Checked::Refuse(ResponseKind::AlterUserScramCredentials(
        AlterUserScramCredentialsResponse::default().with_results(results),
    ))
}

pub fn describe_cluster(req: DescribeClusterRequest, view: &AuthorizerView) -> Checked {
    if !req.include_cluster_authorized_operations {
        return Checked::Serve(RequestKind::DescribeCluster(req), None);
    }
    let operations = view.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    serve_then(RequestKind::DescribeCluster(req), move |resp| {
        if let ResponseKind::DescribeCluster(r) = resp {
            r.cluster_authorized_operations = operations;
        }
    })
}
