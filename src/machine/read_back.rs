//! Recovery's reads: the tags of the positions just below the first gap,
//! fetched with HEADs, a bounded number at a time, each retried on failure.
//! The span starts as the one position below the gap and widens down to the
//! checkpoint that position's tag names.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::format::ObjectTag;
use crate::types::{Position, RequestId, Time};

#[derive(Debug)]
pub(crate) struct ReadBack {
    span: Range<u64>,
    /// Positions in `[span.start, unread)` have not been asked for yet.
    unread: u64,
    outstanding: BTreeMap<RequestId, Position>,
    waiting: BTreeMap<Position, Time>,
    failures: BTreeMap<Position, u32>,
    tags: BTreeMap<Position, ObjectTag>,
}

impl ReadBack {
    pub fn new(span: Range<u64>) -> ReadBack {
        let unread = span.end;
        ReadBack {
            span,
            unread,
            outstanding: BTreeMap::new(),
            waiting: BTreeMap::new(),
            failures: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    /// Requests outstanding.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The next position to ask about at `now`: a retry that is due, else
    /// the highest one not asked for yet.
    pub fn next_due(&mut self, now: Time) -> Option<Position> {
        if let Some((&position, _)) = self.waiting.iter().find(|(_, &at)| at <= now) {
            self.waiting.remove(&position);
            return Some(position);
        }
        if self.unread > self.span.start {
            self.unread -= 1;
            return Some(Position(self.unread));
        }
        None
    }

    pub fn sent(&mut self, request: RequestId, position: Position) {
        self.outstanding.insert(request, position);
    }

    /// The position a finished request was about, if it is ours.
    pub fn finished(&mut self, request: RequestId) -> Option<Position> {
        self.outstanding.remove(&request)
    }

    pub fn record(&mut self, position: Position, tag: ObjectTag) {
        self.tags.insert(position, tag);
    }

    /// Extends the span down to `start`.
    pub fn widen(&mut self, start: u64) {
        self.span.start = self.span.start.min(start);
    }

    /// Schedules another try at `at`; returns how many tries failed so far.
    pub fn retry_at(&mut self, position: Position, at: Time) -> u32 {
        let failures = self.failures.entry(position).or_insert(0);
        *failures += 1;
        self.waiting.insert(position, at);
        *failures
    }

    pub fn failures(&self, position: Position) -> u32 {
        self.failures.get(&position).copied().unwrap_or(0)
    }

    pub fn deadline(&self) -> Option<Time> {
        self.waiting.values().min().copied()
    }

    pub fn is_complete(&self) -> bool {
        self.tags.len() as u64 == self.span.end - self.span.start
    }

    pub fn tags(&self) -> &BTreeMap<Position, ObjectTag> {
        &self.tags
    }
}
