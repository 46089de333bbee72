//! One s3wal instance as the world keeps it: its state machine, its one
//! timer and the requests it has in flight.
//!
//! The world holds instances by [`InstanceId`]. A crash is dropping the
//! [`Instance`]: its requests still land in the store, and their answers find
//! nobody to deliver to.

use std::collections::BTreeSet;
use std::fmt;

use s3wal::{Persister, Time};

use crate::checker::RecoveryHeard;

/// Names an instance for the whole run (a restart gets a new id).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u32);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// Names one request the world carries to the store, across all instances.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Which arming of an instance's timer a scheduled firing belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerGeneration(pub u64);

/// The one timer the protocol gives each instance: `SetTimer` replaces it,
/// `CancelTimer` clears it. Firings scheduled for an older arming are stale.
#[derive(Clone, Debug, Default)]
pub struct TimerSlot {
    generation: u64,
    armed: Option<Time>,
}

impl TimerSlot {
    /// Arms the timer for `at`; the firing to schedule carries the result.
    pub fn set(&mut self, at: Time) -> TimerGeneration {
        self.generation += 1;
        self.armed = Some(at);
        TimerGeneration(self.generation)
    }

    /// Disarms the timer.
    pub fn cancel(&mut self) {
        self.generation += 1;
        self.armed = None;
    }

    /// Whether a firing of `generation` is the live one; if so the timer is
    /// now spent.
    pub fn fire(&mut self, generation: TimerGeneration) -> bool {
        let live = self.armed.is_some() && generation.0 == self.generation;
        if live {
            self.armed = None;
        }
        live
    }

    /// When the timer is due, if it is armed.
    pub fn armed(&self) -> Option<Time> {
        self.armed
    }
}

/// Where an instance is in its life, as its actions told the world.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Built, not yet `Ready` (recovering).
    Starting,
    /// Accepting commits.
    Ready,
    /// Reported `Failed`.
    Failed,
    /// Reported `ShutdownComplete`.
    ShutDown,
}

/// An instance the world drives.
#[derive(Debug)]
pub struct Instance {
    /// Its name.
    pub id: InstanceId,
    /// The state machine.
    pub machine: Persister,
    /// Its lifecycle.
    pub status: Status,
    /// Its timer.
    pub timer: TimerSlot,
    /// Requests sent for it whose answers it has not had yet.
    pub in_flight: BTreeSet<OpId>,
    /// Whether it told producers to wait.
    pub producers_must_wait: bool,
    /// Whether the application asked it to shut down.
    pub shutdown_requested: bool,
    /// Paused (a zombie) until then: its timer and answers are held back.
    pub paused_until: Option<Time>,
    /// Its timer fired while it was paused.
    pub timer_held: bool,
    /// What it heard while recovering (for invariant 4).
    pub heard: RecoveryHeard,
}

impl Instance {
    /// A fresh instance around `machine`.
    pub fn new(id: InstanceId, machine: Persister) -> Instance {
        Instance {
            id,
            machine,
            status: Status::Starting,
            timer: TimerSlot::default(),
            in_flight: BTreeSet::new(),
            producers_must_wait: false,
            shutdown_requested: false,
            paused_until: None,
            timer_held: false,
            heard: RecoveryHeard::default(),
        }
    }

    /// Whether a producer may hand it a commit now.
    pub fn takes_commits(&self) -> bool {
        self.status == Status::Ready && !self.producers_must_wait && !self.shutdown_requested && !self.is_paused()
    }

    /// Whether it is paused (a zombie).
    pub fn is_paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// Whether it reported an end (failed or shut down).
    pub fn has_ended(&self) -> bool {
        matches!(self.status, Status::Failed | Status::ShutDown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_arming_fires_and_only_once() {
        let mut t = TimerSlot::default();
        let old = t.set(Time::from_millis(5));
        let new = t.set(Time::from_millis(9));
        assert!(!t.fire(old));
        assert!(t.fire(new));
        assert!(!t.fire(new), "spent");
        let cancelled = t.set(Time::from_millis(1));
        t.cancel();
        assert!(!t.fire(cancelled));
        assert_eq!(t.armed(), None);
    }
}
