//! Reads the log back from the store: positions 0, 1, … up to the first
//! missing one, each object decoded and chained to the last by sequence
//! number.
//!
//! This is the single-writer reading of the log. Once takeovers are simulated
//! it gives way to the library's valid-log reader (fences, epochs, void
//! objects), which is why it lives on its own.

use bytes::Bytes;
use s3wal::format::decode;
use s3wal::{CommitSeq, Position};

use crate::s3_model::S3Model;

/// The contiguous prefix of the log read so far. Objects are never changed
/// or deleted, so a prefix once read stays valid and reading resumes where
/// it stopped.
#[derive(Clone, Debug)]
pub struct LogPrefix {
    next: Position,
    end_seq: CommitSeq,
    /// Why the object at `next` cannot extend the prefix, though it exists.
    blocked: Option<String>,
}

impl Default for LogPrefix {
    fn default() -> Self {
        LogPrefix::new()
    }
}

impl LogPrefix {
    /// Nothing read yet: the log starts at position 0 with commit 0.
    pub fn new() -> LogPrefix {
        LogPrefix { next: Position(0), end_seq: CommitSeq(0), blocked: None }
    }

    /// The first position not in the prefix.
    pub fn next_position(&self) -> Position {
        self.next
    }

    /// Every commit below this one is in the prefix.
    pub fn end_seq(&self) -> CommitSeq {
        self.end_seq
    }

    /// Why the prefix stops although the next position holds an object.
    pub fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }

    /// Reads on as far as the store allows. `judge` sees every commit of
    /// each new object and may refuse it; a refused, undecodable or
    /// out-of-sequence object ends the prefix for good.
    pub fn extend(&mut self, store: &S3Model, mut judge: impl FnMut(CommitSeq, &Bytes) -> Result<(), String>) {
        while self.blocked.is_none() {
            let position = self.next;
            let Some(object) = store.get(&position.key()) else {
                return;
            };
            match self.read_object(position, &object.body, &mut judge) {
                Ok(count) => {
                    self.next = position.next();
                    self.end_seq = self.end_seq.plus(count);
                }
                Err(why) => self.blocked = Some(format!("{position}: {why}")),
            }
        }
    }

    fn read_object(
        &self,
        position: Position,
        body: &Bytes,
        judge: &mut impl FnMut(CommitSeq, &Bytes) -> Result<(), String>,
    ) -> Result<u64, String> {
        let object = decode(body).map_err(|e| format!("undecodable: {e}"))?;
        let h = object.header;
        if h.position != position {
            return Err(format!("object claims position {}", h.position));
        }
        if h.first_seq != self.end_seq {
            return Err(format!("object starts at {} but the log so far ends at {}", h.first_seq, self.end_seq));
        }
        for (seq, commit) in (h.first_seq.0..).map(CommitSeq).zip(&object.commits) {
            judge(seq, commit)?;
        }
        Ok(object.commits.len() as u64)
    }
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
        put(&mut store, 0, 0, &[b"a", b"b"]);
        put(&mut store, 2, 3, &[b"d"]);
        let mut prefix = LogPrefix::new();
        let mut seen = Vec::new();
        prefix.extend(&store, |seq, c| {
            seen.push((seq.0, c.clone()));
            Ok(())
        });
        assert_eq!((prefix.next_position(), prefix.end_seq()), (Position(1), CommitSeq(2)));
        put(&mut store, 1, 2, &[b"c"]);
        prefix.extend(&store, |seq, c| {
            seen.push((seq.0, c.clone()));
            Ok(())
        });
        assert_eq!((prefix.next_position(), prefix.end_seq()), (Position(3), CommitSeq(4)));
        let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
    }

    #[test]
    fn an_object_out_of_sequence_blocks_the_prefix() {
        let mut store = S3Model::new();
        put(&mut store, 0, 0, &[b"a"]);
        put(&mut store, 1, 5, &[b"z"]);
        let mut prefix = LogPrefix::new();
        prefix.extend(&store, |_, _| Ok(()));
        assert_eq!(prefix.end_seq(), CommitSeq(1));
        assert!(prefix.blocked().is_some_and(|b| b.contains("p1")), "{:?}", prefix.blocked());
    }

    #[test]
    fn a_refused_commit_blocks_the_whole_object() {
        let mut store = S3Model::new();
        put(&mut store, 0, 0, &[b"a", b"b"]);
        let mut prefix = LogPrefix::new();
        prefix.extend(&store, |seq, _| if seq.0 == 1 { Err("wrong".into()) } else { Ok(()) });
        assert_eq!(prefix.end_seq(), CommitSeq(0));
        assert_eq!(prefix.blocked(), Some("p0: wrong"));
    }
}
