//! The checker: judges what the instances reported against what the
//! application handed over and what the store holds. It knows nothing of
//! faults, latency or the event queue.
//!
//! It keeps an oracle of every commit's bytes by sequence number, a ledger
//! per instance of what it accepted, acknowledged and reported, and reads
//! the store's durable prefix. The numbers are those of DESIGN.md's list.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use s3wal::{CommitRange, CommitSeq, Failure, Refused, Time};

use crate::instance::InstanceId;
use crate::log_prefix::LogPrefix;
use crate::s3_model::S3Model;
use crate::trace::Range;

/// The property a violation breaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// 1: acks are in order, contiguous, never repeated, and only for commits
    /// whose batch and every earlier position are in the store.
    AckOrder,
    /// 2: every acknowledged commit is in the log read back from the store.
    AckedInLog,
    /// 5: claimed positions and outstanding requests stay within the window.
    Window,
    /// 7: every commit is acknowledged, or the instance failed and reported
    /// every commit it leaves unacknowledged. Nothing hangs.
    Liveness,
    /// The driving contract of `s3wal::protocol` (what an action may say
    /// given the ones before it).
    Contract,
}

impl Invariant {
    /// The invariant's number in DESIGN.md, if it has one.
    pub fn number(self) -> Option<u8> {
        match self {
            Invariant::AckOrder => Some(1),
            Invariant::AckedInLog => Some(2),
            Invariant::Window => Some(5),
            Invariant::Liveness => Some(7),
            Invariant::Contract => None,
        }
    }

    fn summary(self) -> &'static str {
        match self {
            Invariant::AckOrder => "acks in order, only for commits durable in the store",
            Invariant::AckedInLog => "every acked commit is in the log",
            Invariant::Window => "window and outstanding requests bounded",
            Invariant::Liveness => "every commit acked or reported failed",
            Invariant::Contract => "driving contract",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "{n} ({})", self.summary()),
            None => f.write_str(self.summary()),
        }
    }
}

/// A broken invariant: which, when, and what exactly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant {invariant} violated at {at} by {instance}: {detail}")]
pub struct Violation {
    /// The invariant.
    pub invariant: Invariant,
    /// When (virtual time).
    pub at: Time,
    /// The instance concerned.
    pub instance: InstanceId,
    /// What was seen.
    pub detail: String,
}

/// An instance's window, as the machine and its driver see it after a step.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WindowState {
    /// Positions claimed beyond the durable prefix (`Persister::window_len`).
    pub window_len: usize,
    /// Requests the machine counts as outstanding.
    pub machine_outstanding: usize,
    /// Requests the driver sent for it and has not answered.
    pub driver_outstanding: usize,
}

/// What one instance reported, in order.
#[derive(Clone, Debug)]
struct Ledger {
    /// Whether it reported `Ready` (recovery is done).
    ready: bool,
    /// Its first commit (from `Ready`).
    first: CommitSeq,
    /// Commits handed over to it end here.
    handed_end: CommitSeq,
    /// Commits it reported `Accepted` end here.
    accepted_end: CommitSeq,
    /// Commits it reported `Durable` end here.
    acked_end: CommitSeq,
    /// What it reported when it failed.
    failed: Option<(CommitRange, Failure)>,
    shut_down: bool,
}

/// The checker of one run.
#[derive(Debug)]
pub struct Checker {
    max_in_flight: usize,
    /// Every commit handed over, by sequence number.
    oracle: BTreeMap<CommitSeq, Bytes>,
    ledgers: BTreeMap<InstanceId, Ledger>,
    /// The store's durable prefix as last read (objects never change).
    prefix: LogPrefix,
    checks: u64,
}

type Checked = Result<(), Violation>;

impl Checker {
    /// A checker for instances configured with this `max_in_flight_requests`.
    pub fn new(max_in_flight: usize) -> Checker {
        Checker {
            max_in_flight,
            oracle: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            prefix: LogPrefix::new(),
            checks: 0,
        }
    }

    /// Invariant checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// Commits acknowledged, by any instance.
    pub fn acked(&self) -> u64 {
        self.ledgers.values().map(|l| l.acked_end.0 - l.first.0).sum()
    }

    /// Commits handed over, to any instance.
    pub fn handed_over(&self) -> u64 {
        self.oracle.len() as u64
    }

    fn check(&mut self, ok: bool, violation: impl FnOnce() -> Violation) -> Checked {
        self.checks += 1;
        if ok {
            Ok(())
        } else {
            Err(violation())
        }
    }

    fn ledger(&mut self, at: Time, instance: InstanceId) -> Result<&mut Ledger, Violation> {
        self.ledgers.get_mut(&instance).ok_or_else(|| Violation {
            invariant: Invariant::Contract,
            at,
            instance,
            detail: "an instance that was never started reported something".into(),
        })
    }

    /// The ledger of an instance that must have reported `Ready`.
    fn ready_ledger(&mut self, at: Time, instance: InstanceId) -> Result<Ledger, Violation> {
        let l = self.ledger(at, instance)?.clone();
        let v = violation(Invariant::Contract, at, instance);
        self.check(l.ready, || v("took or reported commits before Ready".into()))?;
        Ok(l)
    }

    /// A new instance starts (recovering, or resuming straight into `Ready`).
    pub fn on_start(&mut self, at: Time, instance: InstanceId) -> Checked {
        let fresh = !self.ledgers.contains_key(&instance);
        let v = violation(Invariant::Contract, at, instance);
        self.check(fresh, || v("started twice".into()))?;
        let zero = CommitSeq(0);
        let ledger = Ledger {
            ready: false,
            first: zero,
            handed_end: zero,
            accepted_end: zero,
            acked_end: zero,
            failed: None,
            shut_down: false,
        };
        self.ledgers.insert(instance, ledger);
        Ok(())
    }

    /// `Action::Ready`: the instance numbers its commits from `next_commit`.
    pub fn on_ready(&mut self, at: Time, instance: InstanceId, next_commit: CommitSeq) -> Checked {
        let l = self.ledger(at, instance)?.clone();
        let v = violation(Invariant::Contract, at, instance);
        let first = !l.ready && l.failed.is_none() && !l.shut_down;
        self.check(first, || v("Ready twice, or after the instance ended".into()))?;
        let l = self.ledger(at, instance)?;
        l.ready = true;
        (l.first, l.handed_end, l.accepted_end, l.acked_end) = (next_commit, next_commit, next_commit, next_commit);
        Ok(())
    }

    /// The instance took commit `seq` (its `next_commit_seq` before the input).
    pub fn on_commit(&mut self, at: Time, instance: InstanceId, seq: CommitSeq, payload: Bytes) -> Checked {
        let expected = self.ready_ledger(at, instance)?.handed_end;
        let v = violation(Invariant::Contract, at, instance);
        self.check(seq == expected, || v(format!("commit numbered {seq}, expected {expected}")))?;
        self.ledger(at, instance)?.handed_end = seq.next();
        self.oracle.insert(seq, payload);
        Ok(())
    }

    /// The instance refused a commit: only an instance that ended may.
    pub fn on_refused(&mut self, at: Time, instance: InstanceId, refused: &Refused) -> Checked {
        let l = self.ledger(at, instance)?.clone();
        let v = violation(Invariant::Contract, at, instance);
        let ended = l.failed.is_some() || l.shut_down;
        self.check(ended, || v(format!("a running instance refused a commit: {refused}")))
    }

    /// `Action::Accepted`.
    pub fn on_accepted(&mut self, at: Time, instance: InstanceId, commits: CommitRange) -> Checked {
        let l = self.ready_ledger(at, instance)?;
        let ok = commits.start == l.accepted_end && !commits.is_empty() && commits.end <= l.handed_end;
        let v = violation(Invariant::Contract, at, instance);
        self.check(ok, || {
            v(format!(
                "accepted {} but accepted so far ends at {} and commits handed over end at {}",
                Range(commits),
                l.accepted_end,
                l.handed_end
            ))
        })?;
        self.ledger(at, instance)?.accepted_end = commits.end;
        Ok(())
    }

    /// `Action::Durable`: invariant 1, against the store as it is right now.
    pub fn on_durable(&mut self, at: Time, instance: InstanceId, commits: CommitRange, store: &S3Model) -> Checked {
        let l = self.ready_ledger(at, instance)?;
        let v = violation(Invariant::AckOrder, at, instance);
        let failed = l.failed.is_some() || l.shut_down;
        self.check(!failed, || v(format!("ack {} after the instance ended", Range(commits))))?;
        let in_order = commits.start == l.acked_end && !commits.is_empty();
        self.check(in_order, || v(format!("ack {} but acks so far end at {}", Range(commits), l.acked_end)))?;
        let accepted = commits.end <= l.accepted_end;
        self.check(accepted, || {
            v(format!("ack {} past the accepted commits (end {})", Range(commits), l.accepted_end))
        })?;
        self.read_store(store);
        let durable_end = self.prefix.end_seq();
        let in_store = commits.end <= durable_end;
        let (next, blocked) = (self.prefix.next_position(), self.prefix.blocked().map(str::to_owned));
        self.check(in_store, || {
            v(format!(
                "ack {} but the store's durable prefix ends at {durable_end} ({next} {})",
                Range(commits),
                blocked.map_or("is missing".into(), |b| format!("is unusable: {b}"))
            ))
        })?;
        self.ledger(at, instance)?.acked_end = commits.end;
        Ok(())
    }

    fn read_store(&mut self, store: &S3Model) {
        let oracle = &self.oracle;
        self.prefix.extend(store, |seq, commit| same_bytes(oracle, seq, commit));
    }

    /// `Action::Failed`: the instance must list every commit it leaves
    /// unacknowledged (invariant 7).
    pub fn on_failed(&mut self, at: Time, instance: InstanceId, commits: CommitRange, failure: &Failure) -> Checked {
        let l = self.ledger(at, instance)?.clone();
        let v = violation(Invariant::Liveness, at, instance);
        let first = l.failed.is_none() && !l.shut_down;
        self.check(first, || v(format!("failed again ({failure})")))?;
        // Before Ready no commit was taken, so none can be left behind.
        let all =
            if l.ready { commits.start == l.acked_end && commits.end == l.handed_end } else { commits.is_empty() };
        self.check(all, || {
            v(format!(
                "failed ({failure}) listing {} but {} are unacknowledged",
                Range(commits),
                Range(CommitRange::new(l.acked_end, l.handed_end))
            ))
        })?;
        self.ledger(at, instance)?.failed = Some((commits, failure.clone()));
        Ok(())
    }

    /// `Action::ShutdownComplete`: unless failed, every commit is acked.
    pub fn on_shutdown_complete(&mut self, at: Time, instance: InstanceId) -> Checked {
        let l = self.ledger(at, instance)?.clone();
        let v = violation(Invariant::Liveness, at, instance);
        let drained = l.failed.is_some() || l.acked_end == l.handed_end;
        self.check(drained, || {
            v(format!("shutdown complete with {} unacknowledged", Range(CommitRange::new(l.acked_end, l.handed_end))))
        })?;
        self.check(!l.shut_down, || v("shutdown completed twice".into()))?;
        self.ledger(at, instance)?.shut_down = true;
        Ok(())
    }

    /// After every step of a live instance: invariant 5.
    pub fn after_step(&mut self, at: Time, instance: InstanceId, window: WindowState) -> Checked {
        let limit = self.max_in_flight;
        let v = violation(Invariant::Window, at, instance);
        let ended = self.ledgers.get(&instance).is_some_and(|l| l.failed.is_some() || l.shut_down);
        self.check(window.window_len <= limit, || {
            v(format!("{} positions claimed beyond the durable prefix, limit {limit}", window.window_len))
        })?;
        self.check(window.machine_outstanding <= limit, || {
            v(format!("{} requests outstanding (machine's count), limit {limit}", window.machine_outstanding))
        })?;
        // An instance that ended no longer cares about its requests in flight.
        self.check(ended || window.driver_outstanding <= limit, || {
            v(format!("{} requests outstanding (driver's count), limit {limit}", window.driver_outstanding))
        })
    }

    /// At the end of the run: invariants 2 and 7.
    pub fn finish(&mut self, at: Time, store: &S3Model) -> Checked {
        self.check_acked_in_log(at, store)?;
        let ledgers: Vec<(InstanceId, Ledger)> = self.ledgers.iter().map(|(id, l)| (*id, l.clone())).collect();
        for (instance, l) in ledgers {
            let v = violation(Invariant::Liveness, at, instance);
            let ended = l.failed.is_some() || l.shut_down;
            self.check(ended, || {
                v(format!(
                    "the run ended with the instance neither shut down nor failed; acked up to {}, handed over up to {}",
                    l.acked_end, l.handed_end
                ))
            })?;
        }
        Ok(())
    }

    /// Invariant 2: the log read afresh from the store holds every acked
    /// commit, byte for byte, in order.
    fn check_acked_in_log(&mut self, at: Time, store: &S3Model) -> Checked {
        let oracle = &self.oracle;
        let mut log = LogPrefix::new();
        log.extend(store, |seq, commit| same_bytes(oracle, seq, commit));
        let acked: Vec<(InstanceId, CommitSeq)> = self.ledgers.iter().map(|(id, l)| (*id, l.acked_end)).collect();
        for (instance, acked_end) in acked {
            let v = violation(Invariant::AckedInLog, at, instance);
            let (end, next, blocked) = (log.end_seq(), log.next_position(), log.blocked().map(str::to_owned));
            self.check(acked_end <= end, || {
                v(format!(
                    "acked up to {acked_end} but the log read back ends at {end} ({next} {})",
                    blocked.map_or("is missing".into(), |b| format!("is unusable: {b}"))
                ))
            })?;
        }
        Ok(())
    }
}

fn violation(invariant: Invariant, at: Time, instance: InstanceId) -> impl Fn(String) -> Violation {
    move |detail| Violation { invariant, at, instance, detail }
}

/// Whether the store's `commit` at `seq` is the one handed over.
fn same_bytes(oracle: &BTreeMap<CommitSeq, Bytes>, seq: CommitSeq, commit: &Bytes) -> Result<(), String> {
    match oracle.get(&seq) {
        Some(expected) if expected == commit => Ok(()),
        Some(expected) => {
            Err(format!("{seq} holds {} bytes that differ from the {} handed over", commit.len(), expected.len()))
        }
        None => Err(format!("{seq} was never handed over")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_objects::put_batch;
    use s3wal::Position;

    const L1: InstanceId = InstanceId(1);

    fn range(a: u64, b: u64) -> CommitRange {
        CommitRange::new(CommitSeq(a), CommitSeq(b))
    }

    fn payload(seq: u64) -> Bytes {
        Bytes::from(format!("commit {seq}"))
    }

    /// A checker that was handed commits 0..n, all accepted.
    fn checker(n: u64) -> Checker {
        let mut c = Checker::new(4);
        c.on_start(Time::ZERO, L1).expect("start");
        c.on_ready(Time::ZERO, L1, CommitSeq(0)).expect("ready");
        for seq in 0..n {
            c.on_commit(Time::ZERO, L1, CommitSeq(seq), payload(seq)).expect("commit");
        }
        if n > 0 {
            c.on_accepted(Time::ZERO, L1, range(0, n)).expect("accepted");
        }
        c
    }

    fn write(store: &mut S3Model, position: u64, commits: CommitRange, corrupt: bool) {
        let mut payloads: Vec<Bytes> = (commits.start.0..commits.end.0).map(payload).collect();
        if corrupt {
            payloads[0] = Bytes::from_static(b"something else");
        }
        put_batch(store, position, commits.start.0, payloads);
    }

    fn invariant(r: Checked) -> Invariant {
        r.expect_err("must be a violation").invariant
    }

    #[test]
    fn acks_of_commits_in_the_store_pass() {
        let mut c = checker(6);
        let mut store = S3Model::new();
        write(&mut store, 0, range(0, 2), false);
        write(&mut store, 1, range(2, 6), false);
        c.on_durable(Time::ZERO, L1, range(0, 2), &store).expect("p0 is in the store");
        c.on_durable(Time::ZERO, L1, range(2, 6), &store).expect("p1 is in the store");
        c.on_shutdown_complete(Time::ZERO, L1).expect("all acked");
        c.finish(Time::ZERO, &store).expect("all good");
        assert!(c.checks() > 5);
        assert_eq!(c.acked(), 6);
    }

    #[test]
    fn an_ack_past_a_gap_in_the_store_breaks_invariant_1() {
        let mut c = checker(6);
        let mut store = S3Model::new();
        write(&mut store, 1, range(2, 6), false);
        let v = c.on_durable(Time::ZERO, L1, range(0, 2), &store).expect_err("p0 is missing");
        assert_eq!(v.invariant, Invariant::AckOrder);
        assert!(v.detail.contains("p0 is missing"), "{v}");
    }

    #[test]
    fn acks_out_of_order_repeated_or_empty_break_invariant_1() {
        let mut store = S3Model::new();
        write(&mut store, 0, range(0, 2), false);
        write(&mut store, 1, range(2, 6), false);
        let mut c = checker(6);
        assert_eq!(invariant(c.on_durable(Time::ZERO, L1, range(2, 6), &store)), Invariant::AckOrder);
        c.on_durable(Time::ZERO, L1, range(0, 2), &store).expect("in order");
        assert_eq!(invariant(c.on_durable(Time::ZERO, L1, range(0, 2), &store)), Invariant::AckOrder);
        assert_eq!(invariant(c.on_durable(Time::ZERO, L1, range(2, 2), &store)), Invariant::AckOrder);
        assert_eq!(invariant(c.on_durable(Time::ZERO, L1, range(2, 7), &store)), Invariant::AckOrder);
    }

    #[test]
    fn an_ack_of_bytes_that_differ_breaks_invariant_1() {
        let mut c = checker(2);
        let mut store = S3Model::new();
        write(&mut store, 0, range(0, 2), true);
        let v = c.on_durable(Time::ZERO, L1, range(0, 2), &store).expect_err("bytes differ");
        assert!(v.detail.contains("differ"), "{v}");
    }

    #[test]
    fn an_instance_may_fail_while_recovering_but_takes_nothing_before_ready() {
        let mut c = Checker::new(4);
        c.on_start(Time::ZERO, L1).expect("start");
        let v = c.on_commit(Time::ZERO, L1, CommitSeq(0), payload(0)).expect_err("not ready");
        assert_eq!(v.invariant, Invariant::Contract);
        let failure = Failure::Rejected { position: Position(0), reason: "no".into() };
        c.on_failed(Time::ZERO, L1, range(0, 0), &failure).expect("nothing to list");
        assert_eq!(invariant(c.on_ready(Time::ZERO, L1, CommitSeq(0))), Invariant::Contract, "ready after failing");
        c.finish(Time::ZERO, &S3Model::new()).expect("failed cleanly");
    }

    #[test]
    fn the_window_bound_is_invariant_5() {
        let mut c = checker(0);
        let ok = WindowState { window_len: 4, machine_outstanding: 4, driver_outstanding: 4 };
        c.after_step(Time::ZERO, L1, ok).expect("at the limit");
        let over = WindowState { window_len: 5, ..ok };
        assert_eq!(invariant(c.after_step(Time::ZERO, L1, over)), Invariant::Window);
        let driver = WindowState { driver_outstanding: 5, ..ok };
        assert_eq!(invariant(c.after_step(Time::ZERO, L1, driver)), Invariant::Window);
    }

    #[test]
    fn liveness_wants_every_commit_acked_or_reported() {
        let store = S3Model::new();
        let mut c = checker(3);
        assert_eq!(invariant(c.finish(Time::ZERO, &store)), Invariant::Liveness, "hung");
        let failure = Failure::Rejected { position: Position(0), reason: "no".into() };
        assert_eq!(
            invariant(c.on_failed(Time::ZERO, L1, range(1, 3), &failure)),
            Invariant::Liveness,
            "commit 0 left out"
        );
        c.on_failed(Time::ZERO, L1, range(0, 3), &failure).expect("all listed");
        c.finish(Time::ZERO, &store).expect("failed cleanly");
        let mut d = checker(1);
        assert_eq!(invariant(d.on_shutdown_complete(Time::ZERO, L1)), Invariant::Liveness);
    }

    #[test]
    fn an_acked_commit_missing_at_the_end_breaks_invariant_2() {
        let mut c = checker(2);
        let mut store = S3Model::new();
        write(&mut store, 0, range(0, 2), false);
        c.on_durable(Time::ZERO, L1, range(0, 2), &store).expect("durable");
        c.on_shutdown_complete(Time::ZERO, L1).expect("done");
        let empty = S3Model::new();
        assert_eq!(invariant(c.finish(Time::ZERO, &empty)), Invariant::AckedInLog);
    }
}
