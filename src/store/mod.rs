//! Where objects live: one small trait, [`ObjectStore`], and its
//! implementations — [`MemStore`] (tests, examples), [`DirStore`] (a local
//! directory, the embedded default) and, with the `s3` feature, `S3Store`.
//!
//! A store answers in the state machine's own outcome types
//! ([`PutOutcome`], [`HeadOutcome`], [`Fault`]) so the driver only forwards
//! them. Every key is relative to the store's root (`batches/…`).
//!
//! s3wal depends on `put_if_absent` being atomic: of two concurrent calls
//! for one key, exactly one may answer `Created`.

mod dir;
mod mem;
mod prefixed;
#[cfg(feature = "s3")]
mod s3;

pub use dir::DirStore;
pub use mem::MemStore;
pub use prefixed::Prefixed;
#[cfg(feature = "s3")]
pub use s3::{S3Error, S3Options, S3Store};

use async_trait::async_trait;
use bytes::Bytes;

use crate::protocol::{Fault, HeadOutcome, PutOutcome};

/// User metadata of an object: `(name, value)` pairs, names without the
/// `x-amz-meta-` prefix.
pub type Metadata = Vec<(String, String)>;

/// How a GET ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetOutcome {
    /// The object's bytes.
    Found(Bytes),
    /// 404.
    NotFound,
    /// The request failed.
    Failed(Fault),
}

/// One object named by a LIST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One page of a LIST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in ascending key order.
    pub entries: Vec<ListEntry>,
    /// Whether more keys follow the last one: ask again with it as `start_after`.
    pub truncated: bool,
}

impl ListPage {
    /// The keys alone.
    pub fn keys(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.key.clone()).collect()
    }
}

/// A place that holds objects, with S3's conditional-create semantics.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Creates `key` only if no object has that key (`If-None-Match: *`),
    /// storing `metadata` with it.
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome;

    /// The object's user metadata, without its body.
    async fn head(&self, key: &str) -> HeadOutcome;

    /// The object's bytes.
    async fn get(&self, key: &str) -> GetOutcome;

    /// Keys under `prefix` in ascending order, at most `max_keys`, starting
    /// after `start_after` if given.
    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault>;

    /// A short name for logs and errors: `mem`, `dir:/path`, `s3://bucket/prefix`.
    fn describe(&self) -> String;
}

/// The value of metadata `name`, if present.
pub fn metadata_value<'a>(metadata: &'a [(String, String)], name: &str) -> Option<&'a str> {
    metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[async_trait]
impl<T: ObjectStore + ?Sized> ObjectStore for std::sync::Arc<T> {
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome {
        (**self).put_if_absent(key, body, metadata).await
    }

    async fn head(&self, key: &str) -> HeadOutcome {
        (**self).head(key).await
    }

    async fn get(&self, key: &str) -> GetOutcome {
        (**self).get(key).await
    }

    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        (**self).list(prefix, max_keys, start_after).await
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}
