//! The valid-log rule, in one place: which objects count.
//!
//! Walk the objects in position order, remembering the greatest epoch seen
//! in a valid object. An object whose epoch is below it is *void*: an older
//! writer's leftover past a newer writer's fence. Every other object is
//! valid. A valid batch's commits join the log; a valid fence adds none.
//!
//! The writer's recovery applies the rule to object tags (from HEADs); the
//! reader applies it to whole objects and also checks commit bytes. See
//! `docs/protocol.md` for why this rule keeps every acknowledged commit.

use crate::format::{Commits, Header, Object, ObjectKind};
use crate::types::{CommitSeq, Epoch, Position};

/// The valid log's state after a prefix of positions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogState {
    /// The greatest epoch of a valid object so far.
    pub max_epoch: Epoch,
    /// The sequence number the next valid commit must have.
    pub next_seq: CommitSeq,
}

/// What the rule says of one object.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It counts. For a batch, `duplicates` of its first commits repeat
    /// commits already in the log (after an ambiguous write) and must be
    /// byte-identical to them.
    Valid {
        /// How many leading commits were already in the log.
        duplicates: u64,
    },
    /// An older writer's object past a newer writer's fence: ignored.
    Void,
}

/// The log breaks the rule in a way no correct writer produces.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A valid batch starts past the next sequence number: commits are missing.
    #[error("{position}: batch starts at commit {first} but the log continues at {expected}")]
    SeqGap {
        /// Where.
        position: Position,
        /// The batch's first commit.
        first: CommitSeq,
        /// What the log expected.
        expected: CommitSeq,
    },
    /// The same sequence number carries different bytes.
    #[error("fork at commit {seq}: {position} holds different bytes for it")]
    Fork {
        /// The commit.
        seq: CommitSeq,
        /// The later object.
        position: Position,
    },
}

impl LogState {
    /// The state before any object.
    pub const EMPTY: LogState = LogState { max_epoch: Epoch { generation: 0, nonce: 0 }, next_seq: CommitSeq(0) };

    /// Judges the object at the next position and folds it in.
    pub fn apply(&mut self, h: &Header) -> Result<Verdict, RuleError> {
        if h.epoch < self.max_epoch {
            return Ok(Verdict::Void);
        }
        self.max_epoch = h.epoch;
        match h.kind {
            ObjectKind::Fence => Ok(Verdict::Valid { duplicates: 0 }),
            ObjectKind::Batch => {
                if h.first_seq > self.next_seq {
                    return Err(RuleError::SeqGap {
                        position: h.position,
                        first: h.first_seq,
                        expected: self.next_seq,
                    });
                }
                let end = h.first_seq.plus(u64::from(h.count));
                let duplicates = (self.next_seq.0 - h.first_seq.0).min(u64::from(h.count));
                self.next_seq = self.next_seq.max(end);
                Ok(Verdict::Valid { duplicates })
            }
        }
    }
}

/// Applies the rule to whole objects, position after position, checking
/// that repeated commits carry the bytes they had the first time.
#[derive(Clone, Debug, Default)]
pub struct Replayer {
    state: LogState,
    /// The last valid batch: the only commits an ambiguous retry can repeat.
    last_first: CommitSeq,
    last_commits: Commits,
}

/// What one object added to the valid log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// The first new commit's sequence number.
    pub first: CommitSeq,
    /// The new commits (none for a fence, a void object or a pure duplicate).
    pub commits: Commits,
}

impl Replayer {
    /// A replay from position 0.
    pub fn new() -> Replayer {
        Replayer::default()
    }

    /// The state after the objects pushed so far.
    pub fn state(&self) -> LogState {
        self.state
    }

    /// Folds in the object at the next position knowing only its header:
    /// for objects whose commits the caller does not need. Repeats of a
    /// skipped object's commits cannot be checked byte for byte.
    pub fn skip(&mut self, header: &Header) -> Result<Verdict, RuleError> {
        let verdict = self.state.apply(header)?;
        if header.kind == ObjectKind::Batch && matches!(verdict, Verdict::Valid { .. }) {
            self.last_first = header.first_seq;
            self.last_commits = Commits::default();
        }
        Ok(verdict)
    }

    /// Folds in the object at the next position.
    pub fn push(&mut self, object: &Object) -> Result<Added, RuleError> {
        let first = self.state.next_seq;
        let none = Added { first, commits: Commits::default() };
        let Verdict::Valid { duplicates } = self.state.apply(&object.header)? else { return Ok(none) };
        if object.header.kind == ObjectKind::Fence {
            return Ok(none);
        }
        let h = &object.header;
        // After `skip`, the repeated commits' bytes are unknown: nothing to compare.
        if !self.last_commits.is_empty() {
            self.check_repeats(h, object.commits.iter().take(duplicates as usize))?;
        }
        let fresh = object.commits.skip(duplicates as usize);
        if !fresh.is_empty() {
            self.last_first = h.first_seq;
            self.last_commits = object.commits.clone();
        }
        Ok(Added { first: h.first_seq.plus(duplicates), commits: fresh })
    }

    /// Checks that `repeats`, the leading commits of the batch `h`, carry
    /// the bytes the last valid batch gave those sequence numbers.
    fn check_repeats<'a>(&self, h: &Header, repeats: impl Iterator<Item = &'a [u8]>) -> Result<(), RuleError> {
        let mut earlier =
            h.first_seq.0.checked_sub(self.last_first.0).map(|k| self.last_commits.iter().skip(k as usize));
        for (i, commit) in repeats.enumerate() {
            if earlier.as_mut().and_then(Iterator::next) != Some(commit) {
                return Err(RuleError::Fork { seq: h.first_seq.plus(i as u64), position: h.position });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{decode, encode_batch};
    use crate::types::LeaderId;
    use bytes::Bytes;

    fn obj(kind: ObjectKind, p: u64, generation: u64, first: u64, count: u32) -> Header {
        Header {
            kind,
            leader: LeaderId(generation),
            epoch: Epoch { generation, nonce: 0 },
            position: Position(p),
            first_seq: CommitSeq(first),
            count,
            checkpoint: Default::default(),
            window: 1,
        }
    }

    #[test]
    fn older_objects_past_a_newer_one_are_void() {
        let mut s = LogState::EMPTY;
        assert_eq!(s.apply(&obj(ObjectKind::Batch, 0, 0, 0, 3)), Ok(Verdict::Valid { duplicates: 0 }));
        assert_eq!(s.apply(&obj(ObjectKind::Fence, 1, 1, 3, 0)), Ok(Verdict::Valid { duplicates: 0 }));
        assert_eq!(s.apply(&obj(ObjectKind::Batch, 2, 0, 3, 5)), Ok(Verdict::Void));
        assert_eq!(s.apply(&obj(ObjectKind::Batch, 3, 1, 3, 2)), Ok(Verdict::Valid { duplicates: 0 }));
        assert_eq!(s.next_seq, CommitSeq(5));
    }

    fn batch(p: u64, generation: u64, first: u64, commits: &[&'static [u8]]) -> Object {
        let header = Header { count: commits.len() as u32, ..obj(ObjectKind::Batch, p, generation, first, 0) };
        let commits: Vec<Bytes> = commits.iter().map(|c| Bytes::from_static(c)).collect();
        decode(&encode_batch(header, &commits).0).expect("own encoding decodes")
    }

    #[test]
    fn exact_duplicates_are_skipped_and_forks_reported() {
        let mut r = Replayer::new();
        let a = batch(0, 0, 0, &[b"a", b"b"]);
        assert_eq!(r.push(&a).unwrap().commits.len(), 2);
        let again = batch(1, 0, 1, &[b"b", b"c"]);
        let added = r.push(&again).unwrap();
        assert_eq!((added.first, added.commits.to_vec()), (CommitSeq(2), again.commits.to_vec()[1..].to_vec()));
        let fork = batch(2, 0, 2, &[b"X"]);
        assert_eq!(r.push(&fork), Err(RuleError::Fork { seq: CommitSeq(2), position: Position(2) }));
    }

    #[test]
    fn overlap_is_reported_as_duplicates_and_gaps_are_errors() {
        let mut s = LogState::EMPTY;
        s.apply(&obj(ObjectKind::Batch, 0, 0, 0, 3)).unwrap();
        assert_eq!(s.apply(&obj(ObjectKind::Batch, 1, 0, 2, 3)), Ok(Verdict::Valid { duplicates: 1 }));
        assert_eq!(s.next_seq, CommitSeq(5));
        let gap = s.apply(&obj(ObjectKind::Batch, 2, 0, 9, 1));
        assert!(matches!(gap, Err(RuleError::SeqGap { .. })));
    }
}
