//! An in-memory model of the S3 operations s3wal uses, without faults.
//!
//! It knows nothing of networks, latency or an event queue: the caller says
//! when a request reaches the store, and the model answers at once. That keeps
//! it reusable by any driver of virtual time (this crate's world, or a madsim
//! `SimStore` behind the library's `ObjectStore` trait).
//!
//! A conditional PUT is applied atomically at the instant it arrives, then
//! stays "in processing" for a while. A second conditional PUT to the same key
//! that arrives during that window loses with 409 and writes nothing, as S3
//! answers `ConditionalRequestConflict` to overlapping conditional writes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use bytes::Bytes;
use s3wal::Time;

/// One object: its bytes and its user metadata (`x-amz-meta-…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The object's bytes.
    pub body: Bytes,
    /// User metadata, as sent with the PUT.
    pub metadata: Vec<(String, String)>,
}

impl StoredObject {
    /// The value of metadata key `key`, if the object has it.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// How a conditional PUT (`If-None-Match: *`) ended at the store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PutResult {
    /// 200: written.
    Created,
    /// 412: the key already exists; nothing written.
    AlreadyExists,
    /// 409: another conditional PUT to the key was being processed; nothing written.
    Conflict,
}

/// One page of a LIST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in ascending byte order.
    pub keys: Vec<String>,
    /// Whether more keys under the prefix follow the last one returned.
    pub truncated: bool,
}

impl ListPage {
    /// What to pass as `start_after` for the next page, if there is one.
    pub fn continuation(&self) -> Option<&str> {
        if self.truncated {
            self.keys.last().map(String::as_str)
        } else {
            None
        }
    }
}

/// The bucket.
#[derive(Clone, Debug, Default)]
pub struct S3Model {
    objects: BTreeMap<String, StoredObject>,
    /// Per key, when the latest conditional PUT accepted for processing ends.
    busy_until: BTreeMap<String, Time>,
}

impl S3Model {
    /// An empty bucket.
    pub fn new() -> S3Model {
        S3Model::default()
    }

    /// A conditional PUT that reaches the store at `arrival` and is processed
    /// for `processing`. Objects are written at arrival; nothing is ever
    /// overwritten or deleted.
    pub fn put_if_absent(&mut self, key: &str, object: StoredObject, arrival: Time, processing: Duration) -> PutResult {
        if self.busy_until.get(key).is_some_and(|&end| arrival < end) {
            return PutResult::Conflict;
        }
        self.busy_until.insert(key.to_owned(), arrival + processing);
        if self.objects.contains_key(key) {
            return PutResult::AlreadyExists;
        }
        self.objects.insert(key.to_owned(), object);
        PutResult::Created
    }

    /// HEAD: the object's user metadata, or `None` for 404.
    pub fn head(&self, key: &str) -> Option<&[(String, String)]> {
        self.objects.get(key).map(|o| o.metadata.as_slice())
    }

    /// GET: the object, or `None` for 404.
    pub fn get(&self, key: &str) -> Option<&StoredObject> {
        self.objects.get(key)
    }

    /// Whether `key` exists.
    pub fn contains(&self, key: &str) -> bool {
        self.objects.contains_key(key)
    }

    /// LIST (v2): keys under `prefix` strictly after `start_after` (the
    /// continuation), ascending, at most `max_keys` of them.
    pub fn list(&self, prefix: &str, max_keys: usize, start_after: Option<&str>) -> ListPage {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .objects
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix));
        let keys: Vec<String> = matching.by_ref().take(max_keys).cloned().collect();
        let truncated = matching.next().is_some();
        ListPage { keys, truncated }
    }

    /// How many objects the bucket holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the bucket is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object, by key in ascending order.
    pub fn objects(&self) -> impl Iterator<Item = (&str, &StoredObject)> {
        self.objects.iter().map(|(k, o)| (k.as_str(), o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(body: &'static [u8]) -> StoredObject {
        StoredObject { body: Bytes::from_static(body), metadata: vec![("s3wal-tag".into(), "t".into())] }
    }

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    const PROCESSING: Duration = Duration::from_millis(5);

    #[test]
    fn first_put_wins_and_later_ones_get_412() {
        let mut s = S3Model::new();
        assert_eq!(s.put_if_absent("k", object(b"a"), ms(0), PROCESSING), PutResult::Created);
        assert_eq!(s.put_if_absent("k", object(b"b"), ms(10), PROCESSING), PutResult::AlreadyExists);
        assert_eq!(s.get("k").map(|o| o.body.clone()), Some(Bytes::from_static(b"a")));
    }

    #[test]
    fn overlapping_conditional_puts_conflict_without_writing() {
        let mut s = S3Model::new();
        assert_eq!(s.put_if_absent("k", object(b"a"), ms(0), PROCESSING), PutResult::Created);
        assert_eq!(s.put_if_absent("k", object(b"b"), ms(4), PROCESSING), PutResult::Conflict);
        assert_eq!(s.put_if_absent("k", object(b"c"), ms(5), PROCESSING), PutResult::AlreadyExists);
        assert_eq!(s.get("k").map(|o| o.body.clone()), Some(Bytes::from_static(b"a")));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_conflict_does_not_extend_the_busy_window() {
        let mut s = S3Model::new();
        s.put_if_absent("k", object(b"a"), ms(0), PROCESSING);
        s.put_if_absent("k", object(b"b"), ms(4), Duration::from_secs(9));
        assert_eq!(s.put_if_absent("k", object(b"c"), ms(6), PROCESSING), PutResult::AlreadyExists);
    }

    #[test]
    fn head_returns_metadata_and_404s_missing_keys() {
        let mut s = S3Model::new();
        s.put_if_absent("k", object(b"a"), ms(0), PROCESSING);
        let meta = s.head("k").expect("exists");
        assert_eq!(meta, &[("s3wal-tag".to_string(), "t".to_string())]);
        assert_eq!(s.head("other"), None);
        assert_eq!(s.get("k").and_then(|o| o.metadata_value("s3wal-tag")), Some("t"));
    }

    #[test]
    fn list_pages_in_ascending_order_under_the_prefix() {
        let mut s = S3Model::new();
        for key in ["b/3", "b/1", "a/9", "b/2", "c/0"] {
            s.put_if_absent(key, object(b"x"), ms(0), PROCESSING);
        }
        let first = s.list("b/", 2, None);
        assert_eq!(first.keys, vec!["b/1", "b/2"]);
        assert!(first.truncated);
        let second = s.list("b/", 2, first.continuation());
        assert_eq!(second.keys, vec!["b/3"]);
        assert!(!second.truncated);
        assert_eq!(second.continuation(), None);
        let exact = s.list("b/", 3, None);
        assert!(!exact.truncated, "nothing follows the last key");
        assert_eq!(s.list("b/", 10, Some("a/zzz")).keys.len(), 3, "start_after before the prefix");
        assert!(s.list("d/", 10, None).keys.is_empty());
    }

    #[test]
    fn list_with_zero_max_keys_says_whether_anything_exists() {
        let mut s = S3Model::new();
        assert_eq!(s.list("b/", 0, None), ListPage::default());
        s.put_if_absent("b/1", object(b"x"), ms(0), PROCESSING);
        let page = s.list("b/", 0, None);
        assert!(page.keys.is_empty() && page.truncated);
    }
}
