//! Tests of `MetadataImage::apply` and of the record file's replay and compaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use super::image::{MetadataImage, TopicImage};
use super::record_replay::open_and_replay;
use super::MetadataRecord;
use crate::broker_config::DynamicBrokerConfigs;
use crate::security::scram::ScramMechanism;
use crate::storage::sim::SimStorage;
use crate::storage::RecordFile;

fn created(name: &str, id: u128, partitions: i32) -> MetadataRecord {
    MetadataRecord::TopicCreated {
        name: name.into(),
        id,
        partitions,
        configs: BTreeMap::new(),
    }
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every kind of record, including ones about a topic that is gone.
fn history() -> Vec<MetadataRecord> {
    vec![
        created("a", 1, 1),
        created("b", 2, 3),
        MetadataRecord::ProducerIdBlock { end: 1000 },
        MetadataRecord::PartitionsCreated {
            name: "a".into(),
            partitions: 4,
        },
        MetadataRecord::TopicConfigsChanged {
            name: "b".into(),
            configs: configs(&[("cleanup.policy", "compact")]),
        },
        MetadataRecord::TopicDeleted { name: "b".into() },
        // About the deleted topic: changes nothing.
        MetadataRecord::PartitionsCreated {
            name: "b".into(),
            partitions: 9,
        },
        MetadataRecord::ProducerIdBlock { end: 2000 },
        // An older block end never moves the end back.
        MetadataRecord::ProducerIdBlock { end: 1000 },
        MetadataRecord::BrokerConfigsChanged {
            dynamic: DynamicBrokerConfigs {
                per_broker: configs(&[("log.retention.ms", "1000")]),
                cluster_default: BTreeMap::new(),
            },
        },
        created("b", 3, 2),
        scram("alice", ScramMechanism::Sha256, 1),
        scram("bob", ScramMechanism::Sha512, 2),
        scram("alice", ScramMechanism::Sha256, 3),
        MetadataRecord::ScramCredentialDeleted {
            user: "bob".into(),
            mechanism: ScramMechanism::Sha512,
        },
        // Deleting what is gone changes nothing.
        MetadataRecord::ScramCredentialDeleted {
            user: "carol".into(),
            mechanism: ScramMechanism::Sha512,
        },
        scram("alice", ScramMechanism::Sha512, 4),
    ]
}

fn scram(user: &str, mechanism: ScramMechanism, key: u8) -> MetadataRecord {
    MetadataRecord::ScramCredentialUpserted {
        user: user.into(),
        mechanism,
        salt: vec![key; 8],
        stored_key: vec![key; 32],
        server_key: vec![key; 32],
        iterations: 4096,
    }
}

#[test]
fn replay_gives_the_live_state() {
    let image = MetadataImage::replay(&history());
    let expected: BTreeMap<String, TopicImage> = [
        (
            "a".to_string(),
            TopicImage {
                id: Uuid::from_u128(1),
                partitions: 4,
                configs: BTreeMap::new(),
                assignments: Vec::new(),
            },
        ),
        (
            "b".to_string(),
            TopicImage {
                id: Uuid::from_u128(3),
                partitions: 2,
                configs: BTreeMap::new(),
                assignments: Vec::new(),
            },
        ),
    ]
    .into();
    assert_eq!(image.topics, expected);
    assert_eq!(image.producer_id_block_end, 2000);
    assert_eq!(
        image.dynamic.per_broker,
        configs(&[("log.retention.ms", "1000")])
    );
    let alice = &image.scram["alice"];
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[&ScramMechanism::Sha256].stored_key, vec![3; 32]);
    assert!(
        !image.scram.contains_key("bob"),
        "bob's only credential was deleted"
    );
    assert_eq!(image.topic_name(Uuid::from_u128(3)), Some(&"b".to_string()));
    assert_eq!(image.topic_name(Uuid::from_u128(2)), None);
}

#[test]
fn applying_one_record_at_a_time_equals_replay_of_every_prefix() {
    let records = history();
    let mut live = MetadataImage::default();
    for (n, record) in records.iter().enumerate() {
        live.apply(record);
        assert_eq!(
            live,
            MetadataImage::replay(&records[..=n]),
            "after record {n}"
        );
    }
}

#[test]
fn the_compacted_records_replay_to_the_same_image() {
    let image = MetadataImage::replay(&history());
    let live = image.records();
    assert_eq!(
        live.len(),
        6,
        "two topics, a producer-id block, broker configs, two SCRAM credentials"
    );
    assert_eq!(MetadataImage::replay(&live), image);
    assert!(MetadataImage::default().records().is_empty());
}

#[test]
fn the_image_survives_serialization_as_a_snapshot_would() {
    let image = MetadataImage::replay(&history());
    let bytes = rmp_serde::to_vec(&image).unwrap();
    let back: MetadataImage = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, image);
}

/// A snapshot written before SCRAM credentials existed still loads, with none.
#[test]
fn an_image_without_scram_credentials_loads() {
    #[derive(serde::Serialize)]
    struct Before {
        topics: BTreeMap<String, TopicImage>,
        producer_id_block_end: i64,
        dynamic: DynamicBrokerConfigs,
    }
    let image = MetadataImage::replay(&history()[..10]);
    let before = Before {
        topics: image.topics.clone(),
        producer_id_block_end: image.producer_id_block_end,
        dynamic: image.dynamic.clone(),
    };
    let back: MetadataImage = rmp_serde::from_slice(&rmp_serde::to_vec(&before).unwrap()).unwrap();
    assert_eq!(back, image);
    assert!(back.scram.is_empty());
}

#[test]
fn a_record_file_of_mostly_history_is_rewritten_as_the_live_state() {
    let storage = SimStorage::new();
    let dir = Path::new("/data");
    let file = dir.join("__meta/topics.log");
    {
        let (mut store, image) = open_and_replay(Arc::new(storage.clone()), dir).unwrap();
        assert_eq!(image, MetadataImage::default());
        for n in 0..200u128 {
            store.append(&created(&format!("t{n}"), n + 10, 1)).unwrap();
            store
                .append(&MetadataRecord::TopicDeleted {
                    name: format!("t{n}"),
                })
                .unwrap();
        }
        for record in history() {
            store.append(&record).unwrap();
        }
    }
    let before = storage.file_contents(&file).unwrap().len();
    let (_, image) = open_and_replay(Arc::new(storage.clone()), dir).unwrap();
    assert_eq!(image, MetadataImage::replay(&history()));
    let after = storage.file_contents(&file).unwrap().len();
    assert!(after < before / 10, "rewritten: {before} -> {after} bytes");
    // The rewritten file holds exactly the live records, and survives a power cut.
    storage.power_cut();
    let (_, records, _) =
        RecordFile::<MetadataRecord>::open(Arc::new(storage.clone()), file).unwrap();
    assert_eq!(records, image.records());
    let (_, again) = open_and_replay(Arc::new(storage), dir).unwrap();
    assert_eq!(again, image);
}
