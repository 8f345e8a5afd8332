//! Group checks: the membership APIs and OffsetCommit need READ on the group (OffsetCommit
//! also READ on each topic), OffsetFetch and DescribeGroups DESCRIBE on the group (and
//! OffsetFetch DESCRIBE on each topic), DeleteGroups DELETE, OffsetDelete DELETE on the
//! group and READ on each topic, ListGroups DESCRIBE on the cluster or on each group it
//! lists, FindCoordinator DESCRIBE on the group or transactional id.

use std::collections::HashSet;

use kafka_protocol::messages::*;

use super::{serve, serve_then, split, Checked, GROUP_DENIED, TOPIC_DENIED, TXN_ID_DENIED};
use crate::security::acl::{AclOperation as Op, ResourceType};
use crate::security::authorizer_view::AuthorizerView;

fn group_read_denied(view: &AuthorizerView, group: &GroupId) -> bool {
    !view.allows_group(Op::Read, group)
}

pub fn join_group(req: JoinGroupRequest, view: &AuthorizerView) -> Checked {
    if group_read_denied(view, &req.group_id) {
        return Checked::Refuse(ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(GROUP_DENIED)
                .with_generation_id(-1)
                .with_member_id(req.member_id),
        ));
    }
    Checked::Serve(RequestKind::JoinGroup(req), None)
}

pub fn sync_group(req: SyncGroupRequest, view: &AuthorizerView) -> Checked {
    if group_read_denied(view, &req.group_id) {
        return Checked::Refuse(ResponseKind::SyncGroup(
            SyncGroupResponse::default().with_error_code(GROUP_DENIED),
        ));
    }
    Checked::Serve(RequestKind::SyncGroup(req), None)
}

pub fn heartbeat(req: HeartbeatRequest, view: &AuthorizerView) -> Checked {
    if group_read_denied(view, &req.group_id) {
        return Checked::Refuse(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(GROUP_DENIED),
        ));
    }
    Checked::Serve(RequestKind::Heartbeat(req), None)
}

pub fn leave_group(req: LeaveGroupRequest, view: &AuthorizerView) -> Checked {
    if group_read_denied(view, &req.group_id) {
        return Checked::Refuse(ResponseKind::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(GROUP_DENIED),
        ));
    }
    Checked::Serve(RequestKind::LeaveGroup(req), None)
}

pub fn offset_commit(mut req: OffsetCommitRequest, view: &AuthorizerView) -> Checked {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let code = if group_read_denied(view, &req.group_id) {
        GROUP_DENIED
    } else {
        TOPIC_DENIED
    };
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        code == TOPIC_DENIED && view.allows_topic(Op::Read, &t.name)
    });
    let answer = move |denied: Vec<offset_commit_request::OffsetCommitRequestTopic>| {
        denied.into_iter().map(move |topic| {
            let partitions = topic.partitions.iter().map(|p| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            });
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions.collect())
        })
    };
    if code == GROUP_DENIED {
        return Checked::Refuse(ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(answer(denied).collect()),
        ));
    }
    req.topics = kept;
    serve(
        RequestKind::OffsetCommit(req),
        denied,
        move |resp, denied| {
            if let ResponseKind::OffsetCommit(r) = resp {
                r.topics.extend(answer(denied));
            }
        },
    )
}

/// Before v8 one group: refused whole with GROUP_AUTHORIZATION_FAILED. From v8 each group
/// is checked on its own. Either way, topics the principal may not describe are
/// TOPIC_AUTHORIZATION_FAILED where named and left out where every topic was asked for.
pub fn offset_fetch(version: i16, mut req: OffsetFetchRequest, view: &AuthorizerView) -> Checked {
    use offset_fetch_response::OffsetFetchResponseGroup;
    if version < 8 {
        if !view.allows_group(Op::Describe, &req.group_id) {
            return Checked::Refuse(ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_error_code(GROUP_DENIED),
            ));
        }
        let listing = req.topics.is_none();
        let view = view.clone();
        return serve_then(RequestKind::OffsetFetch(req), move |resp| {
            let ResponseKind::OffsetFetch(r) = resp else {
                return;
            };
            if listing {
                r.topics
                    .retain(|t| view.allows_topic(Op::Describe, &t.name));
            }
            for topic in &mut r.topics {
                if !view.allows_topic(Op::Describe, &topic.name) {
                    for p in &mut topic.partitions {
                        p.error_code = TOPIC_DENIED;
                        p.committed_offset = -1;
                        p.metadata = None;
                    }
                }
            }
        });
    }
    let (kept, denied) = split(std::mem::take(&mut req.groups), |g| {
        view.allows_group(Op::Describe, &g.group_id)
    });
    let listing: HashSet<GroupId> = kept
        .iter()
        .filter(|g| g.topics.is_none())
        .map(|g| g.group_id.clone())
        .collect();
    req.groups = kept;
    let view = view.clone();
    serve_then(RequestKind::OffsetFetch(req), move |resp| {
        let ResponseKind::OffsetFetch(r) = resp else {
            return;
        };
        for group in &mut r.groups {
            if listing.contains(&group.group_id) {
                group
                    .topics
                    .retain(|t| view.allows_topic(Op::Describe, &t.name));
            }
            for topic in &mut group.topics {
                if !view.allows_topic(Op::Describe, &topic.name) {
                    for p in &mut topic.partitions {
                        p.error_code = TOPIC_DENIED;
                        p.committed_offset = -1;
                        p.metadata = None;
                    }
                }
            }
        }
        for group in denied {
            r.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_error_code(GROUP_DENIED),
            );
        }
    })
}

/// Each group needs DESCRIBE; with `include_authorized_operations` (KIP-430) each
/// described group carries what the principal may do to it.
pub fn describe_groups(mut req: DescribeGroupsRequest, view: &AuthorizerView) -> Checked {
    use describe_groups_response::DescribedGroup;
    let (kept, denied) = split(std::mem::take(&mut req.groups), |g| {
        view.allows_group(Op::Describe, g)
    });
    req.groups = kept;
    let with_operations = req.include_authorized_operations;
    let view = view.clone();
    serve_then(RequestKind::DescribeGroups(req), move |resp| {
        let ResponseKind::DescribeGroups(r) = resp else {
            return;
        };
        if with_operations {
            for group in &mut r.groups {
                group.authorized_operations =
                    view.authorized_operations(ResourceType::Group, &group.group_id);
            }
        }
        for group in denied {
            r.groups.push(
                DescribedGroup::default()
                    .with_group_id(group)
                    .with_error_code(GROUP_DENIED)
                    .with_authorized_operations(i32::MIN),
            );
        }
    })
}

/// DESCRIBE on the cluster lists every group; otherwise only those the principal may
/// describe.
pub fn list_groups(req: ListGroupsRequest, view: &AuthorizerView) -> Checked {
    if view.allows_cluster(Op::Describe) {
        return Checked::Serve(RequestKind::ListGroups(req), None);
    }
    let view = view.clone();
    serve_then(RequestKind::ListGroups(req), move |resp| {
        if let ResponseKind::ListGroups(r) = resp {
            r.groups
                .retain(|g| view.allows_group(Op::Describe, &g.group_id));
        }
    })
}

pub fn delete_groups(mut req: DeleteGroupsRequest, view: &AuthorizerView) -> Checked {
    use delete_groups_response::DeletableGroupResult;
    let (kept, denied) = split(std::mem::take(&mut req.groups_names), |g| {
        view.allows_group(Op::Delete, g)
    });
    req.groups_names = kept;
    serve(RequestKind::DeleteGroups(req), denied, |resp, denied| {
        if let ResponseKind::DeleteGroups(r) = resp {
            r.results.extend(denied.into_iter().map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(GROUP_DENIED)
            }));
        }
    })
}

pub fn offset_delete(mut req: OffsetDeleteRequest, view: &AuthorizerView) -> Checked {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    if !view.allows_group(Op::Delete, &req.group_id) {
        return Checked::Refuse(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(GROUP_DENIED),
        ));
    }
    let (kept, denied) = split(std::mem::take(&mut req.topics), |t| {
        view.allows_topic(Op::Read, &t.name)
    });
    req.topics = kept;
    serve(RequestKind::OffsetDelete(req), denied, |resp, denied| {
        let ResponseKind::OffsetDelete(r) = resp else {
            return;
        };
        for topic in denied {
            let partitions = topic.partitions.iter().map(|p| {
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(TOPIC_DENIED)
            });
            r.topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(partitions.collect()),
            );
        }
    })
}

/// FindCoordinator's key type 0 is a group (DESCRIBE on it), 1 a transactional id.
fn coordinator_refusal(view: &AuthorizerView, key_type: i8, key: &str) -> Option<i16> {
    match key_type {
        0 if !view.allows_group(Op::Describe, key) => Some(GROUP_DENIED),
        1 if !view.allows_transactional_id(Op::Describe, key) => Some(TXN_ID_DENIED),
        _ => None,
    }
}

pub fn find_coordinator(
    version: i16,
    mut req: FindCoordinatorRequest,
    view: &AuthorizerView,
) -> Checked {
    use find_coordinator_response::Coordinator;
    if version < 4 {
        if let Some(code) = coordinator_refusal(view, req.key_type, &req.key) {
            return Checked::Refuse(ResponseKind::FindCoordinator(
                FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            ));
        }
        return Checked::Serve(RequestKind::FindCoordinator(req), None);
    }
    let key_type = req.key_type;
    let (kept, denied) = split(std::mem::take(&mut req.coordinator_keys), |k| {
        coordinator_refusal(view, key_type, k).is_none()
    });
    req.coordinator_keys = kept;
    let code = if key_type == 1 {
        TXN_ID_DENIED
    } else {
        GROUP_DENIED
    };
    serve(
        RequestKind::FindCoordinator(req),
        denied,
        move |resp, denied| {
            if let ResponseKind::FindCoordinator(r) = resp {
                r.coordinators.extend(denied.into_iter().map(|key| {
                    Coordinator::default()
                        .with_key(key)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code)
                }));
            }
        },
    )
}
