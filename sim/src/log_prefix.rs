//! Reads the valid log back from the store with the library's own rule
//! ([`s3wal::valid_log::Replayer`]): positions 0, 1, … up to the first
//! missing one, each object decoded and judged (void objects of older epochs
//! skipped, duplicates checked byte for byte, forks and gaps refused).
//!
//! Objects never change, so decoded objects are cached by position
//! ([`ObjectCache`]) and a prefix once read can be extended where it stopped.
//! A *fresh* read replays from position 0 over the cache: comparing it with
//! an older read is how the checker sees invariant 3 (the log only grows).

use std::collections::BTreeMap;

use bytes::Bytes;
use s3wal::format::{decode, Object};
use s3wal::valid_log::Replayer;
use s3wal::{CommitSeq, Position};

use crate::s3_model::S3Model;

/// Decoded objects by position (or why one cannot be decoded).
#[derive(Clone, Debug, Default)]
pub struct ObjectCache {
    objects: BTreeMap<Position, Result<Object, String>>,
}

impl ObjectCache {
    /// The object at `position`, decoded once; `None` if the store has none.
    fn get(&mut self, store: &S3Model, position: Position) -> Option<&Result<Object, String>> {
        // Only the decoding is cached: whether the object exists is asked
        // of the store every time.
        let stored = store.get(&position.key())?;
        let decoded = self.objects.entry(position).or_insert_with(|| match decode(&stored.body) {
            Ok(o) if o.header.position != position => Err(format!("object claims position {}", o.header.position)),
            Ok(o) => Ok(o),
            Err(e) => Err(format!("undecodable: {e}")),
        });
        Some(decoded)
    }
}

/// The valid log's prefix read so far.
#[derive(Clone, Debug, Default)]
pub struct LogPrefix {
    replayer: Replayer,
    next: Position,
    /// Valid commits, indexed by sequence number.
    commits: Vec<Bytes>,
    /// Why the object at `next` cannot extend the prefix, though it exists.
    blocked: Option<String>,
}

impl LogPrefix {
    /// Nothing read yet: the log starts at position 0 with commit 0.
    pub fn new() -> LogPrefix {
        LogPrefix::default()
    }

    /// A fresh read of the whole store, from position 0.
    pub fn read(store: &S3Model, cache: &mut ObjectCache) -> LogPrefix {
        let mut log = LogPrefix::new();
        log.extend(store, cache);
        log
    }

    /// The first position not in the prefix.
    pub fn next_position(&self) -> Position {
        self.next
    }

    /// Every valid commit below this one is in the prefix.
    pub fn end_seq(&self) -> CommitSeq {
        CommitSeq(self.commits.len() as u64)
    }

    /// The valid commit `seq`, if the prefix holds it.
    pub fn commit(&self, seq: CommitSeq) -> Option<&Bytes> {
        usize::try_from(seq.0).ok().and_then(|i| self.commits.get(i))
    }

    /// Every valid commit, by sequence number.
    pub fn commits(&self) -> &[Bytes] {
        &self.commits
    }

    /// Why the prefix stops although the next position holds an object.
    pub fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }

    /// Where and why the prefix ends, for a message.
    pub fn end_description(&self) -> String {
        match &self.blocked {
            Some(b) => format!("{} is unusable: {b}", self.next),
            None => format!("{} is missing", self.next),
        }
    }

    /// Reads on as far as the store allows. An undecodable object, or one
    /// that breaks the valid-log rule, ends the prefix for good.
    pub fn extend(&mut self, store: &S3Model, cache: &mut ObjectCache) {
        while self.blocked.is_none() {
            let position = self.next;
            let Some(object) = cache.get(store, position) else {
                return;
            };
            let object = match object {
                Ok(object) => object,
                Err(why) => {
                    self.blocked = Some(format!("{position}: {why}"));
                    return;
                }
            };
            match self.replayer.push(object) {
                Ok(added) if !added.commits.is_empty() && added.first.0 != self.commits.len() as u64 => {
                    let have = self.commits.len();
                    self.blocked =
                        Some(format!("{position}: adds commits from {} but the log holds {have}", added.first));
                }
                Ok(added) => {
                    self.commits.extend(added.commits.shared());
                    self.next = position.next();
                }
                Err(e) => self.blocked = Some(e.to_string()),
            }
        }
    }

    /// Whether `self` is a prefix of `later` (same commits, byte for byte,
    /// and no position or verdict taken back); if not, what differs.
    pub fn is_prefix_of(&self, later: &LogPrefix) -> Result<(), String> {
        if later.next < self.next {
            return Err(format!("the log's prefix ended at {} and now ends at {}", self.next, later.next));
        }
        if later.commits.len() < self.commits.len() {
            return Err(format!("{} valid commits were seen, now only {}", self.commits.len(), later.commits.len()));
        }
        if let Some(i) = self.commits.iter().zip(&later.commits).position(|(a, b)| !same_bytes(a, b)) {
            return Err(format!("commit #{i} changed its bytes"));
        }
        if self.blocked.is_some() && later.next == self.next && later.blocked != self.blocked {
            return Err(format!("{} was unusable and now is judged otherwise", self.next));
        }
        Ok(())
    }
}

/// Byte equality, without comparing bytes when both are the same slice of
/// one buffer (two reads of one cached object): the checker's hot spot.
fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_objects::put_batch;

    fn put(store: &mut S3Model, position: u64, first_seq: u64, commits: &[&'static [u8]]) {
        let commits = commits.iter().map(|c| Bytes::from_static(c)).collect();
        put_batch(store, position, first_seq, commits);
    }

    #[test]
    fn reads_up_to_the_first_gap_and_resumes_when_it_fills() {
        let mut store = S3Model::new();
        let mut cache = ObjectCache::default();
        put(&mut store, 0, 0, &[b"a", b"b"]);
        put(&mut store, 2, 3, &[b"d"]);
        let mut prefix = LogPrefix::new();
        prefix.extend(&store, &mut cache);
        assert_eq!((prefix.next_position(), prefix.end_seq()), (Position(1), CommitSeq(2)));
        let before = prefix.clone();
        put(&mut store, 1, 2, &[b"c"]);
        prefix.extend(&store, &mut cache);
        assert_eq!((prefix.next_position(), prefix.end_seq()), (Position(3), CommitSeq(4)));
        assert_eq!(prefix.commit(CommitSeq(3)).map(|b| b.as_ref()), Some(&b"d"[..]));
        assert_eq!(before.is_prefix_of(&prefix), Ok(()));
        assert!(prefix.is_prefix_of(&before).is_err(), "a shorter log is not a later one");
    }

    #[test]
    fn an_object_out_of_sequence_blocks_the_prefix() {
        let mut store = S3Model::new();
        put(&mut store, 0, 0, &[b"a"]);
        put(&mut store, 1, 5, &[b"z"]);
        let prefix = LogPrefix::read(&store, &mut ObjectCache::default());
        assert_eq!(prefix.end_seq(), CommitSeq(1));
        assert!(prefix.blocked().is_some_and(|b| b.contains("p1")), "{:?}", prefix.blocked());
    }

    #[test]
    fn a_fork_blocks_the_prefix() {
        let mut store = S3Model::new();
        put(&mut store, 0, 0, &[b"a", b"b"]);
        put(&mut store, 1, 1, &[b"X"]);
        let prefix = LogPrefix::read(&store, &mut ObjectCache::default());
        assert_eq!(prefix.end_seq(), CommitSeq(2));
        assert!(prefix.blocked().is_some_and(|b| b.contains("fork")), "{:?}", prefix.blocked());
    }
}
