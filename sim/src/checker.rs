//! The checker: judges what the instances reported against what the
//! application handed over and what the store holds. It knows nothing of
//! faults, latency or the event queue.
//!
//! It keeps a ledger per instance of the commits handed to it (its oracle,
//! byte for byte), what it accepted, acknowledged and reported, and reads
//! the store's valid log with the library's own rule (`log_prefix`). The
//! numbers are those of DESIGN.md's list.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use s3wal::machine::RecoveryCost;
use s3wal::{CommitRange, CommitSeq, Epoch, Failure, Refused, Time};

use crate::instance::InstanceId;
use crate::log_prefix::{LogPrefix, ObjectCache};
use crate::reader_read::read_all;
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
    /// 3: the valid log only grows: what a reader saw it sees forever after.
    LogGrows,
    /// 4: recovery makes one successful LIST and a bounded number of other requests.
    RecoveryCost,
    /// 5: claimed positions and outstanding requests stay within the window.
    Window,
    /// 6: two live instances never both ack past a fence.
    OneWriter,
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
            Invariant::LogGrows => Some(3),
            Invariant::RecoveryCost => Some(4),
            Invariant::Window => Some(5),
            Invariant::OneWriter => Some(6),
            Invariant::Liveness => Some(7),
            Invariant::Contract => None,
        }
    }

    fn summary(self) -> &'static str {
        match self {
            Invariant::AckOrder => "acks in order, only for commits durable in the store",
            Invariant::AckedInLog => "every acked commit is in the log",
            Invariant::LogGrows => "the valid log only grows",
            Invariant::RecoveryCost => "recovery uses one LIST and bounded requests",
            Invariant::OneWriter => "no two instances ack past a fence",
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

/// What a recovering instance heard before it was `Ready`: the answers that
/// justify a retry. The driver reports them; the checker bounds recovery's
/// requests with them (invariant 4).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryHeard {
    /// LIST answers that were failures.
    pub failed_lists: u64,
    /// HEAD answers that were failures.
    pub failed_heads: u64,
    /// PUT answers that were failures.
    pub failed_puts: u64,
    /// PUT answers that were 412 (each may need a HEAD to resolve).
    pub put_412s: u64,
}

/// The most HEADs (read-back) and fence PUTs a recovery makes, retries aside.
pub const RECOVERY_REQUEST_BOUND: u64 = 2000;

/// What one instance reported, in order.
#[derive(Clone, Debug)]
struct Ledger {
    /// Whether it reported `Ready` (recovery is done).
    ready: bool,
    /// Its epoch (from `Ready`).
    epoch: Epoch,
    /// Its first commit (from `Ready`).
    first: CommitSeq,
    /// The commits handed over to it, from `first`: its oracle.
    handed: Vec<Bytes>,
    /// Commits it reported `Accepted` end here.
    accepted_end: CommitSeq,
    /// Commits it reported `Durable` end here.
    acked_end: CommitSeq,
    /// What it reported when it failed.
    failed: Option<(CommitRange, Failure)>,
    shut_down: bool,
    /// Dropped by the world: it reports nothing more.
    crashed: bool,
}

impl Ledger {
    fn handed_end(&self) -> CommitSeq {
        self.first.plus(self.handed.len() as u64)
    }

    fn handed(&self, seq: CommitSeq) -> Option<&Bytes> {
        seq.0.checked_sub(self.first.0).and_then(|i| self.handed.get(i as usize))
    }

    fn ended(&self) -> bool {
        self.failed.is_some() || self.shut_down || self.crashed
    }

    fn has_acked(&self) -> bool {
        self.acked_end > self.first
    }
}

/// The checker of one run.
#[derive(Debug)]
pub struct Checker {
    max_in_flight: usize,
    ledgers: BTreeMap<InstanceId, Ledger>,
    /// Decoded store objects (they never change).
    cache: ObjectCache,
    /// The valid log as last read.
    prefix: LogPrefix,
    /// Acks since the last fresh read of the log (invariant 3).
    acks_since_checkpoint: u32,
    /// A `Cell`, so checks can run while ledgers are borrowed.
    checks: Cell<u64>,
}

/// A fresh read of the log is compared with the last one after this many acks.
const ACKS_PER_CHECKPOINT: u32 = 32;

type Checked = Result<(), Violation>;

impl Checker {
    /// A checker for instances configured with this `max_in_flight_requests`.
    pub fn new(max_in_flight: usize) -> Checker {
        Checker {
            max_in_flight,
            ledgers: BTreeMap::new(),
            cache: ObjectCache::default(),
            prefix: LogPrefix::new(),
            acks_since_checkpoint: 0,
            checks: Cell::new(0),
        }
    }

    /// Invariant checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks.get()
    }

    /// Commits acknowledged, by any instance.
    pub fn acked(&self) -> u64 {
        self.ledgers.values().map(|l| l.acked_end.0 - l.first.0).sum()
    }

    /// Commits handed over, to any instance.
    pub fn handed_over(&self) -> u64 {
        self.ledgers.values().map(|l| l.handed.len() as u64).sum()
    }

    /// An instance's epoch and its acknowledged commits `[first, acked_end)`.
    pub fn acked_range(&self, instance: InstanceId) -> Option<(Epoch, CommitRange)> {
        self.ledgers.get(&instance).map(|l| (l.epoch, CommitRange::new(l.first, l.acked_end)))
    }

    fn check(&self, ok: bool, violation: impl FnOnce() -> Violation) -> Checked {
        self.checks.set(self.checks.get() + 1);
        if ok {
            Ok(())
        } else {
            Err(violation())
        }
    }

    fn ledger(&self, at: Time, instance: InstanceId) -> Result<&Ledger, Violation> {
        self.ledgers.get(&instance).ok_or_else(|| never_started(at, instance))
    }

    fn ledger_mut(&mut self, at: Time, instance: InstanceId) -> Result<&mut Ledger, Violation> {
        self.ledgers.get_mut(&instance).ok_or_else(|| never_started(at, instance))
    }

    /// The ledger of an instance that must have reported `Ready`.
    fn ready_ledger(&self, at: Time, instance: InstanceId) -> Result<&Ledger, Violation> {
        let l = self.ledger(at, instance)?;
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
            epoch: Epoch::default(),
            first: zero,
            handed: Vec::new(),
            accepted_end: zero,
            acked_end: zero,
            failed: None,
            shut_down: false,
            crashed: false,
        };
        self.ledgers.insert(instance, ledger);
        Ok(())
    }

    /// `Action::Ready`: the instance numbers its commits from `next_commit`.
    /// After a recovery, its cost is judged (invariant 4) against what it heard.
    pub fn on_ready(
        &mut self,
        at: Time,
        instance: InstanceId,
        next_commit: CommitSeq,
        epoch: Epoch,
        recovery: Option<(RecoveryCost, RecoveryHeard)>,
    ) -> Checked {
        let l = self.ledger(at, instance)?;
        let v = violation(Invariant::Contract, at, instance);
        let first = !l.ready && !l.ended();
        self.check(first, || v("Ready twice, or after the instance ended".into()))?;
        if let Some((cost, heard)) = recovery {
            let v = violation(Invariant::RecoveryCost, at, instance);
            let lists_ok = cost.lists == heard.failed_lists + 1;
            self.check(lists_ok, || {
                v(format!(
                    "{} LISTs, {} of them failed: not exactly one successful LIST",
                    cost.lists, heard.failed_lists
                ))
            })?;
            let heads = RECOVERY_REQUEST_BOUND + heard.failed_heads + heard.put_412s;
            self.check(cost.heads <= heads, || {
                v(format!(
                    "{} HEADs, bound {heads} ({RECOVERY_REQUEST_BOUND} + {} retries + {} owner checks)",
                    cost.heads, heard.failed_heads, heard.put_412s
                ))
            })?;
            let puts = RECOVERY_REQUEST_BOUND + heard.failed_puts;
            self.check(cost.puts <= puts, || {
                v(format!(
                    "{} fence PUTs, bound {puts} ({RECOVERY_REQUEST_BOUND} + {} retries)",
                    cost.puts, heard.failed_puts
                ))
            })?;
        }
        let l = self.ledger_mut(at, instance)?;
        l.ready = true;
        l.epoch = epoch;
        (l.first, l.accepted_end, l.acked_end) = (next_commit, next_commit, next_commit);
        self.checkpoint(at, instance)
    }

    /// The instance took commit `seq` (its `next_commit_seq` before the input).
    pub fn on_commit(&mut self, at: Time, instance: InstanceId, seq: CommitSeq, payload: Bytes) -> Checked {
        let expected = self.ready_ledger(at, instance)?.handed_end();
        let v = violation(Invariant::Contract, at, instance);
        self.check(seq == expected, || v(format!("commit numbered {seq}, expected {expected}")))?;
        self.ledger_mut(at, instance)?.handed.push(payload);
        Ok(())
    }

    /// The instance refused a commit: only an instance that ended may.
    pub fn on_refused(&mut self, at: Time, instance: InstanceId, refused: &Refused) -> Checked {
        let l = self.ledger(at, instance)?;
        let v = violation(Invariant::Contract, at, instance);
        self.check(l.ended(), || v(format!("a running instance refused a commit: {refused}")))
    }

    /// `Action::Accepted`.
    pub fn on_accepted(&mut self, at: Time, instance: InstanceId, commits: CommitRange) -> Checked {
        let l = self.ready_ledger(at, instance)?;
        let handed_end = l.handed_end();
        let ok = commits.start == l.accepted_end && !commits.is_empty() && commits.end <= handed_end;
        let v = violation(Invariant::Contract, at, instance);
        self.check(ok, || {
            v(format!(
                "accepted {} but accepted so far ends at {} and commits handed over end at {handed_end}",
                Range(commits),
                l.accepted_end,
            ))
        })?;
        self.ledger_mut(at, instance)?.accepted_end = commits.end;
        Ok(())
    }

    /// `Action::Durable`: invariant 1 against the store's valid log as it is
    /// right now, byte for byte; invariant 6 against every other instance.
    pub fn on_durable(&mut self, at: Time, instance: InstanceId, commits: CommitRange, store: &S3Model) -> Checked {
        self.prefix.extend(store, &mut self.cache);
        let l = self.ready_ledger(at, instance)?;
        let v = violation(Invariant::AckOrder, at, instance);
        self.check(!l.ended(), || v(format!("ack {} after the instance ended", Range(commits))))?;
        let in_order = commits.start == l.acked_end && !commits.is_empty();
        self.check(in_order, || v(format!("ack {} but acks so far end at {}", Range(commits), l.acked_end)))?;
        let accepted = commits.end <= l.accepted_end;
        self.check(accepted, || {
            v(format!("ack {} past the accepted commits (end {})", Range(commits), l.accepted_end))
        })?;
        let durable_end = self.prefix.end_seq();
        let ends = self.prefix.end_description();
        self.check(commits.end <= durable_end, || {
            v(format!("ack {} but the store's valid log ends at {durable_end} ({ends})", Range(commits)))
        })?;
        let differs = (commits.start.0..commits.end.0).map(CommitSeq).find(|s| self.prefix.commit(*s) != l.handed(*s));
        self.check(differs.is_none(), || {
            v(format!(
                "ack {} but the valid log's {} is not the commit handed over",
                Range(commits),
                differs.unwrap_or_default()
            ))
        })?;
        self.check_one_writer(at, instance, l.epoch, CommitRange::new(l.first, commits.end))?;
        self.ledger_mut(at, instance)?.acked_end = commits.end;
        self.acks_since_checkpoint += 1;
        if self.acks_since_checkpoint >= ACKS_PER_CHECKPOINT {
            self.checkpoint_store(at, instance, store)?;
        }
        Ok(())
    }

    /// Invariant 6: an instance acking `acked` (its commits from its first)
    /// with `epoch` and every other instance that acked: the older one's acks
    /// must stay below the newer one's first commit.
    fn check_one_writer(&self, at: Time, instance: InstanceId, epoch: Epoch, acked: CommitRange) -> Checked {
        let others = self.ledgers.iter().filter(|(id, l)| **id != instance && l.ready && l.has_acked());
        let v = violation(Invariant::OneWriter, at, instance);
        for (&other, o) in others {
            let (older_end, newer_first, newer) = match o.epoch.cmp(&epoch) {
                std::cmp::Ordering::Greater => (acked.end, o.first, other),
                std::cmp::Ordering::Less => (o.acked_end, acked.start, instance),
                std::cmp::Ordering::Equal => {
                    self.check(false, || v(format!("{other} acked with the same epoch {epoch}")))?;
                    continue;
                }
            };
            self.check(older_end <= newer_first, || {
                v(format!(
                    "{instance} ({epoch}) acks up to {} and {other} ({}) up to {}: the older acked up to {older_end}, past the newer {newer}'s first commit {newer_first}",
                    acked.end, o.epoch, o.acked_end
                ))
            })?;
        }
        Ok(())
    }

    /// Invariant 3 at a checkpoint the world chooses (an instance started,
    /// crashed, paused, resumed or ended): a fresh read of the store's valid
    /// log extends every earlier read.
    pub fn checkpoint_store(&mut self, at: Time, instance: InstanceId, store: &S3Model) -> Checked {
        self.acks_since_checkpoint = 0;
        let fresh = LogPrefix::read(store, &mut self.cache);
        let grows = self.prefix.is_prefix_of(&fresh);
        let v = violation(Invariant::LogGrows, at, instance);
        self.check(grows.is_ok(), || v(grows.err().unwrap_or_default()))?;
        self.prefix = fresh;
        Ok(())
    }

    /// Marks a lifecycle point at which the next store checkpoint is due.
    fn checkpoint(&mut self, _at: Time, _instance: InstanceId) -> Checked {
        self.acks_since_checkpoint = ACKS_PER_CHECKPOINT;
        Ok(())
    }

    /// The instance was dropped: it reports nothing more, and what it left
    /// unacknowledged is lost (allowed).
    pub fn on_crash(&mut self, at: Time, instance: InstanceId, store: &S3Model) -> Checked {
        self.ledger_mut(at, instance)?.crashed = true;
        self.checkpoint_store(at, instance, store)
    }

    /// `Action::Failed`: the instance must list every commit it leaves
    /// unacknowledged (invariant 7).
    pub fn on_failed(&mut self, at: Time, instance: InstanceId, commits: CommitRange, failure: &Failure) -> Checked {
        let l = self.ledger(at, instance)?;
        let v = violation(Invariant::Liveness, at, instance);
        self.check(!l.ended(), || v(format!("failed again ({failure})")))?;
        // Before Ready no commit was taken, so none can be left behind.
        let handed_end = l.handed_end();
        let all = if l.ready { commits.start == l.acked_end && commits.end == handed_end } else { commits.is_empty() };
        self.check(all, || {
            v(format!(
                "failed ({failure}) listing {} but {} are unacknowledged",
                Range(commits),
                Range(CommitRange::new(l.acked_end, handed_end))
            ))
        })?;
        self.ledger_mut(at, instance)?.failed = Some((commits, failure.clone()));
        self.checkpoint(at, instance)
    }

    /// `Action::ShutdownComplete`: unless failed, every commit is acked.
    pub fn on_shutdown_complete(&mut self, at: Time, instance: InstanceId) -> Checked {
        let l = self.ledger(at, instance)?;
        let v = violation(Invariant::Liveness, at, instance);
        let handed_end = l.handed_end();
        let drained = l.failed.is_some() || l.acked_end == handed_end;
        self.check(drained, || {
            v(format!("shutdown complete with {} unacknowledged", Range(CommitRange::new(l.acked_end, handed_end))))
        })?;
        self.check(!l.shut_down, || v("shutdown completed twice".into()))?;
        self.ledger_mut(at, instance)?.shut_down = true;
        self.checkpoint(at, instance)
    }

    /// After every step of a live instance: invariant 5.
    pub fn after_step(&mut self, at: Time, instance: InstanceId, window: WindowState) -> Checked {
        let limit = self.max_in_flight;
        let v = violation(Invariant::Window, at, instance);
        let ended = self.ledgers.get(&instance).is_some_and(Ledger::ended);
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

    /// Whether a store checkpoint is due (the world calls
    /// [`Checker::checkpoint_store`] then).
    pub fn checkpoint_due(&self) -> bool {
        self.acks_since_checkpoint >= ACKS_PER_CHECKPOINT
    }

    /// At the end of the run: invariants 2, 3 and 7.
    pub fn finish(&mut self, at: Time, store: &S3Model) -> Checked {
        let last = self.ledgers.keys().next_back().copied().unwrap_or(InstanceId(0));
        self.checkpoint_store(at, last, store)?;
        self.check_acked_in_log(at)?;
        self.check_reader_agrees(at, store)?;
        for (&instance, l) in &self.ledgers {
            let v = violation(Invariant::Liveness, at, instance);
            self.check(l.ended(), || {
                v(format!(
                    "the run ended with the instance neither shut down nor failed; acked up to {}, handed over up to {}",
                    l.acked_end,
                    l.handed_end()
                ))
            })?;
        }
        Ok(())
    }

    /// Invariant 2 through the library's [`Reader`](s3wal::reader::Reader):
    /// it reads exactly the commits the valid-log rule read (the oracle was
    /// compared with those above).
    fn check_reader_agrees(&self, at: Time, store: &S3Model) -> Checked {
        let v = violation(Invariant::AckedInLog, at, InstanceId(0));
        let log = match (read_all(store), self.prefix.blocked()) {
            (Ok(log), _) => log,
            // A broken bucket: the reader refuses it; the checks above say why.
            (Err(_), Some(_)) => return Ok(()),
            (Err(e), None) => {
                return self.check(false, || v(format!("the library's reader failed on a valid log: {e}")))
            }
        };
        let expected = self.prefix.commits();
        let differs = first_difference(&log, expected);
        self.check(differs.is_none(), || {
            v(format!(
                "the library's reader read {} commits, the valid-log rule {}; they first differ at #{}",
                log.len(),
                expected.len(),
                differs.unwrap_or_default()
            ))
        })
    }

    /// Invariant 2: the log read afresh from the store with the library's
    /// rule holds every acked commit of every instance, byte for byte, in
    /// order, and nothing that was never handed over.
    fn check_acked_in_log(&self, at: Time) -> Checked {
        for (&instance, l) in &self.ledgers {
            let v = violation(Invariant::AckedInLog, at, instance);
            let (end, ends) = (self.prefix.end_seq(), self.prefix.end_description());
            self.check(l.acked_end <= end, || {
                v(format!("acked up to {} but the log read back ends at {end} ({ends})", l.acked_end))
            })?;
            let differs = (l.first.0..l.acked_end.0).map(CommitSeq).find(|s| self.prefix.commit(*s) != l.handed(*s));
            self.check(differs.is_none(), || {
                v(format!("acked {} differs from the log read back", differs.unwrap_or_default()))
            })?;
        }
        let stray = self.prefix.commits().iter().enumerate().position(|(i, c)| {
            let seq = CommitSeq(i as u64);
            !self.ledgers.values().any(|l| l.handed(seq) == Some(c))
        });
        let v = violation(Invariant::AckedInLog, at, InstanceId(0));
        self.check(stray.is_none(), || {
            v(format!("the log's commit #{} was never handed over at that number", stray.unwrap_or_default()))
        })
    }
}

/// Where a read `(seq, bytes)` list first differs from commits `0, 1, …`.
fn first_difference(read: &[(CommitSeq, Bytes)], rule: &[Bytes]) -> Option<usize> {
    (0..read.len().max(rule.len()))
        .find(|&i| read.get(i).map(|(seq, bytes)| (*seq, bytes)) != rule.get(i).map(|b| (CommitSeq(i as u64), b)))
}

fn never_started(at: Time, instance: InstanceId) -> Violation {
    let detail = "an instance that was never started reported something".into();
    Violation { invariant: Invariant::Contract, at, instance, detail }
}

fn violation(invariant: Invariant, at: Time, instance: InstanceId) -> impl Fn(String) -> Violation {
    move |detail| Violation { invariant, at, instance, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_objects::put_batch;

    #[test]
    fn the_reader_reads_what_the_rule_reads_and_a_difference_is_found() {
        let mut store = S3Model::new();
        put_batch(&mut store, 0, 0, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        put_batch(&mut store, 1, 2, vec![Bytes::from_static(b"c")]);
        let read = read_all(&store).expect("a valid log");
        let rule = LogPrefix::read(&store, &mut ObjectCache::default());
        assert_eq!(first_difference(&read, rule.commits()), None);
        assert_eq!(read.len(), 3);
        assert_eq!(first_difference(&read[..2], rule.commits()), Some(2), "one commit short");
        let mut changed = read.clone();
        changed[1].1 = Bytes::from_static(b"B");
        assert_eq!(first_difference(&changed, rule.commits()), Some(1), "other bytes");
        changed[1] = (CommitSeq(7), Bytes::from_static(b"b"));
        assert_eq!(first_difference(&changed, rule.commits()), Some(1), "another number");
    }
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
        c.on_ready(Time::ZERO, L1, CommitSeq(0), Epoch::default(), None).expect("ready");
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
        assert!(v.detail.contains("not the commit handed over"), "{v}");
    }

    #[test]
    fn an_instance_may_fail_while_recovering_but_takes_nothing_before_ready() {
        let mut c = Checker::new(4);
        c.on_start(Time::ZERO, L1).expect("start");
        let v = c.on_commit(Time::ZERO, L1, CommitSeq(0), payload(0)).expect_err("not ready");
        assert_eq!(v.invariant, Invariant::Contract);
        let failure = Failure::Rejected { position: Position(0), reason: "no".into() };
        c.on_failed(Time::ZERO, L1, range(0, 0), &failure).expect("nothing to list");
        assert_eq!(
            invariant(c.on_ready(Time::ZERO, L1, CommitSeq(0), Epoch::default(), None)),
            Invariant::Contract,
            "ready after failing"
        );
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
        // A log that loses what a reader saw breaks invariant 3 first.
        let empty = S3Model::new();
        assert_eq!(invariant(c.finish(Time::ZERO, &empty)), Invariant::LogGrows);
        // A fresh checker that never read the log sees the acked commit missing.
        let mut fresh = checker(2);
        fresh.ledgers.get_mut(&L1).expect("L1").acked_end = CommitSeq(2);
        fresh.ledgers.get_mut(&L1).expect("L1").shut_down = true;
        assert_eq!(invariant(fresh.finish(Time::ZERO, &empty)), Invariant::AckedInLog);
    }

    #[test]
    fn an_older_epoch_acking_past_a_newer_ones_first_commit_breaks_invariant_6() {
        let mut store = S3Model::new();
        write(&mut store, 0, range(0, 4), false);
        let mut c = Checker::new(4);
        let l2 = InstanceId(2);
        let newer = Epoch { generation: 1, nonce: 1 };
        c.on_start(Time::ZERO, L1).expect("start");
        c.on_ready(Time::ZERO, L1, CommitSeq(0), Epoch::default(), None).expect("ready");
        c.on_start(Time::ZERO, l2).expect("start");
        c.on_ready(Time::ZERO, l2, CommitSeq(2), newer, None).expect("ready");
        for seq in 0..4 {
            c.on_commit(Time::ZERO, L1, CommitSeq(seq), payload(seq)).expect("commit");
        }
        for seq in 2..4 {
            c.on_commit(Time::ZERO, l2, CommitSeq(seq), payload(seq)).expect("commit");
        }
        c.on_accepted(Time::ZERO, L1, range(0, 4)).expect("accepted");
        c.on_accepted(Time::ZERO, l2, range(2, 4)).expect("accepted");
        c.on_durable(Time::ZERO, l2, range(2, 4), &store).expect("the newer acks");
        c.on_durable(Time::ZERO, L1, range(0, 2), &store).expect("the older acks below the newer's first");
        assert_eq!(invariant(c.on_durable(Time::ZERO, L1, range(2, 4), &store)), Invariant::OneWriter);
    }

    #[test]
    fn a_recovery_with_two_good_lists_breaks_invariant_4() {
        let mut c = Checker::new(4);
        c.on_start(Time::ZERO, L1).expect("start");
        let cost = RecoveryCost { lists: 2, heads: 0, puts: 1000 };
        let heard = RecoveryHeard::default();
        let r = c.on_ready(Time::ZERO, L1, CommitSeq(0), Epoch::default(), Some((cost, heard)));
        assert_eq!(invariant(r), Invariant::RecoveryCost);
        let mut d = Checker::new(4);
        d.on_start(Time::ZERO, L1).expect("start");
        let cost = RecoveryCost { lists: 2, heads: 2001, puts: 2000 };
        let heard = RecoveryHeard { failed_lists: 1, failed_heads: 1, ..RecoveryHeard::default() };
        d.on_ready(Time::ZERO, L1, CommitSeq(0), Epoch::default(), Some((cost, heard))).expect("within bounds");
    }
}
