//! The metadata actor's ACL set driven directly: CreateAcls, DescribeAcls with Kafka's
//! filters, DeleteAcls, and every acknowledged change surviving a power cut.

use std::sync::Arc;
use std::time::Duration;

use broker::actors::call;
use broker::actors::metadata::{Metadata, MetadataArgs, MetadataMsg};
use broker::actors::routing::RoutingTable;
use broker::config::Config;
use broker::security::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use broker::security::acl_filter::AclFilter;
use broker::storage::sim::SimStorage;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

async fn start(storage: &SimStorage) -> ActorRef<MetadataMsg> {
    let config = Config {
        data_dir: "/data".into(),
        ..Config::default()
    };
    let (tx, _rx) = watch::channel(Arc::new(RoutingTable::default()));
    let (actor, _) = Actor::spawn(
        None,
        Metadata,
        MetadataArgs {
            config: Arc::new(config),
            storage: Arc::new(storage.clone()),
            routing: tx,
            storage_runtime: None,
            cluster: None,
        },
    )
    .await
    .expect("metadata starts");
    actor
}

fn acl(topic: &str, principal: &str, operation: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: topic.into(),
        pattern_type: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission: AclPermission::Allow,
    }
}

/// ANY on every field but the principal.
fn by_principal(principal: Option<&str>) -> AclFilter {
    AclFilter::from_wire(1, None, 1, principal.map(String::from), None, 1, 1).unwrap()
}

async fn describe(m: &ActorRef<MetadataMsg>, filter: AclFilter) -> Vec<AclBinding> {
    call(m, |reply| MetadataMsg::DescribeAcls { filter, reply }, WAIT)
        .await
        .unwrap()
}

#[tokio::test]
async fn acls_are_created_described_deleted_and_survive_a_power_cut() {
    let storage = SimStorage::new();
    let m = start(&storage).await;
    let alice = acl("orders", "User:alice", AclOperation::Write);
    let bob = acl("orders", "User:bob", AclOperation::Read);
    let created = call(
        &m,
        |reply| MetadataMsg::CreateAcls {
            acls: vec![alice.clone(), bob.clone(), alice.clone()],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(created.len(), 3);
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    assert_eq!(describe(&m, by_principal(None)).await.len(), 2);
    assert_eq!(
        describe(&m, by_principal(Some("User:alice"))).await,
        vec![alice.clone()]
    );

    let deleted = call(
        &m,
        |reply| MetadataMsg::DeleteAcls {
            filters: vec![
                by_principal(Some("User:bob")),
                by_principal(Some("User:carol")),
            ],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[0].as_ref().unwrap(), &vec![bob]);
    assert!(
        deleted[1].as_ref().unwrap().is_empty(),
        "nothing matched carol"
    );

    // Acknowledged changes are on disk: a power cut keeps alice's ACL, and only it.
    storage.power_cut();
    m.stop(None);
    let m2 = start(&storage).await;
    assert_eq!(describe(&m2, by_principal(None)).await, vec![alice]);
    m2.stop(None);
}
