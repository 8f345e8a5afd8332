//! The metadata image: what the metadata records say, with no actor in it.
//!
//! `MetadataImage::apply` folds one `MetadataRecord` into the image. Replaying the record
//! file on start is applying each record in turn; a Raft state machine applies committed
//! entries the same way (see `crate::cluster`). The metadata actor keeps its partition
//! actors in step with the image; the image never calls anybody.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::MetadataRecord;
use crate::broker_config::DynamicBrokerConfigs;
use crate::security::scram::{ScramCredential, ScramMechanism};

/// One topic as its records describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    /// Producer ids below this may have been handed out.
    pub producer_id_block_end: i64,
    /// Both dynamic broker config layers.
    pub dynamic: DynamicBrokerConfigs,
    /// SCRAM credentials: user -> mechanism -> salted keys. Absent from images written
    /// before SCRAM existed, hence the default.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl MetadataImage {
    /// The image a sequence of records leaves, oldest first.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a MetadataRecord>) -> Self {
        let mut image = Self::default();
        for record in records {
            image.apply(record);
        }
        image
    }

    /// Folds one record into the image. A record about a topic the image does not hold
    /// (deleted before it) changes nothing, as on replay before.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                configs,
            } => {
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        id: Uuid::from_u128(*id),
                        partitions: *partitions,
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::PartitionsCreated { name, partitions } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.partitions = *partitions;
                }
            }
            MetadataRecord::TopicDeleted { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::TopicConfigsChanged { name, configs } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.configs = configs.clone();
                }
            }
            MetadataRecord::ProducerIdBlock { end } => {
                self.producer_id_block_end = self.producer_id_block_end.max(*end);
            }
            MetadataRecord::BrokerConfigsChanged { dynamic } => self.dynamic = dynamic.clone(),
            MetadataRecord::ScramCredentialUpserted {
                user,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                let credential = ScramCredential {
                    salt: salt.clone(),
                    stored_key: stored_key.clone(),
                    server_key: server_key.clone(),
                    iterations: *iterations,
                };
                self.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(*mechanism, credential);
            }
            MetadataRecord::ScramCredentialDeleted { user, mechanism } => {
                if let Some(mechanisms) = self.scram.get_mut(user) {
                    mechanisms.remove(mechanism);
                    if mechanisms.is_empty() {
                        self.scram.remove(user);
                    }
                }
            }
        }
    }

    /// The fewest records whose replay gives this image (the compacted record file).
    pub fn records(&self) -> Vec<MetadataRecord> {
        let mut live: Vec<MetadataRecord> = self
            .topics
            .iter()
            .map(|(name, topic)| MetadataRecord::TopicCreated {
                name: name.clone(),
                id: topic.id.as_u128(),
                partitions: topic.partitions,
                configs: topic.configs.clone(),
            })
            .collect();
        if self.producer_id_block_end != 0 {
            live.push(MetadataRecord::ProducerIdBlock {
                end: self.producer_id_block_end,
            });
        }
        if self.dynamic != DynamicBrokerConfigs::default() {
            live.push(MetadataRecord::BrokerConfigsChanged {
                dynamic: self.dynamic.clone(),
            });
        }
        for (user, mechanisms) in &self.scram {
            for (mechanism, c) in mechanisms {
                live.push(MetadataRecord::ScramCredentialUpserted {
                    user: user.clone(),
                    mechanism: *mechanism,
                    salt: c.salt.clone(),
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                    iterations: c.iterations,
                });
            }
        }
        live
    }

    /// The name of the topic with this id.
    pub fn topic_name(&self, id: Uuid) -> Option<&String> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(name, _)| name)
    }
}
