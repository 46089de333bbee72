//! The checker of the madsim level: judges what the real driver's API told
//! the application — append futures, the durable watermark, the stream of
//! durable commits, `shutdown()` — against what the store holds. Like the
//! pure world's checker it knows nothing of faults, nodes or latency.
//!
//! Instances are numbered in the order they opened. For each it keeps the
//! commits appended (bytes, and what became of each future) and what its
//! watermark said. The store is read with the library's own valid-log rule
//! (the pure world checker's [`LogPrefix`]) at every acknowledgement and once more at the end with
//! the library's [`s3wal::reader::Reader`] (passed in as a list).

use std::fmt;

use bytes::Bytes;
use s3wal::config::budget_cost;
use s3wal::driver::AppendError;
use s3wal::{CommitSeq, Time};

use crate::log_prefix::{LogPrefix, ObjectCache};
use crate::s3_model::S3Model;

/// One instance (one `Log::open` that succeeded), in the order they opened.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceNo(pub u32);

impl fmt::Display for InstanceNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I{}", self.0)
    }
}

/// The property a violation breaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriverInvariant {
    /// 1: an append resolves `Ok`, and the watermark passes a commit, only
    /// once it is in the store's valid log with its bytes; the watermark
    /// only grows and moves before the futures.
    AckDurable,
    /// 2: every acknowledged commit is in the log read back at the end,
    /// byte for byte, in order.
    AckedInLog,
    /// Sequence numbers: contiguous per instance, each future resolves with
    /// its own, and a new instance numbers past every acknowledged commit.
    Numbering,
    /// Backpressure: bytes appended but not durable stay within the budget.
    Budget,
    /// 7: every future resolves, `Ok` or with a reason (not `Closed` while
    /// the log was in use); nothing hangs; after faults stop, a new
    /// instance opens, acknowledges and shuts down cleanly.
    Liveness,
    /// A clean `shutdown()` leaves every commit appended before it durable.
    Drain,
    /// The stream of durable commits is in order, with the bytes appended.
    Stream,
    /// The bucket holds a log the valid-log rule rejects, or the library's
    /// reader disagrees with the rule.
    ValidLog,
}

impl fmt::Display for DriverInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverInvariant::AckDurable => "1 (acks only for commits durable in the store)",
            DriverInvariant::AckedInLog => "2 (every acked commit is in the log)",
            DriverInvariant::Numbering => "sequence numbers",
            DriverInvariant::Budget => "byte budget",
            DriverInvariant::Liveness => "7 (every future resolves; nothing hangs)",
            DriverInvariant::Drain => "shutdown drains",
            DriverInvariant::Stream => "durable stream",
            DriverInvariant::ValidLog => "valid log",
        })
    }
}

/// A broken invariant: which, when, and what exactly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant {invariant} violated at {at}{}: {detail}", instance.map(|i| format!(" by {i}")).unwrap_or_default())]
pub struct DriverViolation {
    /// The invariant.
    pub invariant: DriverInvariant,
    /// When (virtual time).
    pub at: Time,
    /// The instance concerned, if one is.
    pub instance: Option<InstanceNo>,
    /// What was seen.
    pub detail: String,
}

/// What became of one append's future.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    /// Not resolved (yet).
    Pending,
    /// The application dropped it: only the watermark tells.
    Dropped,
    /// `Ok(seq)`.
    Acked,
    /// An error.
    Failed(AppendError),
}

#[derive(Clone, Debug)]
struct Commit {
    bytes: Bytes,
    /// Appended before `shutdown()` was called on its log.
    before_shutdown: bool,
    fate: Fate,
    /// Bytes appended to this instance up to and including this commit.
    bytes_through: u64,
}

#[derive(Clone, Debug)]
struct Ledger {
    label: String,
    first: CommitSeq,
    commits: Vec<Commit>,
    watermark: CommitSeq,
    stream_next: CommitSeq,
    shutdown_called: bool,
    /// `shutdown()` returned.
    ended: bool,
    clean_shutdown: bool,
    killed: bool,
}

impl Ledger {
    fn end(&self) -> CommitSeq {
        self.first.plus(self.commits.len() as u64)
    }

    fn get(&self, seq: CommitSeq) -> Option<&Commit> {
        seq.0.checked_sub(self.first.0).and_then(|i| self.commits.get(usize::try_from(i).ok()?))
    }

    fn get_mut(&mut self, seq: CommitSeq) -> Option<&mut Commit> {
        let i = usize::try_from(seq.0.checked_sub(self.first.0)?).ok()?;
        self.commits.get_mut(i)
    }

    fn bytes_before(&self, seq: CommitSeq) -> u64 {
        match seq.0.checked_sub(self.first.0) {
            None | Some(0) => 0,
            Some(i) => self.commits.get(i as usize - 1).map_or(0, |c| c.bytes_through),
        }
    }
}

type Checked = Result<(), DriverViolation>;

/// The checker of one madsim run.
#[derive(Debug)]
pub struct DriverChecker {
    byte_budget: u64,
    ledgers: Vec<Ledger>,
    /// The store's valid log, read as far as it goes.
    view: LogPrefix,
    cache: ObjectCache,
    /// Every commit below this one was acknowledged by some instance.
    acked_end: CommitSeq,
    checks: u64,
    first_violation: Option<DriverViolation>,
}

impl DriverChecker {
    /// A checker for logs opened with this byte budget.
    pub fn new(byte_budget: u64) -> DriverChecker {
        DriverChecker {
            byte_budget,
            ledgers: Vec::new(),
            view: LogPrefix::new(),
            cache: ObjectCache::default(),
            acked_end: CommitSeq(0),
            checks: 0,
            first_violation: None,
        }
    }

    /// The first violation seen, if any. Every check after it is skipped.
    pub fn violation(&self) -> Option<&DriverViolation> {
        self.first_violation.as_ref()
    }

    /// Checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// Instances opened so far.
    pub fn instances(&self) -> u32 {
        self.ledgers.len() as u32
    }

    /// Commits appended, acknowledged (future `Ok` or under a watermark),
    /// and resolved with an error, over all instances.
    pub fn totals(&self) -> (u64, u64, u64) {
        let mut totals = (0, 0, 0);
        for l in &self.ledgers {
            totals.0 += l.commits.len() as u64;
            for (i, c) in l.commits.iter().enumerate() {
                let acked = c.fate == Fate::Acked || l.first.plus(i as u64) < l.watermark;
                totals.1 += u64::from(acked);
                totals.2 += u64::from(matches!(c.fate, Fate::Failed(_)));
            }
        }
        totals
    }

    /// Records a violation the caller found (a hang, an instance that could
    /// not open after faults stopped).
    pub fn fail(&mut self, invariant: DriverInvariant, at: Time, instance: Option<InstanceNo>, detail: String) {
        let _ = self.record(Err(DriverViolation { invariant, at, instance, detail }));
    }

    fn record(&mut self, result: Checked) -> Checked {
        if let Err(v) = &result {
            if self.first_violation.is_none() {
                self.first_violation = Some(v.clone());
            }
        }
        result
    }

    fn check(&mut self, ok: bool, violation: impl FnOnce() -> DriverViolation) -> Checked {
        self.checks += 1;
        if ok {
            Ok(())
        } else {
            self.record(Err(violation()))
        }
    }

    fn ledger(&self, no: InstanceNo) -> &Ledger {
        &self.ledgers[no.0 as usize]
    }

    fn ledger_mut(&mut self, no: InstanceNo) -> &mut Ledger {
        &mut self.ledgers[no.0 as usize]
    }

    /// Every commit below this one was acknowledged by some instance.
    pub fn acked_end(&self) -> CommitSeq {
        self.acked_end
    }

    /// A log opened; it numbers its commits from `first`. `acked_before` is
    /// [`acked_end`](Self::acked_end) when its `Log::open` was called: those
    /// commits it must have found. Commits acknowledged while it was opening
    /// it may miss (a writer paused after recovery returns stale), and then
    /// its first write is fenced; the ack checks see to that.
    pub fn opened(
        &mut self,
        at: Time,
        label: &str,
        first: CommitSeq,
        acked_before: CommitSeq,
    ) -> (InstanceNo, Checked) {
        let no = InstanceNo(self.ledgers.len() as u32);
        self.ledgers.push(Ledger {
            label: label.to_owned(),
            first,
            commits: Vec::new(),
            watermark: first,
            stream_next: first,
            shutdown_called: false,
            ended: false,
            clean_shutdown: false,
            killed: false,
        });
        let v = violation(DriverInvariant::Numbering, at, no);
        let checked = self.check(first >= acked_before, || {
            v(format!(
                "{label} opened numbering from {first}, but commits up to {acked_before} were acknowledged before it began to open"
            ))
        });
        (no, checked)
    }

    /// `append` returned `Ok` with `seq`; `watermark` is the log's durable
    /// watermark right after. `kept`: the application awaits the future.
    pub fn appended(
        &mut self,
        at: Time,
        no: InstanceNo,
        seq: CommitSeq,
        bytes: Bytes,
        watermark: CommitSeq,
        kept: bool,
    ) -> Checked {
        let l = self.ledger(no);
        let expected = l.end();
        let v = violation(DriverInvariant::Numbering, at, no);
        self.check(seq == expected, || v(format!("append returned {seq}, expected {expected}")))?;
        let l = self.ledger_mut(no);
        let bytes_through = l.bytes_before(seq) + bytes.len() as u64;
        let before_shutdown = !l.shutdown_called;
        let fate = if kept { Fate::Pending } else { Fate::Dropped };
        l.commits.push(Commit { bytes, before_shutdown, fate, bytes_through });
        let l = self.ledger(no);
        let durable = watermark.max(l.first).min(l.end());
        let outstanding = budget_cost(seq.0 + 1 - durable.0, bytes_through - l.bytes_before(durable));
        let budget = self.byte_budget;
        let v = violation(DriverInvariant::Budget, at, no);
        self.check(outstanding <= budget, || {
            v(format!(
                "commits {durable}..={seq}, appended but not durable, cost {outstanding} bytes \
                 (with their bookkeeping), over the budget of {budget}"
            ))
        })
    }

    /// An append's future resolved; `watermark` is the log's watermark as
    /// the application sees it then, `store` the bucket right now.
    pub fn resolved(
        &mut self,
        at: Time,
        no: InstanceNo,
        seq: CommitSeq,
        result: Result<CommitSeq, AppendError>,
        watermark: CommitSeq,
        store: &S3Model,
    ) -> Checked {
        let Some(commit) = self.ledger(no).get(seq).cloned() else {
            let v = violation(DriverInvariant::Numbering, at, no);
            return self.check(false, || v(format!("a future resolved for {seq}, which was never appended")));
        };
        let v = violation(DriverInvariant::Liveness, at, no);
        self.check(commit.fate == Fate::Pending, || v(format!("the future of {seq} resolved twice")))?;
        match result {
            Ok(got) => {
                let v = violation(DriverInvariant::Numbering, at, no);
                self.check(got == seq, || v(format!("the future of {seq} resolved Ok({got})")))?;
                let v = violation(DriverInvariant::AckDurable, at, no);
                self.check(watermark > seq, || {
                    v(format!("{seq} acknowledged while the durable watermark is at {watermark}"))
                })?;
                self.in_store(at, no, seq, &commit.bytes, store, "acknowledged")?;
                self.ledger_mut(no).get_mut(seq).expect("checked above").fate = Fate::Acked;
                self.acked_end = self.acked_end.max(seq.next());
            }
            Err(error) => {
                let v = violation(DriverInvariant::Liveness, at, no);
                let typed = match &error {
                    AppendError::Fenced(_) | AppendError::Failed(_) => true,
                    // Only an append that may have come after `shutdown()`
                    // may hear that the log is shutting down, or gone.
                    AppendError::ShuttingDown | AppendError::Closed => !commit.before_shutdown,
                    AppendError::TooLarge { .. } => false,
                };
                self.check(typed, || v(format!("the future of {seq} resolved with \"{error}\"")))?;
                self.ledger_mut(no).get_mut(seq).expect("checked above").fate = Fate::Failed(error);
            }
        }
        Ok(())
    }

    fn in_store(
        &mut self,
        at: Time,
        no: InstanceNo,
        seq: CommitSeq,
        bytes: &Bytes,
        store: &S3Model,
        what: &str,
    ) -> Checked {
        self.view.extend(store, &mut self.cache);
        let found = self.view.commit(seq).cloned();
        let (end, next, broken) =
            (self.view.end_seq(), self.view.next_position(), self.view.blocked().map(str::to_owned));
        let v = violation(DriverInvariant::AckDurable, at, no);
        self.check(found.as_ref() == Some(bytes), || {
            v(match found {
                Some(other) => format!("{seq} {what}, but the store holds {} other bytes for it", other.len()),
                None => format!(
                    "{seq} {what}, but the store's valid log ends at {end} ({next} {})",
                    broken.map_or("is missing".into(), |b| format!("is unusable: {b}"))
                ),
            })
        })
    }

    /// The log's durable watermark moved to `watermark`.
    pub fn watermark(&mut self, at: Time, no: InstanceNo, watermark: CommitSeq, store: &S3Model) -> Checked {
        let l = self.ledger(no).clone();
        let v = violation(DriverInvariant::AckDurable, at, no);
        self.check(watermark >= l.watermark, || {
            v(format!("the watermark went back from {} to {watermark}", l.watermark))
        })?;
        self.check(watermark <= l.end(), || {
            v(format!("the watermark is at {watermark} but commits appended end at {}", l.end()))
        })?;
        for seq in (l.watermark.0..watermark.0).map(CommitSeq) {
            let bytes = l.get(seq).map(|c| c.bytes.clone()).unwrap_or_default();
            self.in_store(at, no, seq, &bytes, store, "under the watermark")?;
        }
        self.ledger_mut(no).watermark = watermark;
        self.acked_end = self.acked_end.max(watermark);
        Ok(())
    }

    /// The stream of durable commits handed over `seq`.
    pub fn streamed(
        &mut self,
        at: Time,
        no: InstanceNo,
        seq: CommitSeq,
        bytes: &Bytes,
        watermark: CommitSeq,
    ) -> Checked {
        let l = self.ledger(no);
        let (expected, appended) = (l.stream_next, l.get(seq).map(|c| c.bytes.clone()));
        let v = violation(DriverInvariant::Stream, at, no);
        self.check(seq == expected, || v(format!("the stream handed over {seq}, expected {expected}")))?;
        self.check(appended.as_ref() == Some(bytes), || v(format!("the stream's {seq} is not the commit appended")))?;
        self.check(seq < watermark, || {
            v(format!("the stream handed over {seq} before the watermark ({watermark}) passed it"))
        })?;
        self.ledger_mut(no).stream_next = seq.next();
        Ok(())
    }

    /// The application calls `shutdown()`.
    pub fn shutdown_called(&mut self, no: InstanceNo) {
        self.ledger_mut(no).shutdown_called = true;
    }

    /// `shutdown()` returned; `watermark` is the log's watermark then.
    pub fn shutdown_returned(
        &mut self,
        at: Time,
        no: InstanceNo,
        result: &Result<(), AppendError>,
        watermark: CommitSeq,
        store: &S3Model,
    ) -> Checked {
        self.ledger_mut(no).ended = true;
        if result.is_err() {
            return Ok(());
        }
        self.ledger_mut(no).clean_shutdown = true;
        let l = self.ledger(no).clone();
        let last_before = l.commits.iter().rposition(|c| c.before_shutdown).map(|i| l.first.plus(i as u64 + 1));
        let Some(needed) = last_before else { return Ok(()) };
        let v = violation(DriverInvariant::Drain, at, no);
        self.check(watermark >= needed, || {
            v(format!("shutdown returned Ok with the watermark at {watermark}, but commits appended before it end at {needed}"))
        })?;
        for seq in (l.first.0..needed.0).map(CommitSeq) {
            let bytes = l.get(seq).map(|c| c.bytes.clone()).unwrap_or_default();
            self.in_store(at, no, seq, &bytes, store, "appended before a clean shutdown")?;
        }
        Ok(())
    }

    /// Node `label` was killed: the futures of its instance that had not
    /// ended were dropped with the application.
    pub fn killed(&mut self, label: &str) {
        for l in self.ledgers.iter_mut().filter(|l| l.label == label && !l.ended) {
            l.killed = true;
        }
    }

    /// At the end: `read_back` is the log as the library's reader read it
    /// from the store after everything stopped, `store` the bucket now.
    pub fn finish(&mut self, at: Time, read_back: &[(CommitSeq, Bytes)], store: &S3Model) -> Checked {
        self.view.extend(store, &mut self.cache);
        let broken = self.view.blocked().map(str::to_owned);
        let v = |detail| DriverViolation { invariant: DriverInvariant::ValidLog, at, instance: None, detail };
        self.check(broken.is_none(), || {
            v(format!("the bucket breaks the valid-log rule: {}", broken.unwrap_or_default()))
        })?;
        for (i, (seq, bytes)) in read_back.iter().enumerate() {
            let same = *seq == CommitSeq(i as u64) && self.view.commit(*seq) == Some(bytes);
            self.check(same, || v(format!("the reader's commit #{i} ({seq}) differs from the valid-log rule's")))?;
        }
        let (read_end, view_end) = (CommitSeq(read_back.len() as u64), self.view.end_seq());
        self.check(read_end == view_end, || {
            v(format!("the reader read up to {read_end}, the valid-log rule up to {view_end}"))
        })?;
        for no in (0..self.ledgers.len() as u32).map(InstanceNo) {
            self.finish_instance(at, no, read_back)?;
        }
        Ok(())
    }

    fn finish_instance(&mut self, at: Time, no: InstanceNo, read_back: &[(CommitSeq, Bytes)]) -> Checked {
        let l = self.ledger(no).clone();
        for (i, c) in l.commits.iter().enumerate() {
            let seq = l.first.plus(i as u64);
            let acked = c.fate == Fate::Acked || seq < l.watermark;
            if acked {
                let found = usize::try_from(seq.0).ok().and_then(|k| read_back.get(k)).map(|(_, b)| b);
                let v = violation(DriverInvariant::AckedInLog, at, no);
                self.check(found == Some(&c.bytes), || {
                    v(format!(
                        "{seq} was acknowledged, but the log read back {}",
                        if found.is_some() { "holds other bytes for it" } else { "ends before it" }
                    ))
                })?;
            }
            let v = violation(DriverInvariant::Liveness, at, no);
            self.check(l.killed || c.fate != Fate::Pending, || {
                v(format!("the future of {seq} never resolved ({} was not killed)", l.label))
            })?;
            let v = violation(DriverInvariant::Drain, at, no);
            let drained = !l.clean_shutdown || !c.before_shutdown || acked;
            self.check(drained, || v(format!("{seq} was appended before a clean shutdown but not acknowledged")))?;
        }
        Ok(())
    }
}

fn violation(invariant: DriverInvariant, at: Time, no: InstanceNo) -> impl Fn(String) -> DriverViolation {
    move |detail| DriverViolation { invariant, at, instance: Some(no), detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_objects::put_batch;
    use s3wal::{Failure, Position};

    const T: Time = Time::ZERO;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn seq(n: u64) -> CommitSeq {
        CommitSeq(n)
    }

    fn invariant(r: Checked) -> DriverInvariant {
        r.expect_err("must be a violation").invariant
    }

    /// One instance from 0 with commits a, b, c appended.
    fn three() -> (DriverChecker, InstanceNo) {
        let mut c = DriverChecker::new(budget_cost(10, 100));
        let (no, ok) = c.opened(T, "w1", seq(0), seq(0));
        ok.expect("first instance");
        for (i, s) in ["a", "b", "c"].into_iter().enumerate() {
            c.appended(T, no, seq(i as u64), b(s), seq(0), true).expect("appended");
        }
        (c, no)
    }

    #[test]
    fn acks_of_commits_in_the_store_pass_and_the_end_agrees() {
        let (mut c, no) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![b("a"), b("b")]);
        c.watermark(T, no, seq(2), &store).expect("in the store");
        c.resolved(T, no, seq(0), Ok(seq(0)), seq(2), &store).expect("durable");
        put_batch(&mut store, 1, 2, vec![b("c")]);
        c.watermark(T, no, seq(3), &store).expect("in the store");
        c.resolved(T, no, seq(2), Ok(seq(2)), seq(3), &store).expect("durable");
        c.resolved(T, no, seq(1), Ok(seq(1)), seq(3), &store).expect("durable");
        c.shutdown_called(no);
        c.shutdown_returned(T, no, &Ok(()), seq(3), &store).expect("drained");
        let read = vec![(seq(0), b("a")), (seq(1), b("b")), (seq(2), b("c"))];
        c.finish(T, &read, &store).expect("all good");
        assert_eq!(c.totals(), (3, 3, 0));
        assert!(c.violation().is_none());
    }

    #[test]
    fn an_ack_before_the_store_holds_it_breaks_invariant_1() {
        let (mut c, no) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 1, 1, vec![b("b")]);
        let v = c.resolved(T, no, seq(1), Ok(seq(1)), seq(2), &store).expect_err("p0 is missing");
        assert_eq!(v.invariant, DriverInvariant::AckDurable);
        assert!(v.detail.contains("p0 is missing"), "{v}");
        assert_eq!(c.violation(), Some(&v));
    }

    #[test]
    fn an_ack_ahead_of_the_watermark_breaks_invariant_1() {
        let (mut c, no) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![b("a")]);
        assert_eq!(invariant(c.resolved(T, no, seq(0), Ok(seq(0)), seq(0), &store)), DriverInvariant::AckDurable);
    }

    #[test]
    fn a_watermark_over_missing_or_other_bytes_breaks_invariant_1() {
        let (mut c, no) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![b("a"), b("X")]);
        assert_eq!(invariant(c.watermark(T, no, seq(2), &store)), DriverInvariant::AckDurable);
    }

    #[test]
    fn the_budget_bounds_bytes_not_yet_durable() {
        let budget = budget_cost(1, 5);
        let mut c = DriverChecker::new(budget);
        let (no, _) = c.opened(T, "w1", seq(10), seq(0));
        c.appended(T, no, seq(10), b("abc"), seq(0), true).expect("3 bytes");
        assert_eq!(invariant(c.appended(T, no, seq(11), b("abc"), seq(0), true)), DriverInvariant::Budget);
        let mut c = DriverChecker::new(budget);
        let (no, _) = c.opened(T, "w1", seq(10), seq(0));
        c.appended(T, no, seq(10), b("abc"), seq(0), true).expect("3 bytes");
        c.appended(T, no, seq(11), b("abc"), seq(11), true).expect("the first is durable");
    }

    #[test]
    fn the_budget_counts_each_commits_bookkeeping() {
        let mut c = DriverChecker::new(budget_cost(2, 0));
        let (no, _) = c.opened(T, "w1", seq(0), seq(0));
        c.appended(T, no, seq(0), b(""), seq(0), true).expect("one empty commit");
        c.appended(T, no, seq(1), b(""), seq(0), true).expect("two");
        assert_eq!(invariant(c.appended(T, no, seq(2), b(""), seq(0), true)), DriverInvariant::Budget);
    }

    #[test]
    fn numbers_must_follow_on_and_pass_every_ack() {
        let (mut c, no) = three();
        assert_eq!(invariant(c.appended(T, no, seq(4), b("e"), seq(0), true)), DriverInvariant::Numbering);
        let (mut c, no) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![b("a"), b("b")]);
        c.watermark(T, no, seq(2), &store).expect("durable");
        let acked_before = c.acked_end();
        let (_, reopened) = c.opened(T, "w2", seq(1), acked_before);
        assert_eq!(invariant(reopened), DriverInvariant::Numbering);
        // A writer paused after its recovery returns stale: acks that came
        // while it was opening are not its to know (its writes are fenced).
        let (_, stale) = c.opened(T, "w3", seq(1), seq(0));
        stale.expect("commits acked while it opened may be missed");
    }

    #[test]
    fn closed_or_shutting_down_is_only_for_appends_after_shutdown() {
        let (mut c, no) = three();
        let store = S3Model::new();
        let failed = AppendError::Failed(Failure::Rejected { position: Position(0), reason: "no".into() });
        c.resolved(T, no, seq(0), Err(failed), seq(0), &store).expect("a reason");
        let closed = c.resolved(T, no, seq(1), Err(AppendError::Closed), seq(0), &store);
        assert_eq!(invariant(closed), DriverInvariant::Liveness);
        let (mut c, no) = three();
        c.shutdown_called(no);
        c.appended(T, no, seq(3), b("d"), seq(0), true).expect("after shutdown");
        c.resolved(T, no, seq(3), Err(AppendError::ShuttingDown), seq(0), &store).expect("after shutdown");
    }

    #[test]
    fn a_future_that_never_resolves_is_a_hang_unless_killed() {
        let store = S3Model::new();
        let (mut c, _) = three();
        assert_eq!(invariant(c.finish(T, &[], &store)), DriverInvariant::Liveness);
        let (mut c, _) = three();
        c.killed("w1");
        c.finish(T, &[], &store).expect("killed with its node");
    }

    #[test]
    fn a_clean_shutdown_with_commits_left_breaks_drain() {
        let (mut c, no) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![b("a")]);
        c.watermark(T, no, seq(1), &store).expect("durable");
        c.shutdown_called(no);
        assert_eq!(invariant(c.shutdown_returned(T, no, &Ok(()), seq(1), &store)), DriverInvariant::Drain);
    }

    #[test]
    fn the_stream_is_in_order_under_the_watermark() {
        let (mut c, no) = three();
        c.streamed(T, no, seq(0), &b("a"), seq(1)).expect("in order");
        assert_eq!(invariant(c.streamed(T, no, seq(2), &b("c"), seq(3))), DriverInvariant::Stream);
        let (mut c, no) = three();
        assert_eq!(invariant(c.streamed(T, no, seq(0), &b("a"), seq(0))), DriverInvariant::Stream);
    }

    #[test]
    fn a_reader_that_disagrees_with_the_rule_is_caught() {
        let (mut c, _) = three();
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![b("a")]);
        let read = vec![(seq(0), b("X"))];
        assert_eq!(invariant(c.finish(T, &read, &store)), DriverInvariant::ValidLog);
    }
}
