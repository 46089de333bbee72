//! The read-only reader: replays the valid log from any store, never
//! writing and never fencing. It sees the log up to its first gap at the
//! moment it lists, so it works while a writer is still appending: what it
//! returns is a prefix of what a later reader returns.

use std::collections::VecDeque;
use std::ops::Range;

use futures::future::join_all;

use bytes::Bytes;

use crate::format::{decode, DecodeError, Object, ObjectKind, ObjectTag};
use crate::protocol::{Fault, HeadOutcome};
use crate::store::{GetOutcome, ObjectStore};
use crate::types::{BatchNumber, CommitSeq, Epoch, LeaderId, Position, BATCH_PREFIX};
use crate::valid_log::{Replayer, RuleError, Verdict};

/// Why the log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed a request.
    #[error("{store}: {op} {key} failed: {fault}")]
    Store {
        /// The store.
        store: String,
        /// LIST, HEAD or GET.
        op: &'static str,
        /// The key (or prefix).
        key: String,
        /// What went wrong.
        fault: Fault,
    },
    /// An object's bytes are damaged or not an s3wal object.
    #[error("object at {position} is corrupt: {error}")]
    Corrupt {
        /// Where.
        position: Position,
        /// What is wrong.
        error: DecodeError,
    },
    /// An object vanished between LIST and GET, or has no tag.
    #[error("object at {position}: {detail}")]
    Inconsistent {
        /// Where.
        position: Position,
        /// What happened.
        detail: String,
    },
    /// The log breaks the valid-log rule.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The log's prefix holds something that is not a batch key.
    #[error("unexpected key {0:?} under batches/: the log's prefix must hold only s3wal objects")]
    ForeignKey(String),
}

/// What a log occupies in its store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Objects under `batches/`.
    pub objects: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Positions `[0, first_gap)` are all written.
    pub first_gap: Position,
}

/// One object as `s3wal inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Where it sits.
    pub position: Position,
    /// Batch or fence.
    pub kind: ObjectKind,
    /// Its writer.
    pub leader: LeaderId,
    /// Its writer's epoch.
    pub epoch: Epoch,
    /// Its commits (for a fence: empty, starting at the carried base).
    pub commits: Range<CommitSeq>,
    /// Whether the valid-log rule keeps it (`false`: void).
    pub valid: bool,
    /// Its size in bytes.
    pub size: u64,
}

/// Reads a log; holds nothing but the store.
#[derive(Clone, Debug)]
pub struct Reader<S> {
    store: S,
}

/// The log's positions `[0, first_gap)` with their sizes, oldest first.
struct Snapshot {
    positions: Vec<(Position, u64)>,
    first_gap: Position,
    objects: u64,
    bytes: u64,
}

impl<S: ObjectStore> Reader<S> {
    /// A reader of the log in `store`.
    pub fn new(store: S) -> Reader<S> {
        Reader { store }
    }

    fn store_error(&self, op: &'static str, key: &str, fault: Fault) -> ReadError {
        ReadError::Store { store: self.store.describe(), op, key: key.to_string(), fault }
    }

    /// Lists every object and finds the first gap.
    async fn snapshot(&self) -> Result<Snapshot, ReadError> {
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list(BATCH_PREFIX, 1000, after.as_deref())
                .await
                .map_err(|f| self.store_error("LIST", BATCH_PREFIX, f))?;
            for entry in &page.entries {
                let number =
                    BatchNumber::from_key(&entry.key).ok_or_else(|| ReadError::ForeignKey(entry.key.clone()))?;
                listed.push((number.position(), entry.size));
            }
            after = page.entries.last().map(|e| e.key.clone());
            if !page.truncated || after.is_none() {
                break;
            }
        }
        let (objects, bytes) = (listed.len() as u64, listed.iter().map(|(_, s)| s).sum());
        listed.reverse();
        let contiguous = listed.iter().enumerate().take_while(|(i, (p, _))| p.0 == *i as u64).count();
        listed.truncate(contiguous);
        Ok(Snapshot { first_gap: Position(contiguous as u64), positions: listed, objects, bytes })
    }

    /// Objects and bytes under `batches/`, and the first gap. Fallible: it
    /// lists the whole prefix.
    pub async fn usage(&self) -> Result<Usage, ReadError> {
        let s = self.snapshot().await?;
        Ok(Usage { objects: s.objects, bytes: s.bytes, first_gap: s.first_gap })
    }

    async fn tag(&self, position: Position) -> Result<ObjectTag, ReadError> {
        let key = position.key();
        match self.store.head(&key).await {
            HeadOutcome::Found { tag: Some(tag) } => {
                ObjectTag::parse(&tag).map_err(|e| ReadError::Inconsistent { position, detail: e.to_string() })
            }
            HeadOutcome::Found { tag: None } => {
                Err(ReadError::Inconsistent { position, detail: "no s3wal tag".into() })
            }
            HeadOutcome::NotFound => Err(ReadError::Inconsistent { position, detail: "listed but gone".into() }),
            HeadOutcome::Failed(fault) => Err(self.store_error("HEAD", &key, fault)),
        }
    }

    /// The tags of several positions, asked for all at once.
    async fn tags(&self, positions: &[Position]) -> Result<Vec<ObjectTag>, ReadError> {
        join_all(positions.iter().map(|&p| self.tag(p))).await.into_iter().collect()
    }

    async fn object(&self, position: Position) -> Result<Object, ReadError> {
        let key = position.key();
        match self.store.get(&key).await {
            GetOutcome::Found(bytes) => decode(&bytes).map_err(|error| ReadError::Corrupt { position, error }),
            GetOutcome::NotFound => Err(ReadError::Inconsistent { position, detail: "listed but gone".into() }),
            GetOutcome::Failed(fault) => Err(self.store_error("GET", &key, fault)),
        }
    }

    /// Calls `f` on every valid commit with a sequence number in `range`,
    /// in order, and returns the accumulated value. Objects wholly before the
    /// range are judged from their tags (a HEAD); the reading stops at the
    /// range's end.
    pub async fn fold<B>(
        &self,
        range: Range<CommitSeq>,
        init: B,
        mut f: impl FnMut(B, CommitSeq, &Bytes) -> B,
    ) -> Result<B, ReadError> {
        let mut acc = init;
        let mut cursor = self.commits(range).await?;
        while let Some((seq, commit)) = cursor.next().await? {
            acc = f(acc, seq, &commit);
        }
        Ok(acc)
    }

    /// A cursor over the valid commits with sequence numbers in `range`.
    pub async fn commits(&self, range: Range<CommitSeq>) -> Result<Commits<'_, S>, ReadError> {
        let snapshot = self.snapshot().await?;
        Ok(Commits {
            reader: self,
            range,
            positions: snapshot.positions.into_iter(),
            tags: VecDeque::new(),
            replayer: Replayer::new(),
            pending: Vec::new().into_iter(),
            done: false,
        })
    }

    /// Every object up to the first gap, judged by the valid-log rule (tags only).
    pub async fn inspect(&self) -> Result<(Vec<ObjectSummary>, Usage), ReadError> {
        let snapshot = self.snapshot().await?;
        let mut replayer = Replayer::new();
        let mut summaries = Vec::with_capacity(snapshot.positions.len());
        for chunk in snapshot.positions.chunks(TAGS_AT_ONCE) {
            let positions: Vec<Position> = chunk.iter().map(|(p, _)| *p).collect();
            for (tag, &(position, size)) in self.tags(&positions).await?.into_iter().zip(chunk) {
                let h = tag.header;
                let valid = matches!(replayer.skip(&h)?, Verdict::Valid { .. });
                let commits = h.first_seq..h.first_seq.plus(u64::from(h.count));
                summaries.push(ObjectSummary {
                    position,
                    kind: h.kind,
                    leader: h.leader,
                    epoch: h.epoch,
                    commits,
                    valid,
                    size,
                });
            }
        }
        let usage = Usage { objects: snapshot.objects, bytes: snapshot.bytes, first_gap: snapshot.first_gap };
        Ok((summaries, usage))
    }
}

/// HEADs a reader keeps in flight at once.
const TAGS_AT_ONCE: usize = 64;

/// Valid commits in order, fetched object by object.
pub struct Commits<'r, S> {
    reader: &'r Reader<S>,
    range: Range<CommitSeq>,
    positions: std::vec::IntoIter<(Position, u64)>,
    /// Tags fetched ahead, in position order.
    tags: VecDeque<ObjectTag>,
    replayer: Replayer,
    pending: std::vec::IntoIter<(CommitSeq, Bytes)>,
    done: bool,
}

impl<S: ObjectStore> Commits<'_, S> {
    /// The next valid commit in the range, or `None` at its end.
    pub async fn next(&mut self) -> Result<Option<(CommitSeq, Bytes)>, ReadError> {
        loop {
            if let Some(item) = self.pending.next() {
                return Ok(Some(item));
            }
            if self.done || self.replayer.state().next_seq >= self.range.end {
                return Ok(None);
            }
            if self.tags.is_empty() {
                let ahead: Vec<Position> = self.positions.by_ref().take(TAGS_AT_ONCE).map(|(p, _)| p).collect();
                self.tags.extend(self.reader.tags(&ahead).await?);
            }
            let Some(tag) = self.tags.pop_front() else {
                self.done = true;
                return Ok(None);
            };
            self.load(tag).await?;
        }
    }

    async fn load(&mut self, tag: ObjectTag) -> Result<(), ReadError> {
        let h = tag.header;
        let position = h.position;
        let end = h.first_seq.plus(u64::from(h.count));
        let void = h.epoch < self.replayer.state().max_epoch;
        if h.kind == ObjectKind::Fence || end <= self.range.start || void {
            self.replayer.skip(&h)?;
            return Ok(());
        }
        let object = self.reader.object(position).await?;
        if object.tag() != tag {
            return Err(ReadError::Inconsistent { position, detail: "tag does not match the object".into() });
        }
        let added = self.replayer.push(&object)?;
        // Only the commits inside the range become `Bytes`.
        let first = added.first.0;
        let skip = self.range.start.0.saturating_sub(first);
        let end = self.range.end.0.saturating_sub(first).max(skip);
        let in_range = added.commits.skip(skip as usize);
        let fresh = (skip..end).zip(in_range.shared()).map(|(k, c)| (CommitSeq(first + k), c));
        self.pending = fresh.collect::<Vec<_>>().into_iter();
        Ok(())
    }
}
