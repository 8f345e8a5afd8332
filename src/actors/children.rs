//! The child actors of a registry, one per key (group id, transactional id): what the group
//! and transaction registries share. A child that stops or fails is forgotten, so the next
//! request for its key starts a fresh one from its file.

use std::collections::HashMap;

use ractor::{ActorId, ActorRef, Message, SupervisionEvent};

pub struct Children<M: Message> {
    by_key: HashMap<String, ActorRef<M>>,
    keys: HashMap<ActorId, String>,
}

impl<M: Message> Default for Children<M> {
    fn default() -> Self {
        Children {
            by_key: HashMap::new(),
            keys: HashMap::new(),
        }
    }
}

impl<M: Message> Children<M> {
    pub fn get(&self, key: &str) -> Option<&ActorRef<M>> {
        self.by_key.get(key)
    }

    pub fn insert(&mut self, key: &str, actor: ActorRef<M>) {
        self.keys.insert(actor.get_id(), key.to_string());
        self.by_key.insert(key.to_string(), actor);
    }

    /// Forgets the child of `key` and returns it (to stop it).
    pub fn remove(&mut self, key: &str) -> Option<ActorRef<M>> {
        let actor = self.by_key.remove(key)?;
        self.keys.remove(&actor.get_id());
        Some(actor)
    }

    /// Every key with a child.
    pub fn keys(&self) -> Vec<String> {
        self.by_key.keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<ActorRef<M>> {
        self.by_key.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// A child stopped or failed: it is forgotten (unless its key already has a newer
    /// child). Returns its key and, when it failed, why.
    pub fn forget(&mut self, event: SupervisionEvent) -> Option<(String, Option<String>)> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            _ => return None,
        };
        let key = self.keys.remove(&cell.get_id())?;
        if self
            .by_key
            .get(&key)
            .is_some_and(|a| a.get_id() == cell.get_id())
        {
            self.by_key.remove(&key);
        }
        Some((key, failure))
    }
}
