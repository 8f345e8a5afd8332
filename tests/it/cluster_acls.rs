//! ACLs in a cluster of three broker processes: CreateAcls through one broker is committed
//! through the metadata quorum and enforced by every broker. No super user here: with
//! `allow_everyone_if_no_acl_found` the anonymous (PLAINTEXT) principal may manage ACLs
//! while the cluster resource has none, and the replica fetchers' CLUSTER_ACTION passes.

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use crate::acl_matrix::{acl, ALLOW, LITERAL, TOPIC};
use crate::acl_matrix_calls::fetch;
use crate::cluster_metadata::{
    broker_ids, create_topic_with, every, start_cluster_with, wait_everywhere, SLACK,
};
use crate::hostile_wire::Wire;

const READ: i8 = 3;
const DENY: i8 = 2;

/// CreateAcls through `port`, retried while the quorum has no leader (NOT_CONTROLLER).
fn create_acl(port: u16, creation: AclCreation) {
    let deadline = Instant::now() + SLACK;
    loop {
        let mut wire = Wire::connect(port);
        let req = CreateAclsRequest::default().with_creations(vec![creation.clone()]);
        let code = wire.call(3, &req).expect("CreateAcls answered").results[0].error_code;
        if code == 0 {
            return;
        }
        assert!(
            code == ResponseError::NotController.code() && Instant::now() < deadline,
            "CreateAcls answered {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many ACLs the broker at `port` holds.
fn acl_count(port: u16) -> usize {
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let resp = Wire::connect(port)
        .call(3, &req)
        .expect("DescribeAcls answered");
    assert_eq!(resp.error_code, 0);
    resp.resources.iter().map(|r| r.acls.len()).sum()
}

#[test]
fn an_acl_made_through_one_broker_is_enforced_by_every_broker() {
    let brokers = start_cluster_with(
        0,
        (200, 2_000),
        "authorizer_class_name = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
         allow_everyone_if_no_acl_found = true",
    );
    wait_everywhere(&every(&brokers), SLACK, "three brokers", |r| {
        broker_ids(r).len() == 3
    });
    create_topic_with(&brokers[0], "t", 1, &[]);
    create_topic_with(&brokers[0], "open", 1, &[]);
    // An ALLOW for someone else guards `t`; a DENY of READ for anonymous on it too.
    create_acl(
        brokers[1].port(),
        acl(TOPIC, "t", LITERAL, "User:alice", READ, ALLOW),
    );
    create_acl(
        brokers[1].port(),
        acl(TOPIC, "t", LITERAL, "User:ANONYMOUS", READ, DENY),
    );
    let deadline = Instant::now() + SLACK;
    for broker in &brokers {
        while acl_count(broker.port()) < 2 {
            assert!(
                Instant::now() < deadline,
                "the ACLs did not reach every broker"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut wire = Wire::connect(broker.port());
        assert_eq!(
            fetch(&mut wire),
            ResponseError::TopicAuthorizationFailed.code(),
            "broker {} serves t",
            broker.port()
        );
        // Metadata of a resource no ACL names stays open (allow_everyone_if_no_acl_found).
        let req = MetadataRequest::default().with_topics(None);
        let resp = wire.call(12, &req).expect("Metadata answered");
        let names: Vec<_> = resp
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .collect();
        assert!(names.contains(&"open".to_string()), "{names:?}");
        assert!(!names.contains(&"t".to_string()), "{names:?}");
    }
}
