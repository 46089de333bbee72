//! A store seen through a key prefix: several logs (or benchmark runs) in
//! one bucket or directory, each under its own prefix.

use async_trait::async_trait;
use bytes::Bytes;

use super::{GetOutcome, ListEntry, ListPage, ObjectStore};
use crate::protocol::{Fault, HeadOutcome, PutOutcome};

/// `inner`, with every key under `prefix/`.
#[derive(Clone, Debug)]
pub struct Prefixed<S> {
    inner: S,
    prefix: String,
}

impl<S: ObjectStore> Prefixed<S> {
    /// Keys `k` become `prefix/k` in `inner`.
    pub fn new(inner: S, prefix: &str) -> Prefixed<S> {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Prefixed { inner, prefix }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Prefixed<S> {
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome {
        self.inner.put_if_absent(&self.key(key), body, metadata).await
    }

    async fn head(&self, key: &str) -> HeadOutcome {
        self.inner.head(&self.key(key)).await
    }

    async fn get(&self, key: &str) -> GetOutcome {
        self.inner.get(&self.key(key)).await
    }

    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        let after = start_after.map(|a| self.key(a));
        let page = self.inner.list(&self.key(prefix), max_keys, after.as_deref()).await?;
        let entries = page
            .entries
            .into_iter()
            .filter_map(|e| e.key.strip_prefix(&self.prefix).map(|k| ListEntry { key: k.to_string(), size: e.size }))
            .collect();
        Ok(ListPage { entries, truncated: page.truncated })
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.inner.describe(), self.prefix.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[tokio::test]
    async fn keys_live_under_the_prefix_and_list_without_it() {
        let mem = MemStore::new();
        let a = Prefixed::new(mem.clone(), "run-1");
        let b = Prefixed::new(mem.clone(), "/run-2/");
        assert_eq!(a.put_if_absent("batches/x", Bytes::from_static(b"1"), &[]).await, PutOutcome::Created);
        assert_eq!(b.put_if_absent("batches/x", Bytes::from_static(b"2"), &[]).await, PutOutcome::Created);
        assert_eq!(mem.get("run-1/batches/x").await, GetOutcome::Found(Bytes::from_static(b"1")));
        let page = b.list("batches/", 10, None).await.unwrap();
        assert_eq!(page.keys(), vec!["batches/x".to_string()]);
        assert_eq!(a.describe(), "mem/run-1");
    }
}
