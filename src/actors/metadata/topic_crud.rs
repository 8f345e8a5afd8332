//! Topic CRUD on the metadata actor: validating a CreateTopics, DeleteTopics,
//! CreatePartitions or topic AlterConfigs, committing its record (see `record_replay`),
//! and telling the partition actors. New partitions start outside the actor (see
//! `topic_start`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tracing::{info, warn};
use uuid::Uuid;

use super::{MetadataMsg, MetadataRecord, MetadataState, NewTopic, PartitionMsg, TopicRef};
use crate::actors::routing::TopicRoute;
use crate::cluster::placement;
use crate::error::MetadataError;
use crate::topic_config;

impl MetadataState {
    /// Validates and writes a new topic's record; its partitions then start outside this
    /// actor (None: see `topic_start`). validate_only: the route it would have.
    pub(super) async fn create_topic(
        &mut self,
        myself: &ActorRef<MetadataMsg>,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<Option<Arc<TopicRoute>>, MetadataError> {
        topic_config::validate_topic_name(&topic.name)?;
        let cluster = self.placeable_brokers();
        // In a cluster the committed image may hold a topic not started here yet.
        let in_image = cluster.is_some() && self.image.topics.contains_key(&topic.name);
        if self.topics.contains_key(&topic.name) || self.starts.contains(&topic.name) || in_image {
            return Err(MetadataError::TopicExists);
        }
        let (partitions, assignments) = match topic.assignments {
            Some(manual) => {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err(MetadataError::InvalidRequest(
                        "a manual partition assignment was specified, but numPartitions and \
                         replicationFactor were not both set to -1"
                            .into(),
                    ));
                }
                check_partition_count(manual.len())?;
                placement::check_assignments(&manual, &self.assignable_brokers(), None)?;
                let count = manual.len() as i32;
                (count, cluster.is_some().then_some(manual))
            }
            None => {
                let partitions = match topic.num_partitions {
                    -1 => self.config.default_partitions,
                    n if n >= 1 => n,
                    n => {
                        return Err(MetadataError::InvalidPartitions(format!(
                            "partition count {n} is below 1"
                        )))
                    }
                };
                check_partition_count(partitions as usize)?;
                let rf = match topic.replication_factor {
                    -1 if cluster.is_some() => self.config.default_replication_factor,
                    -1 => 1,
                    rf => rf,
                };
                let assignments = match &cluster {
                    Some(brokers) => Some(placement::place(brokers, 0, partitions, rf)?),
                    None if rf != 1 => {
                        return Err(MetadataError::InvalidReplicationFactor(format!(
                            "replication factor {rf} is larger than the 1 available broker"
                        )));
                    }
                    None => None,
                };
                (partitions, assignments)
            }
        };
        topic_config::validate(&topic.configs)?;
        let id = Uuid::new_v4();
        if validate_only {
            return Ok(Some(Arc::new(TopicRoute {
                name: topic.name,
                id,
                partitions: Vec::new(),
                queues: Vec::new(),
                produce: crate::topic_config::produce_settings(&topic.configs, self.defaults()),
                configs: topic.configs,
                placements: Vec::new(),
            })));
        }
        let record = match assignments {
            Some(assignments) => MetadataRecord::TopicCreatedWithAssignments {
                name: topic.name.clone(),
                id: id.as_u128(),
                configs: topic.configs.clone(),
                assignments,
            },
            None => MetadataRecord::TopicCreated {
                name: topic.name.clone(),
                id: id.as_u128(),
                partitions,
                configs: topic.configs.clone(),
            },
        };
        self.commit(record).await?;
        // Another broker created the name first: its record won, this one was ignored.
        if self.image.topics.get(&topic.name).map(|t| t.id) != Some(id) {
            return Err(MetadataError::TopicExists);
        }
        self.start_topic(myself, topic.name, id, topic.configs, partitions);
        Ok(None)
    }

    pub(super) async fn delete_topic(
        &mut self,
        topic: TopicRef,
    ) -> Result<(String, Uuid), MetadataError> {
        let name = match topic {
            TopicRef::Name(name) => name,
            TopicRef::Id(id) => self
                .image
                .topic_name(id)
                .cloned()
                .ok_or(MetadataError::UnknownTopic)?,
        };
        let Some(id) = self.image.topics.get(&name).map(|t| t.id) else {
            return Err(MetadataError::UnknownTopic);
        };
        let starting = !self.topics.contains_key(&name);
        if starting && !self.starts.live().any(|(n, _)| *n == name) {
            return Err(MetadataError::UnknownTopic);
        }
        self.commit(MetadataRecord::TopicDeleted { name: name.clone() })
            .await?;
        self.remove_topic_locally(&name).await?;
        Ok((name, id))
    }

    /// Stops and deletes a deleted topic's partitions here (or has them deleted when they
    /// arrive, if they are still starting).
    pub(super) async fn remove_topic_locally(&mut self, name: &str) -> Result<(), MetadataError> {
        self.restarts.forget_topic(name);
        if !self.topics.contains_key(name) {
            self.delete_starting(name)
                .ok_or(MetadataError::UnknownTopic)?;
            info!(topic = %name, "Deleted a topic whose partitions were still starting.");
            return Ok(());
        }
        let Some(state) = self.topics.remove(name) else {
            return Err(MetadataError::UnknownTopic);
        };
        // Each partition moves its directory aside (fast) and removes it in the background,
        // so a topic re-created with the same name at once starts from an empty directory.
        let waits: Vec<_> = state
            .partitions
            .iter()
            .map(|p| {
                crate::actors::call(
                    p,
                    |reply| PartitionMsg::Delete { reply },
                    Duration::from_secs(10),
                )
            })
            .collect();
        for result in futures::future::join_all(waits).await {
            if let Err(err) = result {
                warn!(topic = %name, %err, "A partition did not confirm its deletion.");
            }
        }
        info!(topic = %name, "Deleted a topic.");
        Ok(())
    }

    pub(super) async fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[topic_config::ConfigChange],
        replace: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        // A topic still starting is not known to AlterConfigs yet, as before.
        let (Some(topic), true) = (self.image.topics.get(name), self.topics.contains_key(name))
        else {
            return Err(MetadataError::UnknownTopic);
        };
        let base = if replace {
            BTreeMap::new()
        } else {
            topic.configs.clone()
        };
        let next = topic_config::apply_changes(&base, changes, self.defaults())?;
        if validate_only {
            return Ok(());
        }
        self.commit(MetadataRecord::TopicConfigsChanged {
            name: name.to_string(),
            configs: next.clone(),
        })
        .await?;
        if let Some(topic) = self.topics.get(name) {
            self.push_configs(&topic.partitions, &next);
        }
        info!(topic = %name, "Changed a topic's configs.");
        Ok(())
    }

    /// Validates and writes a CreatePartitions record; Some((topic id, configs, current
    /// count)) when new partitions must start (outside this actor: see `topic_start`).
    #[allow(clippy::type_complexity)]
    pub(super) async fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
        manual: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Option<(Uuid, BTreeMap<String, String>, i32)>, MetadataError> {
        let (Some(topic), Some(image)) = (self.topics.get(name), self.image.topics.get(name))
        else {
            return Err(MetadataError::UnknownTopic);
        };
        if self.starts.growing(name) {
            return Err(MetadataError::InvalidPartitions(
                "partitions are still being added to this topic".into(),
            ));
        }
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(MetadataError::InvalidPartitions(format!(
                "topic has {current} partitions; the new count {count} must be larger"
            )));
        }
        check_partition_count(count as usize)?;
        let rf = image.assignments.first().map_or(1, |p| p.replicas.len());
        if let Some(manual) = &manual {
            let added = count - current;
            if manual.len() != added as usize {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "attempted to add {added} additional partition(s), but {} assignment(s) \
                     were specified",
                    manual.len()
                )));
            }
            placement::check_assignments(manual, &self.assignable_brokers(), Some(rf))?;
        }
        let found = (image.id, image.configs.clone());
        if validate_only {
            return Ok(None);
        }
        let record = match self.placeable_brokers() {
            Some(brokers) => {
                let assignments = match manual {
                    Some(manual) => manual,
                    None => {
                        let rf = i16::try_from(rf).unwrap_or(i16::MAX);
                        placement::place(&brokers, current, count - current, rf)?
                    }
                };
                MetadataRecord::PartitionsCreatedWithAssignments {
                    name: name.to_string(),
                    assignments,
                }
            }
            None => MetadataRecord::PartitionsCreated {
                name: name.to_string(),
                partitions: count,
            },
        };
        self.commit(record).await?;
        Ok(Some((found.0, found.1, current)))
    }
}

/// At most 100000 partitions per topic (checked before anything is sized by it).
fn check_partition_count(count: usize) -> Result<(), MetadataError> {
    if count > 100_000 {
        return Err(MetadataError::InvalidPartitions(format!(
            "partition count {count} is above 100000"
        )));
    }
    Ok(())
}
