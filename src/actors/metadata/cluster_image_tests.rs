//! Tests of the cluster-mode records in `MetadataImage`: brokers, fencing, replica
//! assignments, leaders and ISRs.

use std::collections::BTreeMap;

use super::image::{BrokerListener, MetadataImage, PartitionImage};
use super::MetadataRecord;

fn registered(id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::BrokerRegistered {
        id,
        epoch,
        host: "127.0.0.1".into(),
        port: 9191 + id,
        rack: (id == 2).then(|| "r2".to_string()),
        listeners: Vec::new(),
    }
}

fn changed(topic: &str, partition: i32, leader: i32, epoch: i32, isr: &[i32]) -> MetadataRecord {
    MetadataRecord::PartitionChanged {
        topic: topic.into(),
        partition,
        leader,
        leader_epoch: epoch,
        isr: isr.to_vec(),
    }
}

/// Three brokers, a replicated topic, a fencing that moves a leader, a return.
fn history() -> Vec<MetadataRecord> {
    vec![
        registered(1, 1),
        registered(2, 1),
        registered(3, 1),
        MetadataRecord::TopicCreatedWithAssignments {
            name: "t".into(),
            id: 7,
            configs: BTreeMap::new(),
            assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
        },
        MetadataRecord::BrokerFenced { id: 2 },
        changed("t", 1, 3, 1, &[3, 1]),
        changed("t", 0, 1, 1, &[1]),
        changed("t", 0, 1, 1, &[1, 3]),
        // About a partition or topic that does not exist: changes nothing.
        changed("t", 9, 1, 1, &[1]),
        changed("gone", 0, 1, 1, &[1]),
        MetadataRecord::PartitionsCreatedWithAssignments {
            name: "t".into(),
            assignments: vec![vec![3, 1, 2]],
        },
        registered(2, 2),
        MetadataRecord::ProducerIdsClaimed {
            broker: 1,
            start: 0,
            end: 1000,
        },
        // Claimed the same ids as broker 1: not granted.
        MetadataRecord::ProducerIdsClaimed {
            broker: 2,
            start: 0,
            end: 1000,
        },
        MetadataRecord::ProducerIdsClaimed {
            broker: 2,
            start: 1000,
            end: 2000,
        },
        MetadataRecord::BrokerFenced { id: 3 },
        MetadataRecord::BrokerUnfenced { id: 3 },
        MetadataRecord::BrokerFenced { id: 1 },
    ]
}

#[test]
fn brokers_assignments_leaders_and_isrs_follow_their_records() {
    let image = MetadataImage::replay(&history());
    let topic = &image.topics["t"];
    assert_eq!(topic.partitions, 3);
    assert_eq!(
        topic.assignments,
        vec![
            PartitionImage {
                replicas: vec![1, 2, 3],
                leader: 1,
                leader_epoch: 1,
                isr: vec![1, 3],
                adding: Vec::new(),
                removing: Vec::new(),
                partition_epoch: 2,
            },
            PartitionImage {
                replicas: vec![2, 3, 1],
                leader: 3,
                leader_epoch: 1,
                isr: vec![3, 1],
                adding: Vec::new(),
                removing: Vec::new(),
                partition_epoch: 1,
            },
            PartitionImage::new(vec![3, 1, 2]),
        ]
    );
    assert_eq!(topic.assignments[2].leader, 3);
    assert_eq!(image.brokers.len(), 3);
    assert_eq!(image.brokers[&2].epoch, 2);
    assert_eq!(image.brokers[&2].rack.as_deref(), Some("r2"));
    assert!(!image.brokers[&2].fenced, "re-registered: unfenced");
    assert!(image.brokers[&1].fenced);
    let live: Vec<i32> = image.live_brokers().map(|(id, _)| id).collect();
    assert_eq!(live, vec![2, 3]);
    assert_eq!(image.producer_id_block_end, 2000);
    let blocks: Vec<_> = image.producer_id_blocks.into_iter().collect();
    assert_eq!(blocks, vec![(1, (0, 1000)), (2, (1000, 2000))]);
}

#[test]
fn applying_cluster_records_one_at_a_time_equals_replay_of_every_prefix() {
    let records = history();
    let mut live = MetadataImage::default();
    for (n, record) in records.iter().enumerate() {
        live.apply(record);
        assert_eq!(live, MetadataImage::replay(&records[..=n]), "record {n}");
    }
}

#[test]
fn the_compacted_cluster_records_replay_to_the_same_image() {
    let image = MetadataImage::replay(&history());
    let live = image.records();
    // Three brokers, one fenced; the topic and its two changed partitions (each whole, its
    // partition epoch with it); two producer-id claims, each after its start, and the end.
    assert_eq!(live.len(), 3 + 1 + 1 + 2 + 4 + 1, "{live:?}");
    assert_eq!(MetadataImage::replay(&live), image);
    let bytes = rmp_serde::to_vec(&image).unwrap();
    let back: MetadataImage = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, image);
}

#[test]
fn a_broker_is_reached_at_the_listener_a_client_came_in_on() {
    let mut image = MetadataImage::default();
    image.apply(&MetadataRecord::BrokerRegistered {
        id: 1,
        epoch: 1,
        host: "10.0.0.1".into(),
        port: 9093,
        rack: None,
        listeners: vec![
            BrokerListener {
                name: "EXTERNAL".into(),
                host: "broker1.example".into(),
                port: 9092,
            },
            BrokerListener {
                name: "INTERNAL".into(),
                host: "10.0.0.1".into(),
                port: 9093,
            },
        ],
    });
    let broker = &image.brokers[&1];
    assert_eq!(broker.endpoint_for("EXTERNAL"), ("broker1.example", 9092));
    assert_eq!(broker.endpoint_for("internal"), ("10.0.0.1", 9093));
    // A listener the broker did not register (or a record from before listeners were
    // registered): its inter-broker address.
    assert_eq!(broker.endpoint_for("OTHER"), ("10.0.0.1", 9093));
    // The compacted records keep the listeners.
    let mut replayed = MetadataImage::default();
    for record in image.records() {
        replayed.apply(&record);
    }
    assert_eq!(replayed.brokers, image.brokers);
}

#[test]
fn every_change_of_a_partition_counts_in_its_partition_epoch() {
    let mut image = MetadataImage::replay(&history());
    let epochs = |image: &MetadataImage| -> Vec<i32> {
        let assignments = &image.topics["t"].assignments;
        assignments.iter().map(|p| p.partition_epoch).collect()
    };
    // p0 changed twice, p1 once, the new p2 never; fencing records alone count nothing.
    assert_eq!(epochs(&image), vec![2, 1, 0]);
    // A change that leaves the state as it was still counts, as in Kafka.
    image.apply(&changed("t", 1, 3, 1, &[3, 1]));
    let mut moving = image.topics["t"].assignments[2].clone();
    moving.adding = vec![2];
    image.apply(&moving.reassigned("t", 2));
    assert_eq!(epochs(&image), vec![2, 2, 1]);
    assert_eq!(image.topics["t"].assignments[2].adding, vec![2]);
}

#[test]
fn a_partition_serialized_before_partition_epochs_loads_at_epoch_zero() {
    // PartitionImage as snapshots held it before the partition epoch (rmp-serde writes a
    // struct as an array of its fields).
    #[derive(serde::Serialize)]
    struct Before {
        replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
    }
    let before = Before {
        replicas: vec![1, 2],
        leader: 2,
        leader_epoch: 4,
        isr: vec![2],
        adding: Vec::new(),
        removing: Vec::new(),
    };
    let bytes = rmp_serde::to_vec(&before).unwrap();
    let loaded: PartitionImage = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!((loaded.leader_epoch, loaded.isr.clone()), (4, vec![2]));
    assert_eq!(loaded.partition_epoch, 0);
}
