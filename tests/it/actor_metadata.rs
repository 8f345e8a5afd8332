//! Metadata actor driven directly: topic creation, ids, the routing snapshot it publishes,
//! durability across a restart, partitions added, deletion, and Kafka's validation rules.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use broker::actors::call;
use broker::actors::metadata::{Metadata, MetadataArgs, MetadataMsg, NewTopic, TopicRef};
use broker::actors::routing::RoutingTable;
use broker::config::Config;
use broker::error::MetadataError;
use broker::storage::sim::SimStorage;
use broker::storage::Storage;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

async fn start(
    storage: Arc<dyn Storage>,
) -> (ActorRef<MetadataMsg>, watch::Receiver<Arc<RoutingTable>>) {
    let config = Config {
        data_dir: "/data".into(),
        default_partitions: 2,
        ..Config::default()
    };
    let (tx, rx) = watch::channel(Arc::new(RoutingTable::default()));
    let (actor, _) = Actor::spawn(
        None,
        Metadata,
        MetadataArgs {
            config: Arc::new(config),
            storage,
            routing: tx,
            storage_runtime: None,
            cluster: None,
        },
    )
    .await
    .expect("metadata starts");
    (actor, rx)
}

fn topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments: None,
    }
}

async fn create(
    m: &ActorRef<MetadataMsg>,
    topics: Vec<NewTopic>,
) -> Vec<Result<(String, usize), MetadataError>> {
    call(
        m,
        |reply| MetadataMsg::CreateTopics {
            topics,
            validate_only: false,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.map(|route| (route.name.clone(), route.partitions.len())))
    .collect()
}

#[tokio::test]
async fn topics_are_created_published_and_survive_a_restart() {
    let storage = SimStorage::new();
    let (m, routing) = start(Arc::new(storage.clone())).await;
    let results = create(&m, vec![topic("orders", 3), topic("events", -1)]).await;
    assert_eq!(
        results,
        vec![Ok(("orders".into(), 3)), Ok(("events".into(), 2))]
    );
    let snapshot = routing.borrow().clone();
    let orders_id = snapshot.topic("orders").unwrap().id;
    assert_eq!(snapshot.topic_by_id(&orders_id).unwrap().name, "orders");
    assert_eq!(snapshot.topics().len(), 2);

    // Same name again: TOPIC_ALREADY_EXISTS (36).
    let again = create(&m, vec![topic("orders", 1)]).await;
    assert_eq!(again[0].as_ref().unwrap_err().code(), 36);

    // Grow a topic, then restart the actor on the same storage.
    let grown = call(
        &m,
        |reply| MetadataMsg::CreatePartitions {
            topic: "orders".into(),
            count: 5,
            assignments: None,
            validate_only: false,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(grown, Ok(()));
    let shrink = call(
        &m,
        |reply| MetadataMsg::CreatePartitions {
            topic: "orders".into(),
            count: 2,
            assignments: None,
            validate_only: false,
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(shrink.unwrap_err().code(), 37);
    call(&m, |reply| MetadataMsg::Shutdown { reply }, WAIT)
        .await
        .unwrap();
    m.stop(None);

    let (m2, routing2) = start(Arc::new(storage.clone())).await;
    let snapshot = routing2.borrow().clone();
    let orders = snapshot
        .topic("orders")
        .expect("orders survived the restart");
    assert_eq!(orders.id, orders_id, "topic ids are durable");
    assert_eq!(orders.partitions.len(), 5);
    assert_eq!(snapshot.topic("events").unwrap().partitions.len(), 2);

    // Delete by id, then the name is free again at once.
    let deleted = call(
        &m2,
        |reply| MetadataMsg::DeleteTopics {
            topics: vec![TopicRef::Id(orders_id), TopicRef::Name("missing".into())],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(deleted[0].as_ref().unwrap().0, "orders");
    assert_eq!(deleted[1].as_ref().unwrap_err().code(), 3);
    assert!(routing2.borrow().topic("orders").is_none());
    let recreated = create(&m2, vec![topic("orders", 1)]).await;
    assert_eq!(recreated, vec![Ok(("orders".into(), 1))]);
    assert_ne!(routing2.borrow().topic("orders").unwrap().id, orders_id);
}

#[tokio::test]
async fn kafka_validation_rules() {
    let (m, routing) = start(Arc::new(SimStorage::new())).await;
    let mut with_config = topic("configured", 1);
    with_config
        .configs
        .insert("retention.ms".into(), "not-a-number".into());
    let mut unknown_config = topic("unknown-config", 1);
    unknown_config.configs.insert("no.such".into(), "1".into());
    let mut replicated = topic("replicated", 1);
    replicated.replication_factor = 3;
    let results = create(
        &m,
        vec![
            topic("bad/name", 1),
            topic("..", 1),
            topic("zero", 0),
            with_config,
            unknown_config,
            replicated,
        ],
    )
    .await;
    let codes: Vec<i16> = results
        .iter()
        .map(|r| r.as_ref().map(|_| 0).unwrap_or_else(|e| e.code()))
        .collect();
    assert_eq!(codes, vec![17, 17, 37, 40, 40, 38]);
    assert!(routing.borrow().topics().is_empty());

    // Auto-creation skips invalid names and creates the rest with the default count.
    call(
        &m,
        |reply| MetadataMsg::EnsureTopics {
            names: vec!["auto".into(), "bad name".into()],
            reply,
        },
        WAIT,
    )
    .await
    .unwrap();
    let snapshot = routing.borrow().clone();
    assert_eq!(snapshot.topic("auto").unwrap().partitions.len(), 2);
    assert_eq!(snapshot.topics().len(), 1);
}

#[tokio::test]
async fn a_partition_that_cannot_be_opened_costs_that_partition_only() {
    use broker::actors::partition::PartitionMsg;
    use broker::storage::batch_builder::build_batch;
    use broker::storage::FileStorage;

    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    });
    let spawn = |config: Arc<Config>| async move {
        let (tx, rx) = watch::channel(Arc::new(RoutingTable::default()));
        let args = MetadataArgs {
            config,
            storage: Arc::new(FileStorage),
            routing: tx,
            storage_runtime: None,
            cluster: None,
        };
        (
            Actor::spawn(None, Metadata, args)
                .await
                .expect("metadata starts")
                .0,
            rx,
        )
    };
    let (m, _) = spawn(config.clone()).await;
    assert!(create(&m, vec![topic("broken", 2)]).await[0].is_ok());
    call(&m, |reply| MetadataMsg::Shutdown { reply }, WAIT)
        .await
        .unwrap();
    m.stop(None);
    // Partition 0's directory becomes a plain file: its log cannot be opened.
    let p0 = dir.path().join("broken-0");
    std::fs::remove_dir_all(&p0).unwrap();
    std::fs::write(&p0, b"not a directory").unwrap();

    let (_m, routing) = spawn(config).await;
    let route = routing
        .borrow()
        .topic("broken")
        .cloned()
        .expect("the topic is still there");
    let batch = bytes::Bytes::from(build_batch(&[(None, Some(b"v"))], 0));
    let append = |p: usize| {
        let records = batch.clone();
        let actor = route.partitions[p].clone();
        async move {
            call(
                &actor,
                |reply| PartitionMsg::Append {
                    records,
                    acks: 1,
                    reply,
                },
                WAIT,
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(
        append(0).await.unwrap_err().code(),
        56,
        "KAFKA_STORAGE_ERROR from the stand-in"
    );
    assert_eq!(
        append(1).await.unwrap().base_offset,
        0,
        "the other partition serves"
    );
}

#[tokio::test]
async fn the_metadata_file_is_compacted_when_it_is_mostly_history() {
    let storage = SimStorage::new();
    let (m, _) = start(Arc::new(storage.clone())).await;
    assert!(create(&m, vec![topic("keeper", 3)]).await[0].is_ok());
    for i in 0..80 {
        let name = format!("churn-{i}");
        assert!(create(&m, vec![topic(&name, 1)]).await[0].is_ok());
        let deleted = call(
            &m,
            |reply| MetadataMsg::DeleteTopics {
                topics: vec![TopicRef::Name(name)],
                reply,
            },
            WAIT,
        )
        .await
        .unwrap();
        assert!(deleted[0].is_ok());
    }
    let producer_id = call(&m, |reply| MetadataMsg::AllocateProducerId { reply }, WAIT)
        .await
        .unwrap()
        .unwrap();
    call(&m, |reply| MetadataMsg::Shutdown { reply }, WAIT)
        .await
        .unwrap();
    m.stop(None);
    let file = std::path::Path::new("/data/__meta/topics.log");
    let before = storage.file_contents(file).unwrap().len();
    let (m2, routing) = start(Arc::new(storage.clone())).await;
    let after = storage.file_contents(file).unwrap().len();
    assert!(
        after * 10 < before,
        "compacted from {before} to {after} bytes"
    );
    let snapshot = routing.borrow().clone();
    assert_eq!(snapshot.topics().len(), 1);
    assert_eq!(snapshot.topic("keeper").unwrap().partitions.len(), 3);
    // Producer ids stay unique across the compaction.
    let next = call(&m2, |reply| MetadataMsg::AllocateProducerId { reply }, WAIT)
        .await
        .unwrap()
        .unwrap();
    assert!(next > producer_id);
}

/// Manual assignments on one broker, checked as Kafka's controller does: only this broker
/// (id 0), once per partition, with num_partitions and replication_factor left at -1
/// (else INVALID_REQUEST, 42); CreatePartitions gives one assignment per new partition.
#[tokio::test]
async fn manual_assignments_follow_kafka_rules_on_one_broker() {
    let (m, routing) = start(Arc::new(SimStorage::new())).await;
    let manual = |name: &str, partitions: i32, assignments: Vec<Vec<i32>>| NewTopic {
        assignments: Some(assignments),
        ..topic(name, partitions)
    };
    let mut with_rf = manual("with-rf", -1, vec![vec![0]]);
    with_rf.replication_factor = 1;
    let results = create(
        &m,
        vec![
            manual("assigned", -1, vec![vec![0], vec![0]]),
            manual("with-count", 2, vec![vec![0], vec![0]]),
            with_rf,
            manual("twice", -1, vec![vec![0, 0]]),
            manual("elsewhere", -1, vec![vec![1]]),
            manual("empty", -1, vec![vec![]]),
        ],
    )
    .await;
    let codes: Vec<i16> = results
        .iter()
        .map(|r| r.as_ref().map(|_| 0).unwrap_or_else(|e| e.code()))
        .collect();
    assert_eq!(codes, vec![0, 42, 42, 39, 39, 39], "{results:?}");
    assert_eq!(
        routing.borrow().topic("assigned").unwrap().partitions.len(),
        2
    );

    let grow = |count: i32, assignments: Vec<Vec<i32>>| {
        let m = m.clone();
        async move {
            call(
                &m,
                |reply| MetadataMsg::CreatePartitions {
                    topic: "assigned".into(),
                    count,
                    assignments: Some(assignments),
                    validate_only: false,
                    reply,
                },
                WAIT,
            )
            .await
            .unwrap()
            .map_err(|e| e.code())
        }
    };
    assert_eq!(
        grow(4, vec![vec![0]]).await,
        Err(39),
        "one assignment for two"
    );
    assert_eq!(grow(3, vec![vec![7]]).await, Err(39), "an unknown broker");
    assert_eq!(grow(3, vec![vec![0]]).await, Ok(()));
    assert_eq!(
        routing.borrow().topic("assigned").unwrap().partitions.len(),
        3
    );
}
