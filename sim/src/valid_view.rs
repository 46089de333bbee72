//! The valid log of a bucket, read incrementally with the library's own
//! rule ([`s3wal::valid_log::Replayer`]): positions 0, 1, … up to the first
//! missing one, void objects skipped, duplicates checked byte for byte.
//!
//! Objects are never changed or deleted, so what was read stays read and
//! reading resumes where it stopped. The madsim checker asks it, at the
//! moment an append resolves, whether the commit is in the store.

use bytes::Bytes;
use s3wal::format::decode;
use s3wal::valid_log::Replayer;
use s3wal::{CommitSeq, Position};

use crate::s3_model::S3Model;

/// The valid log read so far.
#[derive(Clone, Debug, Default)]
pub struct ValidView {
    next: Position,
    replayer: Replayer,
    /// Every valid commit, by sequence number.
    commits: Vec<Bytes>,
    /// Why the log cannot be read past `next`: no correct writer produces it.
    broken: Option<String>,
}

impl ValidView {
    /// Nothing read yet.
    pub fn new() -> ValidView {
        ValidView::default()
    }

    /// Reads on as far as the bucket allows.
    pub fn extend(&mut self, store: &S3Model) {
        while self.broken.is_none() {
            let position = self.next;
            let Some(stored) = store.get(&position.key()) else { return };
            let object = match decode(&stored.body) {
                Ok(object) => object,
                Err(e) => {
                    self.broken = Some(format!("{position} is undecodable: {e}"));
                    return;
                }
            };
            if object.header.position != position {
                self.broken = Some(format!("{position} holds an object for {}", object.header.position));
                return;
            }
            match self.replayer.push(&object) {
                Ok(added) => {
                    if !added.commits.is_empty() && added.first.0 != self.commits.len() as u64 {
                        let first = added.first;
                        self.broken =
                            Some(format!("{position} adds commits from {first}, the log is at {}", self.end()));
                        return;
                    }
                    self.commits.extend(added.commits.iter().cloned());
                }
                Err(rule) => {
                    self.broken = Some(rule.to_string());
                    return;
                }
            }
            self.next = position.next();
        }
    }

    /// Every commit below this one is in the valid log.
    pub fn end(&self) -> CommitSeq {
        CommitSeq(self.commits.len() as u64)
    }

    /// The first position not read (missing when last looked).
    pub fn next_position(&self) -> Position {
        self.next
    }

    /// Commit `seq`'s bytes, if it is in the valid log.
    pub fn commit(&self, seq: CommitSeq) -> Option<&Bytes> {
        usize::try_from(seq.0).ok().and_then(|i| self.commits.get(i))
    }

    /// Every valid commit, in order from 0.
    pub fn commits(&self) -> &[Bytes] {
        &self.commits
    }

    /// Why the bucket holds something no correct writer writes, if it does.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_objects::put_batch;

    fn commits(xs: &[&'static [u8]]) -> Vec<Bytes> {
        xs.iter().map(|c| Bytes::from_static(c)).collect()
    }

    #[test]
    fn reads_to_the_first_gap_and_resumes() {
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, commits(&[b"a", b"b"]));
        put_batch(&mut store, 2, 3, commits(&[b"d"]));
        let mut view = ValidView::new();
        view.extend(&store);
        assert_eq!((view.end(), view.next_position()), (CommitSeq(2), Position(1)));
        put_batch(&mut store, 1, 2, commits(&[b"c"]));
        view.extend(&store);
        assert_eq!(view.end(), CommitSeq(4));
        assert_eq!(view.commit(CommitSeq(3)).map(|b| &b[..]), Some(&b"d"[..]));
        assert!(view.broken().is_none());
    }

    #[test]
    fn a_gap_in_sequence_numbers_breaks_the_log() {
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, commits(&[b"a"]));
        put_batch(&mut store, 1, 5, commits(&[b"z"]));
        let mut view = ValidView::new();
        view.extend(&store);
        assert_eq!(view.end(), CommitSeq(1));
        assert!(view.broken().is_some_and(|b| b.contains("p1")), "{:?}", view.broken());
    }

    #[test]
    fn a_fork_breaks_the_log() {
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, commits(&[b"a", b"b"]));
        put_batch(&mut store, 1, 1, commits(&[b"X", b"c"]));
        let mut view = ValidView::new();
        view.extend(&store);
        assert!(view.broken().is_some_and(|b| b.contains("fork")), "{:?}", view.broken());
    }
}
