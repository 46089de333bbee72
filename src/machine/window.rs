//! The window: positions claimed beyond the durable prefix.
//!
//! A position stays in the window from the moment it is claimed until it and
//! every earlier position are confirmed — not merely until its request
//! returns. Bounding the window this way is what lets one LIST of 1000 keys
//! find the end of the log (see `docs/protocol.md`). Each position has one
//! request outstanding, or two while a slow PUT is hedged; the machine counts
//! hedges against `max_in_flight_requests` along with the positions.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::format::{Checkpoint, ObjectTag};
use std::time::Duration;

use crate::types::{CommitRange, CommitSeq, Position, RequestId, Time};
use crate::valid_log::{LogState, RuleError};

/// What the next request for a position will be.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Send the same PUT again.
    Put,
    /// Ask again who owns the position.
    Head,
}

/// Where one claimed position stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Our PUT is outstanding (and perhaps its hedge).
    Putting { request: RequestId, hedge: Hedge },
    /// The PUT answered 412; a HEAD asks whose object it is.
    CheckingOwner(RequestId),
    /// Backing off before the next request.
    Waiting { until: Time, then: Retry },
    /// The object is ours and written.
    Confirmed,
}

/// A second PUT of the same bytes to the same key, sent when the first is
/// slow. With ordered acks one slow PUT holds up every commit behind it, so
/// the latency tail of single requests becomes everyone's latency; a hedge
/// cuts it. Both PUTs carry `If-None-Match: *`, so at most one creates the
/// object and the other answers 412 (settled as ours by the owner check) or
/// 409.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hedge {
    /// Not sent: due once the PUT has been out for the hedge delay since `since`.
    Armed { since: Time },
    /// Out: whichever of the two answers `Created` first settles the position.
    Out(RequestId),
    /// Never for this attempt (fences, no hedge delay configured, or one of
    /// the two already answered without settling the position).
    Spent,
}

/// One claimed position and the object we are writing there.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub position: Position,
    /// The commits the object holds (empty for a fence).
    pub commits: CommitRange,
    /// Their payload bytes: with the commits' bookkeeping, what is released
    /// from the byte budget once they are durable.
    pub payload_bytes: u64,
    pub body: Bytes,
    /// The tag of the object at this position: ours, until a 412 shows
    /// that an older writer's object holds it.
    pub tag: ObjectTag,
    pub state: SlotState,
    /// Failed attempts so far.
    pub failures: u32,
}

impl Slot {
    /// Whether `request` is one of this position's outstanding requests.
    pub fn awaits(&self, request: RequestId) -> bool {
        match self.state {
            SlotState::Putting { request: r, hedge } => r == request || hedge == Hedge::Out(request),
            SlotState::CheckingOwner(r) => r == request,
            SlotState::Waiting { .. } | SlotState::Confirmed => false,
        }
    }

    /// The requests outstanding for this position.
    pub fn requests(&self) -> impl Iterator<Item = RequestId> {
        let (first, second) = match self.state {
            SlotState::Putting { request, hedge: Hedge::Out(hedge) } => (Some(request), Some(hedge)),
            SlotState::Putting { request, .. } | SlotState::CheckingOwner(request) => (Some(request), None),
            SlotState::Waiting { .. } | SlotState::Confirmed => (None, None),
        };
        first.into_iter().chain(second)
    }

    /// Requests outstanding for this position: two while hedged.
    pub fn requests_out(&self) -> usize {
        match self.state {
            SlotState::Putting { hedge: Hedge::Out(_), .. } => 2,
            SlotState::Putting { .. } | SlotState::CheckingOwner(_) => 1,
            SlotState::Waiting { .. } | SlotState::Confirmed => 0,
        }
    }

    /// When this position's PUT may be hedged, if it may.
    fn hedge_due(&self, delay: Duration) -> Option<Time> {
        match self.state {
            SlotState::Putting { hedge: Hedge::Armed { since }, .. } => Some(since + delay),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Window {
    /// Every position below this one is confirmed.
    durable: Position,
    /// The valid log's state at `durable`: what every new object's
    /// checkpoint says.
    state: LogState,
    /// `slots[i]` is position `durable + i`.
    slots: VecDeque<Slot>,
    /// Requests still out that no longer settle anything by themselves: the
    /// other PUT of a hedged pair answered first, `Created` or 412, or the
    /// position settled while a HEAD was out. Each is kept with its position
    /// and counts against the limit until it answers.
    orphans: Vec<(RequestId, Position)>,
    limit: usize,
}

/// What advancing the durable prefix released.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Released {
    /// The commits now durable, if any.
    pub commits: Option<CommitRange>,
    /// Their payload bytes (the budget also gives back their bookkeeping).
    pub payload_bytes: u64,
    /// The released objects' bytes, for their buffers to be reused.
    pub bodies: Vec<Bytes>,
}

impl Window {
    /// A window whose durable prefix ends at `start`.
    pub fn new(start: Checkpoint, limit: usize) -> Window {
        Window {
            durable: start.position,
            state: start.state,
            slots: VecDeque::with_capacity(limit),
            orphans: Vec::new(),
            limit,
        }
    }

    /// The durable prefix and the valid log's state at its end.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint { position: self.durable, state: self.state }
    }

    /// Whether another position may be claimed.
    pub fn has_room(&self) -> bool {
        self.slots.len() < self.limit
    }

    /// Planted bug: the window counts only outstanding requests.
    pub fn has_request_room(&self) -> bool {
        self.outstanding() < self.limit
    }

    /// Whether nothing is claimed beyond the durable prefix.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Claimed positions beyond the durable prefix.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The first position not known to be written.
    pub fn durable(&self) -> Position {
        self.durable
    }

    /// The position the next claim takes.
    pub fn next_position(&self) -> Position {
        self.durable.plus(self.slots.len() as u64)
    }

    /// Claims the next position for `slot`.
    pub fn claim(&mut self, slot: Slot) {
        debug_assert!(self.has_room(), "window limit {} exceeded", self.limit);
        debug_assert_eq!(slot.position, self.next_position());
        self.slots.push_back(slot);
    }

    /// The slot of a claimed position.
    pub fn slot(&mut self, position: Position) -> Option<&mut Slot> {
        let index = usize::try_from(position.0.checked_sub(self.durable.0)?).ok()?;
        self.slots.get_mut(index)
    }

    /// The slot waiting on `request`.
    pub fn by_request(&mut self, request: RequestId) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.awaits(request))
    }

    /// Requests outstanding.
    pub fn outstanding(&self) -> usize {
        self.slots.iter().map(Slot::requests_out).sum::<usize>() + self.orphans.len()
    }

    /// Requests beyond one per claimed position: hedges and orphans.
    pub fn extra_requests(&self) -> usize {
        let hedges = self.slots.iter().filter(|s| matches!(s.state, SlotState::Putting { hedge: Hedge::Out(_), .. }));
        hedges.count() + self.orphans.len()
    }

    /// Requests still out whose answer no longer matters.
    pub fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// `request`, for `position`, is still out but settles nothing by itself.
    pub fn orphan(&mut self, request: RequestId, position: Position) {
        self.orphans.push((request, position));
    }

    /// The position of `request` if it was an orphan (it has answered now:
    /// forgotten).
    pub fn take_orphan(&mut self, request: RequestId) -> Option<Position> {
        let found = self.orphans.iter().position(|&(r, _)| r == request)?;
        Some(self.orphans.swap_remove(found).1)
    }

    /// The earliest moment a PUT becomes slow enough to hedge.
    pub fn hedge_deadline(&self, delay: Duration) -> Option<Time> {
        self.slots.iter().filter_map(|s| s.hedge_due(delay)).min()
    }

    /// The positions whose PUT is due for a hedge at `now`, oldest first.
    pub fn due_hedges(&self, now: Time, delay: Duration) -> Vec<Position> {
        self.slots.iter().filter(|s| s.hedge_due(delay).is_some_and(|at| at <= now)).map(|s| s.position).collect()
    }

    /// The earliest moment a backed-off slot wants its next request.
    pub fn retry_deadline(&self) -> Option<Time> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                SlotState::Waiting { until, .. } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Slots whose backoff ended by `now`.
    pub fn due(&mut self, now: Time) -> impl Iterator<Item = &mut Slot> {
        self.slots.iter_mut().filter(move |s| matches!(s.state, SlotState::Waiting { until, .. } if until <= now))
    }

    /// Moves the durable prefix past every confirmed slot at its front,
    /// folding each one's object into the log's state. `expected` is the
    /// first commit not yet durable, checked against the slots so an ack
    /// can never skip or repeat.
    /// With `skip_one_hole` (a planted bug) a slot still in flight counts as
    /// confirmed when the next one is.
    pub fn advance(&mut self, expected: CommitSeq, skip_one_hole: bool) -> Result<Released, RuleError> {
        let confirmed = |s: &Slot| s.state == SlotState::Confirmed;
        if skip_one_hole && self.slots.get(1).is_some_and(confirmed) {
            if let Some(front) = self.slots.front_mut() {
                front.state = SlotState::Confirmed;
            }
        }
        let mut released = Released::default();
        let mut end = expected;
        while self.slots.front().is_some_and(confirmed) {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            self.state.apply(&slot.tag.header)?;
            debug_assert_eq!(slot.commits.start, end, "acks are contiguous");
            end = slot.commits.end;
            released.payload_bytes += slot.payload_bytes;
            released.bodies.push(slot.body);
            self.durable = self.durable.next();
        }
        if end != expected {
            released.commits = Some(CommitRange::new(expected, end));
        }
        Ok(released)
    }

    /// Forgets every claim (the machine failed).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.orphans.clear();
    }
}
