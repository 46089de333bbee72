//! Deliberate bugs of the driver, for the madsim simulator's own tests: each
//! must be caught by the default madsim sweep (`sim/tests/madsim_driver.rs`).
//! They can only be planted with the `planted-bugs` cargo feature, through
//! [`super::Log::open_planted`]; without it every check here is `false` and
//! costs nothing.

use std::collections::{BTreeMap, VecDeque};

use super::Waiter;
use crate::format::{ObjectKind, ObjectTag, TAG_METADATA_KEY};
use crate::machine::{Persister, PlantedBug};
use crate::protocol::{Input, PutOutcome, PutRequest};
use crate::store::metadata_value;
use crate::types::{CommitRange, RequestId};

/// A bug to plant in a [`super::Log`] with [`super::Log::open_planted`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DriverBug {
    /// Moves the durable watermark past a batch's commits when its PUT
    /// returns 201, rather than when the machine reports them durable.
    AckOnPutReturn,
    /// Gives the byte budget back only for the first commit of each durable
    /// range: every ack wave of more than one commit keeps bytes forever.
    LeakBudgetOnAckWaves,
    /// Forgets to resolve the waiting appends when the log fails.
    AbandonWaitersOnFailure,
    /// One of the state machine's planted bugs.
    Machine(PlantedBug),
}

impl DriverBug {
    /// Every bug of the driver itself.
    pub const DRIVER: [DriverBug; 3] =
        [DriverBug::AckOnPutReturn, DriverBug::LeakBudgetOnAckWaves, DriverBug::AbandonWaitersOnFailure];
}

/// The bug planted in one driver, and what it needs to misbehave.
#[derive(Debug, Default)]
pub(super) struct Planted {
    bug: Option<DriverBug>,
    /// For [`DriverBug::AckOnPutReturn`]: the commits of each batch PUT.
    put_commits: BTreeMap<RequestId, CommitRange>,
}

impl Planted {
    pub(super) fn new(bug: Option<DriverBug>) -> Planted {
        Planted { bug, put_commits: BTreeMap::new() }
    }

    /// Whether `bug` is planted; always false without the feature.
    #[inline]
    pub(super) fn has(&self, bug: DriverBug) -> bool {
        cfg!(feature = "planted-bugs") && self.bug == Some(bug)
    }

    /// Plants a machine bug in the machine.
    pub(super) fn prepare(&self, machine: &mut Persister) {
        #[cfg(feature = "planted-bugs")]
        if let Some(DriverBug::Machine(bug)) = self.bug {
            machine.plant(bug);
        }
        let _ = machine;
    }

    /// A batch PUT goes out: remember its commits.
    pub(super) fn on_put(&mut self, put: &PutRequest) {
        if !self.has(DriverBug::AckOnPutReturn) {
            return;
        }
        let tag = metadata_value(&put.metadata, TAG_METADATA_KEY).and_then(|v| ObjectTag::parse(v).ok());
        if let Some(h) = tag.map(|t| t.header).filter(|h| h.kind == ObjectKind::Batch) {
            self.put_commits.insert(put.request, CommitRange::new(h.first_seq, h.first_seq.plus(u64::from(h.count))));
        }
    }

    /// The commits whose batch PUT just returned 201, to acknowledge at once.
    pub(super) fn acked_early(&mut self, input: &Input) -> Option<CommitRange> {
        match input {
            Input::PutFinished { request, outcome: PutOutcome::Created } if self.has(DriverBug::AckOnPutReturn) => {
                self.put_commits.remove(request)
            }
            _ => None,
        }
    }
}

/// Forgets the waiters of `commits` (the caller acknowledges them now,
/// wherever the machine is); returns their permits.
pub(super) fn ack_early(waiters: &mut VecDeque<Waiter>, commits: CommitRange) -> u64 {
    let (early, keep): (VecDeque<Waiter>, VecDeque<Waiter>) =
        std::mem::take(waiters).into_iter().partition(|w| commits.start <= w.seq && w.seq < commits.end);
    *waiters = keep;
    early.iter().map(|w| u64::from(w.permits)).sum()
}
