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

use crate::format::{Header, ObjectKind};
use crate::types::{CommitSeq, Epoch, Position};

/// The valid log's state after a prefix of positions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
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
            ObjectKind::Fence => {
                self.max_epoch = self.max_epoch.max(h.base_epoch);
                self.next_seq = self.next_seq.max(h.first_seq);
                Ok(Verdict::Valid { duplicates: 0 })
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LeaderId;

    fn obj(kind: ObjectKind, p: u64, generation: u64, first: u64, count: u32) -> Header {
        Header {
            kind,
            leader: LeaderId(generation),
            epoch: Epoch { generation, nonce: 0 },
            position: Position(p),
            first_seq: CommitSeq(first),
            count,
            base_epoch: Epoch::default(),
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
