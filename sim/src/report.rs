//! What one run reports, and how many runs add up.

use std::collections::BTreeMap;
use std::time::Duration;

use s3wal::{CommitRange, Epoch, Failure, LeaderId, Time};

use crate::instance::InstanceId;

use crate::checker::Violation;
use crate::faults::FaultCounts;

/// How a run ended, as far as correctness goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every invariant held.
    Passed,
    /// An invariant broke.
    Violated {
        /// Which and how.
        violation: Violation,
        /// The trace line it broke on (1-based; 0 without a trace).
        trace_line: usize,
    },
    /// Something panicked (a `debug_assert!` in the machine, or the world).
    Panicked {
        /// The panic message.
        message: String,
        /// The last trace line before the panic (0 without a trace).
        trace_line: usize,
    },
}

impl Outcome {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed)
    }

    /// The trace line the failure happened at, if the run failed.
    pub fn trace_line(&self) -> Option<usize> {
        match self {
            Outcome::Passed => None,
            Outcome::Violated { trace_line, .. } | Outcome::Panicked { trace_line, .. } => Some(*trace_line),
        }
    }

    /// One line about the failure, if the run failed.
    pub fn describe(&self) -> Option<String> {
        match self {
            Outcome::Passed => None,
            Outcome::Violated { violation, .. } => Some(violation.to_string()),
            Outcome::Panicked { message, .. } => Some(format!("panic: {message}")),
        }
    }
}

/// What the store saw, whatever the faults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Conditional PUTs that reached the store.
    pub puts: u64,
    /// Of those, answered 412.
    pub already_exists: u64,
    /// Of those, answered 409 because another PUT of the key was processing.
    pub conflicts: u64,
    /// HEADs that reached the store.
    pub heads: u64,
    /// LISTs that reached the store.
    pub lists: u64,
    /// Requests whose round trip outlasted the client's timeout without a fault.
    pub slow_timeouts: u64,
    /// Objects in the bucket at the end.
    pub objects: u64,
}

impl StoreCounts {
    /// Adds another run's counts.
    pub fn merge(&mut self, o: &StoreCounts) {
        self.puts += o.puts;
        self.already_exists += o.already_exists;
        self.conflicts += o.conflicts;
        self.heads += o.heads;
        self.lists += o.lists;
        self.slow_timeouts += o.slow_timeouts;
        self.objects += o.objects;
    }
}

/// A short name for why an instance failed: its variant's name
/// (`RetriesExhausted`, `Fenced`, …), so that new variants need no change here.
pub fn failure_kind(failure: &Failure) -> String {
    let debug = format!("{failure:?}");
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
}

/// How an instance's life ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// It was still running when the run ended (only in a failed run).
    Running,
    /// It shut down cleanly.
    ShutDown,
    /// It reported `Failed`.
    Failed(Failure),
    /// The world dropped it.
    Crashed,
}

/// One instance of a run: who it was, what it acked, how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceReport {
    /// Its name in the trace.
    pub id: InstanceId,
    /// Its leader id.
    pub leader: LeaderId,
    /// Its epoch (from `Ready`).
    pub epoch: Epoch,
    /// The commits it acknowledged.
    pub acked: CommitRange,
    /// How it ended.
    pub end: End,
    /// Whether it was paused while another took over.
    pub zombie: bool,
    /// Slow PUTs it hedged (`Config::hedge_after`).
    pub hedges: u64,
}

impl InstanceReport {
    /// The failure's kind (`Fenced`, …), if it failed.
    pub fn failure_kind(&self) -> Option<String> {
        match &self.end {
            End::Failed(f) => Some(failure_kind(f)),
            _ => None,
        }
    }
}

/// Everything one run reports.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Every instance, in the order they started.
    pub instances: Vec<InstanceReport>,
    /// The seed.
    pub seed: u64,
    /// Virtual time at the end.
    pub sim_time: Time,
    /// Events the world processed.
    pub events: u64,
    /// Faults injected, per class.
    pub faults: FaultCounts,
    /// What the store saw.
    pub store: StoreCounts,
    /// Invariant checks made.
    pub checks: u64,
    /// Commits the workload issued.
    pub commits_issued: u64,
    /// Commits an instance took (numbered).
    pub commits_handed_over: u64,
    /// Commits acknowledged durable.
    pub commits_acked: u64,
    /// Commits an instance refused.
    pub commits_refused: u64,
    /// Times an instance told producers to wait (backpressure).
    pub producer_waits: u64,
    /// Why a leader failed, if one did (being deposed aside): `(kind, message)`.
    pub instance_failure: Option<(String, String)>,
    /// Whether that failure happened after faults stopped.
    pub failed_after_faults_stopped: bool,
    /// Whether the run passed.
    pub outcome: Outcome,
    /// The run's knobs, one line each.
    pub knobs: Vec<String>,
    /// The trace, when asked for.
    pub trace: Option<Vec<String>>,
}

/// Many runs added up (a sweep).
#[derive(Clone, Debug, Default)]
pub struct SweepSummary {
    /// Runs.
    pub runs: u64,
    /// Runs that failed, with their seed and the failure.
    pub failures: Vec<(u64, String)>,
    /// Virtual time, all runs together.
    pub sim_time: Duration,
    /// Real time spent in runs, all workers together.
    pub busy_time: Duration,
    /// Events, all runs together.
    pub events: u64,
    /// Faults per class.
    pub faults: FaultCounts,
    /// What the store saw.
    pub store: StoreCounts,
    /// Invariant checks.
    pub checks: u64,
    /// Commits issued, acked, refused.
    pub commits_issued: u64,
    /// Commits acknowledged durable.
    pub commits_acked: u64,
    /// Commits refused.
    pub commits_refused: u64,
    /// Backpressure episodes, and runs that had any.
    pub producer_waits: (u64, u64),
    /// Instances that failed, by kind (a correct outcome under faults).
    pub instance_failures: BTreeMap<String, u64>,
    /// Of those, how many failed after faults had stopped.
    pub failed_after_faults_stopped: u64,
}

impl SweepSummary {
    /// Adds one run that took `real` to simulate.
    pub fn add(&mut self, r: &RunReport, real: Duration) {
        self.runs += 1;
        if let Some(what) = r.outcome.describe() {
            self.failures.push((r.seed, what));
        }
        self.sim_time += Duration::from_nanos(r.sim_time.as_nanos());
        self.busy_time += real;
        self.events += r.events;
        self.faults.merge(&r.faults);
        self.store.merge(&r.store);
        self.checks += r.checks;
        self.commits_issued += r.commits_issued;
        self.commits_acked += r.commits_acked;
        self.commits_refused += r.commits_refused;
        self.producer_waits.0 += r.producer_waits;
        self.producer_waits.1 += u64::from(r.producer_waits > 0);
        if let Some((kind, _)) = &r.instance_failure {
            *self.instance_failures.entry(kind.clone()).or_default() += 1;
        }
        self.failed_after_faults_stopped += u64::from(r.failed_after_faults_stopped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3wal::{Fault, Position};

    #[test]
    fn failure_kinds_are_variant_names() {
        let f = Failure::RetriesExhausted { position: Position(3), attempts: 2, last: Fault::Throttled };
        assert_eq!(failure_kind(&f), "RetriesExhausted");
    }
}
