//! The ACL matrix: for every API the broker serves, one principal the ACLs allow (alice)
//! and one they do not (bob), on raw frames over SASL_PLAINTEXT with PLAIN, with the
//! error code Kafka answers the refused one. Then: ACL changes apply at once to open
//! connections, DENY beats ALLOW, super users pass everything, and without an
//! authorizer the ACL APIs answer SECURITY_DISABLED.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use crate::in_process::InProcessBroker;
use broker::config::{Config, PlainUsers};
use broker::storage::batch_builder::build_batch;
use broker::storage::sim::SimStorage;

use crate::acl_matrix_calls::*;
use crate::actor_sasl::plain_login;
use crate::harness;
use crate::hostile_wire::{text, topic, Wire};

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();
const TXN_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
const DENIALS: [i16; 4] = [TOPIC_DENIED, GROUP_DENIED, CLUSTER_DENIED, TXN_DENIED];

/// Kafka's wire codes for ACL fields.
pub(crate) const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TRANSACTIONAL_ID: i8 = 5;
pub(crate) const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
pub(crate) const WRITE: i8 = 4;
const DENY: i8 = 2;
pub(crate) const ALLOW: i8 = 3;

struct AclBroker {
    _broker: InProcessBroker,
    port: u16,
}

impl AclBroker {
    fn start(authorizer: &str) -> AclBroker {
        let port = harness::free_port();
        let users = ["admin", "alice", "bob"].map(|u| (u.to_string(), format!("{u}-secret")));
        let config = Config {
            listeners: Some(format!("SASL_PLAINTEXT://127.0.0.1:{port}")),
            data_dir: "/data".into(),
            group_initial_rebalance_delay_ms: 0,
            sasl_plain_users: PlainUsers(users.into()),
            authorizer_class_name: authorizer.into(),
            super_users: "User:admin".into(),
            ..Config::default()
        };
        AclBroker {
            _broker: InProcessBroker::start(config, Arc::new(SimStorage::new())),
            port,
        }
    }

    fn login(&self, user: &str) -> Wire {
        let (wire, r) = plain_login(self.port, user, &format!("{user}-secret"));
        assert_eq!(r.error_code, 0, "{user} logs in");
        wire
    }
}

pub(crate) fn acl(
    kind: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    op: i8,
    perm: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(kind)
        .with_resource_name(text(name))
        .with_resource_pattern_type(pattern)
        .with_principal(text(principal))
        .with_host(text("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

pub(crate) fn create_acls(wire: &mut Wire, creations: Vec<AclCreation>) -> Vec<i16> {
    let resp = wire
        .call(3, &CreateAclsRequest::default().with_creations(creations))
        .expect("CreateAcls answered");
    resp.results.iter().map(|r| r.error_code).collect()
}

/// DeleteAcls with one filter naming the principal, operation and permission; the
/// filter's error code and how many ACLs it removed.
pub(crate) fn delete_acls(wire: &mut Wire, principal: &str, op: i8, perm: i8) -> (i16, usize) {
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(Some(text(principal)))
        .with_host_filter(None)
        .with_operation(op)
        .with_permission_type(perm);
    let resp = wire
        .call(3, &DeleteAclsRequest::default().with_filters(vec![filter]))
        .expect("DeleteAcls answered");
    let r = &resp.filter_results[0];
    (r.error_code, r.matching_acls.len())
}

fn batch() -> Bytes {
    let now = broker::storage::log::wall_clock_ms();
    Bytes::from(build_batch(&[(None, Some(b"v".as_slice()))], now))
}

fn produce(w: &mut Wire, name: &str, txn: Option<&str>) -> i16 {
    use produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_transactional_id(txn.map(|t| TransactionalId(text(t))))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch()))])]);
    let resp = w.call(9, &req).expect("Produce answered");
    resp.responses[0].partition_responses[0].error_code
}

type Row = (&'static str, fn(&mut Wire) -> i16, i16);

fn rows() -> Vec<Row> {
    vec![
        ("Produce", |w| produce(w, "t", None), TOPIC_DENIED),
        (
            "Produce transactional",
            |w| produce(w, "t", Some("tx")),
            TXN_DENIED,
        ),
        ("Fetch", fetch, TOPIC_DENIED),
        ("ListOffsets", list_offsets, TOPIC_DENIED),
        ("Metadata named", metadata_named, TOPIC_DENIED),
        ("Metadata all", metadata_all, TOPIC_DENIED),
        (
            "OffsetForLeaderEpoch",
            offset_for_leader_epoch,
            TOPIC_DENIED,
        ),
        (
            "DescribeTopicPartitions",
            describe_topic_partitions,
            TOPIC_DENIED,
        ),
        ("DescribeProducers", describe_producers, TOPIC_DENIED),
        (
            "DescribeConfigs topic",
            |w| describe_configs(w, TOPIC, "t"),
            TOPIC_DENIED,
        ),
        (
            "DescribeConfigs broker",
            |w| describe_configs(w, 4, "1"),
            CLUSTER_DENIED,
        ),
        ("AlterConfigs", alter_configs, TOPIC_DENIED),
        (
            "IncrementalAlterConfigs",
            |w| w.set_config(2, "t", "retention.ms", "600000").0,
            TOPIC_DENIED,
        ),
        ("CreatePartitions", create_partitions, TOPIC_DENIED),
        ("CreateTopics", create_topics, TOPIC_DENIED),
        (
            "FindCoordinator group v3",
            |w| find_coordinator(w, 3, 0, "g"),
            GROUP_DENIED,
        ),
        (
            "FindCoordinator group v4",
            |w| find_coordinator(w, 4, 0, "g"),
            GROUP_DENIED,
        ),
        (
            "FindCoordinator txn",
            |w| find_coordinator(w, 4, 1, "tx"),
            TXN_DENIED,
        ),
        ("JoinGroup", join_group, GROUP_DENIED),
        ("SyncGroup", sync_group, GROUP_DENIED),
        ("Heartbeat", heartbeat, GROUP_DENIED),
        ("OffsetCommit", offset_commit, GROUP_DENIED),
        ("OffsetFetch v7", |w| offset_fetch(w, 7), GROUP_DENIED),
        ("OffsetFetch v8", |w| offset_fetch(w, 8), GROUP_DENIED),
        ("DescribeGroups", describe_groups, GROUP_DENIED),
        ("ListGroups", list_groups, GROUP_DENIED),
        ("LeaveGroup", leave_group, GROUP_DENIED),
        ("OffsetDelete", offset_delete, GROUP_DENIED),
        (
            "InitProducerId transactional",
            |w| init_producer_id(w, Some("tx")),
            TXN_DENIED,
        ),
        (
            "InitProducerId idempotent",
            |w| init_producer_id(w, None),
            CLUSTER_DENIED,
        ),
        ("AddPartitionsToTxn", add_partitions_to_txn, TXN_DENIED),
        ("AddOffsetsToTxn", add_offsets_to_txn, TXN_DENIED),
        ("TxnOffsetCommit", txn_offset_commit, TXN_DENIED),
        ("EndTxn", end_txn, TXN_DENIED),
        ("ListTransactions", list_transactions, TXN_DENIED),
        ("DescribeTransactions", describe_transactions, TXN_DENIED),
        ("DescribeLogDirs", describe_log_dirs, CLUSTER_DENIED),
        ("ElectLeaders", elect_leaders, CLUSTER_DENIED),
        ("DescribeQuorum", describe_quorum, CLUSTER_DENIED),
        ("WriteTxnMarkers", write_txn_markers, CLUSTER_DENIED),
        (
            "DescribeCluster operations",
            describe_cluster,
            CLUSTER_DENIED,
        ),
        (
            "DescribeUserScramCredentials",
            describe_scram,
            CLUSTER_DENIED,
        ),
        ("AlterUserScramCredentials", alter_scram, CLUSTER_DENIED),
        ("DescribeAcls", describe_acls, CLUSTER_DENIED),
        (
            "CreateAcls",
            |w| {
                create_acls(
                    w,
                    vec![acl(TOPIC, "x", LITERAL, "User:carol", WRITE, ALLOW)],
                )[0]
            },
            CLUSTER_DENIED,
        ),
        (
            "DeleteAcls",
            |w| delete_acls(w, "User:carol", 1, 1).0,
            CLUSTER_DENIED,
        ),
        ("DeleteRecords", delete_records, TOPIC_DENIED),
        ("DeleteGroups", delete_groups, GROUP_DENIED),
        ("DeleteTopics", delete_topics, TOPIC_DENIED),
        (
            "DescribeClientQuotas",
            describe_client_quotas,
            CLUSTER_DENIED,
        ),
        ("AlterClientQuotas", alter_client_quotas, CLUSTER_DENIED),
        (
            "ConsumerGroupHeartbeat",
            consumer_group_heartbeat,
            GROUP_DENIED,
        ),
        (
            "ConsumerGroupDescribe",
            consumer_group_describe,
            GROUP_DENIED,
        ),
    ]
}

fn later_rows() -> Vec<(ApiKey, Row)> {
    vec![
        (
            ApiKey::AlterPartitionReassignments,
            (
                "AlterPartitionReassignments",
                alter_partition_reassignments,
                CLUSTER_DENIED,
            ),
        ),
        (
            ApiKey::ListPartitionReassignments,
            (
                "ListPartitionReassignments",
                list_partition_reassignments,
                CLUSTER_DENIED,
            ),
        ),
    ]
}

#[test]
fn every_api_allows_alice_and_refuses_bob_with_kafkas_code() {
    let broker = AclBroker::start("org.apache.kafka.metadata.authorizer.StandardAuthorizer");
    let mut admin = broker.login("admin");
    admin.create_topic("t", 1);
    admin.create_topic("t-del", 1);
    let made = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, "t", PREFIXED, "User:alice", ALL, ALLOW),
            acl(GROUP, "g", LITERAL, "User:alice", ALL, ALLOW),
            acl(TRANSACTIONAL_ID, "tx", LITERAL, "User:alice", ALL, ALLOW),
            acl(CLUSTER, "kafka-cluster", LITERAL, "User:alice", ALL, ALLOW),
        ],
    );
    assert_eq!(made, [0, 0, 0, 0]);
    let mut alice = broker.login("alice");
    let mut bob = broker.login("bob");
    let mut failures = Vec::new();
    // APIs another branch is adding join the matrix once the version table lists them.
    let advertised = later_rows()
        .into_iter()
        .filter(|(api, _)| broker::protocol::versions::range(*api).is_some())
        .map(|(_, row)| row);
    for (name, call, denied) in rows().into_iter().chain(advertised) {
        let bob_code = call(&mut bob);
        let alice_code = call(&mut alice);
        if bob_code != denied {
            failures.push(format!("{name}: bob got {bob_code}, expected {denied}"));
        }
        if DENIALS.contains(&alice_code) {
            failures.push(format!("{name}: alice was refused with {alice_code}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // ConsumerGroupHeartbeat also needs DESCRIBE on every topic it names, as in Kafka.
    assert_eq!(
        consumer_group_join(&mut alice, &["t", "secret"]),
        TOPIC_DENIED
    );
}

#[test]
fn acl_changes_apply_at_once_to_open_connections_and_deny_beats_allow() {
    let broker = AclBroker::start("kafka.security.authorizer.AclAuthorizer");
    let mut admin = broker.login("admin");
    admin.create_topic("t", 1);
    // Super users pass with no ACL at all; bob, with none, is refused.
    assert_eq!(produce(&mut admin, "t", None), 0);
    let mut bob = broker.login("bob");
    assert_eq!(produce(&mut bob, "t", None), TOPIC_DENIED);

    // An ALLOW made now applies to bob's open connection.
    let allow = acl(TOPIC, "t", LITERAL, "User:bob", WRITE, ALLOW);
    assert_eq!(create_acls(&mut admin, vec![allow]), [0]);
    assert_eq!(produce(&mut bob, "t", None), 0);
    // WRITE implies DESCRIBE: bob now sees the topic, and nothing else.
    assert_eq!(metadata_all(&mut bob), 0);
    assert_eq!(metadata_named(&mut bob), 0);

    // A DENY for every principal beats bob's ALLOW, and not the super user.
    let deny = acl(TOPIC, "t", PREFIXED, "User:*", WRITE, DENY);
    assert_eq!(create_acls(&mut admin, vec![deny]), [0]);
    assert_eq!(produce(&mut bob, "t", None), TOPIC_DENIED);
    assert_eq!(produce(&mut admin, "t", None), 0);

    // Deleting the DENY lets bob write again; deleting his ALLOW refuses him again.
    assert_eq!(delete_acls(&mut admin, "User:*", WRITE, DENY), (0, 1));
    assert_eq!(produce(&mut bob, "t", None), 0);
    assert_eq!(delete_acls(&mut admin, "User:bob", 1, 1), (0, 1));
    assert_eq!(produce(&mut bob, "t", None), TOPIC_DENIED);

    // A malformed ACL is INVALID_REQUEST on its own; the valid one beside it is made.
    let bad = acl(CLUSTER, "not-the-cluster", LITERAL, "User:bob", ALL, ALLOW);
    let good = acl(GROUP, "g", LITERAL, "User:bob", ALL, ALLOW);
    let codes = create_acls(&mut admin, vec![bad, good]);
    assert_eq!(codes, [ResponseError::InvalidRequest.code(), 0]);
}

#[test]
fn without_an_authorizer_the_acl_apis_answer_security_disabled() {
    let broker = AclBroker::start("");
    let mut bob = broker.login("bob");
    let disabled = ResponseError::SecurityDisabled.code();
    let made = create_acls(
        &mut bob,
        vec![acl(TOPIC, "t", LITERAL, "User:bob", ALL, ALLOW)],
    );
    assert_eq!(made, [disabled]);
    assert_eq!(describe_acls(&mut bob), disabled);
    assert_eq!(delete_acls(&mut bob, "User:bob", 1, 1).0, disabled);
    // And every request is served as before.
    assert_eq!(produce(&mut bob, "t", None), 0);
}

#[test]
fn create_describe_and_delete_acls_at_every_version() {
    let broker = AclBroker::start("org.apache.kafka.metadata.authorizer.StandardAuthorizer");
    let mut admin = broker.login("admin");
    for version in broker::protocol::versions::range(ApiKey::CreateAcls)
        .map(|(a, b)| a..=b)
        .unwrap()
    {
        let principal = format!("User:v{version}");
        let creation = acl(GROUP, "g-", PREFIXED, &principal, ALL, DENY);
        let made = admin
            .call(
                version,
                &CreateAclsRequest::default().with_creations(vec![creation]),
            )
            .expect("CreateAcls answered");
        assert_eq!(made.results[0].error_code, 0, "v{version}");

        let describe = DescribeAclsRequest::default()
            .with_resource_type_filter(GROUP)
            .with_resource_name_filter(Some(text("g-orders")))
            .with_pattern_type_filter(2) // MATCH: every ACL covering g-orders
            .with_principal_filter(Some(text(&principal)))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1);
        let described = admin
            .call(version, &describe)
            .expect("DescribeAcls answered");
        assert_eq!(described.error_code, 0, "v{version}");
        let resource = &described.resources[0];
        assert_eq!(
            (resource.resource_name.as_str(), resource.pattern_type),
            ("g-", PREFIXED)
        );
        assert_eq!(resource.acls[0].principal.as_str(), principal);
        assert_eq!(resource.acls[0].permission_type, DENY);

        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(GROUP)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(PREFIXED)
            .with_principal_filter(Some(text(&principal)))
            .with_host_filter(None)
            .with_operation(ALL)
            .with_permission_type(1);
        let deleted = admin
            .call(
                version,
                &DeleteAclsRequest::default().with_filters(vec![filter]),
            )
            .expect("DeleteAcls answered");
        let result = &deleted.filter_results[0];
        assert_eq!(
            (result.error_code, result.matching_acls.len()),
            (0, 1),
            "v{version}"
        );
        assert_eq!(result.matching_acls[0].resource_name.as_str(), "g-");
    }
}

/// KIP-430: Metadata, DescribeGroups and DescribeCluster answer what the principal may do.
#[test]
fn authorized_operations_are_answered_when_asked() {
    let bits = |ops: &[i8]| ops.iter().fold(0i32, |b, op| b | (1 << op));
    let broker = AclBroker::start("org.apache.kafka.metadata.authorizer.StandardAuthorizer");
    let mut admin = broker.login("admin");
    admin.create_topic("t", 1);
    let made = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, "t", LITERAL, "User:alice", WRITE, ALLOW),
            acl(GROUP, "g", LITERAL, "User:alice", 3, ALLOW), // READ
        ],
    );
    assert_eq!(made, [0, 0]);
    let mut alice = broker.login("alice");
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    let resp = alice.call(10, &req).expect("Metadata answered");
    // WRITE, and the DESCRIBE it implies; nothing on the cluster.
    assert_eq!(resp.topics[0].topic_authorized_operations, bits(&[4, 8]));
    assert_eq!(resp.cluster_authorized_operations, 0);
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(text("g"))])
        .with_include_authorized_operations(true);
    let resp = alice.call(5, &req).expect("DescribeGroups answered");
    assert_eq!(resp.groups[0].authorized_operations, bits(&[3, 8]));
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_include_cluster_authorized_operations(true);
    let resp = admin.call(10, &req).expect("Metadata answered");
    // A super user may do every cluster operation.
    assert_eq!(
        resp.cluster_authorized_operations,
        bits(&[5, 9, 10, 11, 12, 7, 8])
    );
}

/// An incremental fetch session keeps a partition added while its ACL allowed it: once the
/// ACL is gone, the session's answers carry TOPIC_AUTHORIZATION_FAILED and no records.
#[test]
fn a_fetch_session_stops_serving_a_topic_whose_acl_was_removed() {
    use fetch_request::{FetchPartition, FetchTopic};
    let broker = AclBroker::start("org.apache.kafka.metadata.authorizer.StandardAuthorizer");
    let mut admin = broker.login("admin");
    admin.create_topic("t", 1);
    assert_eq!(produce(&mut admin, "t", None), 0);
    let read = 3;
    let made = create_acls(
        &mut admin,
        vec![acl(TOPIC, "t", LITERAL, "User:bob", read, ALLOW)],
    );
    assert_eq!(made, [0]);
    let mut bob = broker.login("bob");
    let fetch = |session_id: i32, epoch: i32, topics: Vec<FetchTopic>| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_id(session_id)
            .with_session_epoch(epoch)
            .with_topics(topics)
    };
    let t = FetchTopic::default()
        .with_topic(topic("t"))
        .with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20)]);
    let full = bob.call(12, &fetch(0, 0, vec![t])).expect("Fetch answered");
    assert_eq!(full.error_code, 0);
    assert!(full.session_id != 0, "a session was made");
    let p = &full.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));

    assert_eq!(delete_acls(&mut admin, "User:bob", 1, 1), (0, 1));
    // The session still holds t-0 (fetch offset 0, records there): it is answered refused.
    let next = bob
        .call(12, &fetch(full.session_id, 1, vec![]))
        .expect("Fetch answered");
    let answered: Vec<_> = next
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .collect();
    assert!(!answered.is_empty(), "{next:?}");
    for p in answered {
        assert_eq!(p.error_code, TOPIC_DENIED);
        assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
    }
}
