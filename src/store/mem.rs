//! Objects in memory: for tests and examples.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::{metadata_value, GetOutcome, ListEntry, ListPage, Metadata, ObjectStore};
use crate::format::TAG_METADATA_KEY;
use crate::protocol::{Fault, HeadOutcome, PutOutcome};

/// An in-memory store. Clones share the same objects.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    objects: Arc<Mutex<BTreeMap<String, (Bytes, Metadata)>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, (Bytes, Metadata)>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.objects().len()
    }

    /// Whether it holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes an object (tests use it to damage a log on purpose).
    pub fn remove(&self, key: &str) -> bool {
        self.objects().remove(key).is_some()
    }

    /// Replaces an object's bytes (tests use it to corrupt a log on purpose).
    pub fn overwrite(&self, key: &str, body: Bytes) {
        let mut objects = self.objects();
        let metadata = objects.get(key).map(|(_, m)| m.clone()).unwrap_or_default();
        objects.insert(key.to_string(), (body, metadata));
    }
}

#[async_trait]
impl ObjectStore for MemStore {
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome {
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return PutOutcome::AlreadyExists;
        }
        objects.insert(key.to_string(), (body, metadata.to_vec()));
        PutOutcome::Created
    }

    async fn head(&self, key: &str) -> HeadOutcome {
        match self.objects().get(key) {
            Some((_, metadata)) => {
                HeadOutcome::Found { tag: metadata_value(metadata, TAG_METADATA_KEY).map(String::from) }
            }
            None => HeadOutcome::NotFound,
        }
    }

    async fn get(&self, key: &str) -> GetOutcome {
        match self.objects().get(key) {
            Some((body, _)) => GetOutcome::Found(body.clone()),
            None => GetOutcome::NotFound,
        }
    }

    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        let objects = self.objects();
        let after = start_after.unwrap_or("");
        let mut matching = objects.iter().filter(|(k, _)| k.starts_with(prefix) && k.as_str() > after);
        let entries: Vec<ListEntry> = matching
            .by_ref()
            .take(max_keys as usize)
            .map(|(key, (body, _))| ListEntry { key: key.clone(), size: body.len() as u64 })
            .collect();
        let truncated = matching.next().is_some();
        Ok(ListPage { entries, truncated })
    }

    fn describe(&self) -> String {
        "mem".into()
    }
}
