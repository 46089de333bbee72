//! The sans-IO persister: recovers the log, fences off older writers, turns
//! commits into batch objects, pipelines their PUTs, and acknowledges
//! commits strictly in order.
//!
//! Its contract with a driver is in [`crate::protocol`]. Inside, parts with
//! one job each: [`recovery`] finds where the log ends and in what state,
//! [`read_back`] fetches the tags recovery needs, the [`batcher`] decides
//! when a batch is complete, the [`window`] tracks claimed positions until
//! they join the durable prefix, and [`retry`] spaces out attempts.
//!
//! Phases: `Listing → ReadingBack → Fencing → Writing → (Draining → Done)`,
//! or `Failed` from anywhere. The safety argument is in `docs/protocol.md`.

mod batcher;
mod health;
mod planted;
mod read_back;
mod recovery;
mod retry;
mod round_trips;
mod window;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::config::{budget_cost, ValidConfig, MAX_WINDOW};
use crate::format::{self, BatchBuilder, Checkpoint, Header, ObjectKind, ObjectTag, TAG_METADATA_KEY};
use crate::protocol::{Action, Failure, Fault, HeadOutcome, Input, ListOutcome, PutOutcome, PutRequest, Refused};
use crate::types::{CommitRange, CommitSeq, Epoch, LeaderId, Position, RequestId, Time, BATCH_PREFIX};
use crate::valid_log::LogState;

pub use planted::PlantedBug;

use batcher::{Batcher, SealedBatch, SendNow};
use health::Health;
use read_back::ReadBack;
use round_trips::RoundTrips;
use window::{Hedge, Retry, Slot, SlotState, Window};

/// Who this instance is. Everything random the machine needs comes from here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Written into every object this instance puts.
    pub leader: LeaderId,
    /// Breaks ties between epochs of instances that recover from the same listing.
    pub nonce: u64,
    /// Seeds the retry jitter.
    pub jitter_seed: u64,
}

/// Where a writer starts when recovery is skipped ([`Persister::resume`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StartPoint {
    /// The first position the writer claims; every earlier one is written.
    pub position: Position,
    /// The sequence number of the first commit it accepts.
    pub next_commit: CommitSeq,
    /// The writer's epoch.
    pub epoch: Epoch,
}

/// Counters a driver can export as metrics. They only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// PUTs asked for (first attempts and retries).
    pub puts: u64,
    /// HEADs asked for.
    pub heads: u64,
    /// LISTs asked for.
    pub lists: u64,
    /// Health probes asked for.
    pub probes: u64,
    /// Batches sent (first attempts).
    pub batches: u64,
    /// Second PUTs sent because the first was slow (`Config::hedge_after`).
    pub hedges: u64,
    /// Retries, by cause.
    pub retries: RetryCounts,
    /// The requests recovery and fencing made, before the first commit.
    pub recovery: RecoveryCost,
}

/// Retries by what caused them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryCounts {
    /// 409 ConditionalRequestConflict.
    pub conflict: u64,
    /// 503 SlowDown.
    pub throttled: u64,
    /// 400 BadDigest.
    pub body_damaged: u64,
    /// Other 5xx.
    pub server_error: u64,
    /// No answer in time.
    pub timed_out: u64,
    /// Connection failed or reset.
    pub connection_failed: u64,
    /// A 412 whose object a HEAD then did not find.
    pub missing_after_412: u64,
}

impl RetryCounts {
    fn count(&mut self, fault: &Fault) {
        match fault {
            Fault::Conflict => self.conflict += 1,
            Fault::Throttled => self.throttled += 1,
            Fault::BodyDamaged => self.body_damaged += 1,
            Fault::ServerError { .. } => self.server_error += 1,
            Fault::TimedOut => self.timed_out += 1,
            Fault::ConnectionFailed => self.connection_failed += 1,
            Fault::Rejected { .. } => {}
        }
    }

    /// Each cause with its count, named by [`Fault::cause`] (the missing
    /// object after a 412 is no fault of the store's, so it is named here).
    pub fn by_cause(&self) -> [(&'static str, u64); 7] {
        [
            (Fault::Conflict.cause(), self.conflict),
            (Fault::Throttled.cause(), self.throttled),
            (Fault::BodyDamaged.cause(), self.body_damaged),
            (Fault::ServerError { status: 500 }.cause(), self.server_error),
            (Fault::TimedOut.cause(), self.timed_out),
            (Fault::ConnectionFailed.cause(), self.connection_failed),
            ("missing_after_412", self.missing_after_412),
        ]
    }

    /// Retries of every cause.
    pub fn total(&self) -> u64 {
        self.by_cause().iter().map(|(_, n)| n).sum()
    }
}

/// The requests recovery made. Bounded, whatever the log's length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryCost {
    /// LISTs (one, plus retries of a failed one).
    pub lists: u64,
    /// HEADs: tags below the gap, and owners of positions lost while fencing.
    pub heads: u64,
    /// Fence PUTs.
    pub puts: u64,
}

impl RecoveryCost {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.lists + self.heads + self.puts
    }
}

/// Fencing: claiming every free position an older writer could still reach.
#[derive(Copy, Clone, Debug)]
struct Fencing {
    /// The first gap: fencing starts here.
    gap: Position,
    /// The first position we won. Older writers can never get past it.
    first_win: Option<Position>,
    /// The largest window of any writer we know of: ours, and those named
    /// by the objects recovery read or lost positions hold.
    reach: u64,
}

impl Fencing {
    /// Positions up to here get a fence: an older writer's claims end one
    /// window past the first position we won (or, until then, the gap).
    fn end(&self) -> Position {
        self.first_win.unwrap_or(self.gap).plus(self.reach)
    }

    /// Widens the reach for a writer whose object we saw.
    fn saw(&mut self, tag: &ObjectTag) {
        self.reach = self.reach.max(u64::from(tag.header.window.min(MAX_WINDOW)));
    }
}

#[derive(Debug)]
enum Phase {
    Listing {
        request: Option<RequestId>,
        failures: u32,
        retry_at: Option<Time>,
    },
    /// Reading tags below the gap; `next` is the fencing that follows,
    /// learning writers' windows from what is read.
    ReadingBack {
        reads: ReadBack,
        next: Fencing,
    },
    Fencing(Fencing),
    Writing,
    Draining,
    Done,
    Failed(Failure),
}

/// How a position that answered 412 relates to us.
enum Owner {
    Ours,
    Older(ObjectTag),
    Newer(ObjectTag),
}

/// What accepted-but-not-durable commits cost ([`budget_cost`]) against the budget.
#[derive(Debug)]
struct Budget {
    limit: u64,
    used: u64,
    producers_waiting: bool,
    max_commit: usize,
}

impl Budget {
    /// Cost producers may still append before they wait.
    fn free(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// The state machine. See [`crate::protocol`] for how to drive it.
#[derive(Debug)]
pub struct Persister {
    config: ValidConfig,
    identity: Identity,
    epoch: Epoch,
    phase: Phase,
    batcher: Batcher,
    window: Window,
    /// The sequence number the next commit gets.
    next_seq: CommitSeq,
    /// Every commit below this one has been reported durable.
    durable_seq: CommitSeq,
    budget: Budget,
    actions: VecDeque<Action>,
    next_request: u64,
    timer: Option<Time>,
    retry_deadline: Option<Time>,
    health: Health,
    /// PUT round trips, for `Config::hedge_adaptive`.
    round_trips: RoundTrips,
    stats: Stats,
    bug: Option<PlantedBug>,
}

impl Persister {
    /// Plants a deliberate bug, to show that the simulator catches it.
    #[cfg(feature = "planted-bugs")]
    pub fn plant(&mut self, bug: PlantedBug) {
        self.bug = Some(bug);
    }

    /// Whether `bug` is planted; always false without the `planted-bugs` feature.
    #[inline]
    fn has_bug(&self, bug: PlantedBug) -> bool {
        cfg!(feature = "planted-bugs") && self.bug == Some(bug)
    }

    /// A writer that opens the log: one LIST, a bounded number of HEADs and
    /// fence PUTs, then [`Action::Ready`]. Commits are refused until then.
    pub fn recover(config: ValidConfig, identity: Identity) -> Persister {
        let mut p = Persister::new(config, identity, Phase::Listing { request: None, failures: 0, retry_at: None });
        p.issue_list();
        p
    }

    /// A writer that starts at `start` without recovering or fencing.
    ///
    /// Only for benchmarks and tests of the write path on a log no other
    /// instance touches: it skips everything that makes takeover safe.
    pub fn resume(config: ValidConfig, identity: Identity, start: StartPoint) -> Persister {
        let mut p = Persister::new(config, identity, Phase::Writing);
        p.epoch = start.epoch;
        let state = LogState { next_seq: start.next_commit, max_epoch: start.epoch };
        p.window = Window::new(Checkpoint { position: start.position, state }, p.window_limit());
        p.start_writing(start.next_commit);
        p.refresh_timer(Time::ZERO);
        p
    }

    fn new(config: ValidConfig, identity: Identity, phase: Phase) -> Persister {
        let health = Health::new(config.health_probe_interval);
        let window = Window::new(Checkpoint::default(), config.max_in_flight_requests as usize);
        let max_spares = usize::try_from(config.max_in_flight_requests).unwrap_or(usize::MAX);
        let batcher = Batcher::new(config.batch_size_threshold, config.batch_timeout, max_spares);
        let max_commit = config.max_commit_len();
        let budget = Budget { limit: config.byte_budget, used: 0, producers_waiting: false, max_commit };
        Persister {
            config,
            identity,
            epoch: Epoch::default(),
            phase,
            batcher,
            window,
            next_seq: CommitSeq(0),
            durable_seq: CommitSeq(0),
            budget,
            actions: VecDeque::new(),
            next_request: 0,
            timer: None,
            retry_deadline: None,
            health,
            round_trips: RoundTrips::default(),
            stats: Stats::default(),
            bug: None,
        }
    }

    fn window_limit(&self) -> usize {
        self.config.max_in_flight_requests as usize
    }

    /// The sequence number the next [`Input::CommitArrived`] gets.
    pub fn next_commit_seq(&self) -> CommitSeq {
        self.next_seq
    }

    /// Every commit below this one is durable and acknowledged.
    pub fn durable_seq(&self) -> CommitSeq {
        self.durable_seq
    }

    /// The first position not known to be written.
    pub fn durable_position(&self) -> Position {
        self.window.durable()
    }

    /// Positions claimed beyond the durable prefix.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Requests outstanding.
    pub fn outstanding_requests(&self) -> usize {
        let reads = match &self.phase {
            Phase::Listing { request: Some(_), .. } => 1,
            Phase::ReadingBack { reads, .. } => reads.outstanding(),
            _ => 0,
        };
        reads + self.window.outstanding() + usize::from(self.health.probing())
    }

    /// This instance's epoch (known once the LIST is back).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// This instance's leader id.
    pub fn leader(&self) -> LeaderId {
        self.identity.leader
    }

    /// Counters since construction.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the machine failed, if it did.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.phase {
            Phase::Failed(f) => Some(f),
            _ => None,
        }
    }

    /// Whether recovery is over and commits are accepted (or were, before a
    /// shutdown or failure).
    pub fn is_recovered(&self) -> bool {
        !matches!(self.phase, Phase::Listing { .. } | Phase::ReadingBack { .. } | Phase::Fencing(_))
    }

    /// Whether a requested shutdown has finished.
    pub fn is_shut_down(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The next thing to do, if any. Drain after every [`Persister::handle`].
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Feeds one input. Only [`Input::CommitArrived`] can be refused.
    #[inline]
    pub fn handle(&mut self, now: Time, input: Input) -> Result<(), Refused> {
        match input {
            Input::CommitArrived(payload) => self.commit(now, &payload),
            other => {
                self.handle_event(now, other);
                Ok(())
            }
        }
    }

    /// Everything but commits: completions, the timer, shutdown.
    #[inline(never)]
    fn handle_event(&mut self, now: Time, input: Input) {
        match input {
            Input::CommitArrived(_) => unreachable!("commits take the fast path"),
            Input::PutFinished { request, outcome } => self.on_put_finished(now, request, outcome),
            Input::HeadFinished { request, outcome } => self.on_head_finished(now, request, outcome),
            Input::ListFinished { request, outcome } => self.on_list_finished(now, request, outcome),
            Input::ProbeFinished { request, outcome } => self.on_probe_finished(now, request, outcome),
            Input::TimerFired => self.on_timer(now),
            Input::ShutdownRequested => self.on_shutdown(),
        }
        self.make_progress(now);
        self.retry_deadline = self.next_retry();
        self.refresh_timer(now);
    }

    // ---- commits -------------------------------------------------------

    /// [`Input::CommitArrived`] with the commit's bytes borrowed: the machine
    /// copies them into the open batch at once, so a caller need not make a
    /// [`Bytes`] of each commit.
    ///
    /// The hot path. A commit changes no retry deadline, and the timer only
    /// when it starts a batch or a batch goes out. A ready batch with no
    /// room in the window waits for a completion to make room (which sends
    /// it): under backpressure, trying again on every commit cost each one
    /// two more looks at the window and a timer refresh that changed
    /// nothing (perf of a 100-byte bulk load on moto).
    #[inline]
    pub fn commit(&mut self, now: Time, payload: &[u8]) -> Result<(), Refused> {
        if !matches!(self.phase, Phase::Writing) {
            return Err(self.refusal());
        }
        let max = self.max_commit_len();
        if payload.len() > max {
            return Err(Refused::TooLarge { len: payload.len(), max });
        }
        let started = self.batcher.push(now, self.next_seq, payload);
        self.next_seq = self.next_seq.next();
        self.budget.used += budget_cost(1, payload.len() as u64);
        if self.budget.used > self.budget.limit && !self.budget.producers_waiting {
            self.producers_must_wait();
        }
        let send = if self.window.is_empty() { SendNow::Idle } else { SendNow::IfTriggered };
        if started || self.batcher.has_ready(now, send) && self.room_to_claim() {
            self.send_after_commit(now);
        }
        Ok(())
    }

    /// Out of line, as the other rare steps of [`Persister::commit`] are,
    /// so the common one (copy the commit, count it) stays short: inlined,
    /// they made every commit save six registers and a 136-byte frame.
    #[cold]
    fn producers_must_wait(&mut self) {
        self.budget.producers_waiting = true;
        self.actions.push_back(Action::ProducersMustWait);
    }

    #[inline(never)]
    fn send_after_commit(&mut self, now: Time) {
        self.send_ready_batches(now);
        self.refresh_timer(now);
    }

    #[cold]
    fn refusal(&self) -> Refused {
        match &self.phase {
            Phase::Failed(f) => Refused::Failed(f.clone()),
            Phase::Draining | Phase::Done => Refused::ShuttingDown,
            Phase::Listing { .. } | Phase::ReadingBack { .. } | Phase::Fencing(_) | Phase::Writing => {
                Refused::Recovering
            }
        }
    }

    /// See [`ValidConfig::max_commit_len`].
    #[inline]
    fn max_commit_len(&self) -> usize {
        self.budget.max_commit
    }

    // ---- recovery ------------------------------------------------------

    fn issue_list(&mut self) {
        let request = self.new_request();
        if let Phase::Listing { request: slot, retry_at, .. } = &mut self.phase {
            *slot = Some(request);
            *retry_at = None;
        }
        self.stats.lists += 1;
        self.stats.recovery.lists += 1;
        let prefix = BATCH_PREFIX.to_string();
        self.actions.push_back(Action::List { request, prefix, max_keys: MAX_WINDOW });
    }

    fn on_list_finished(&mut self, now: Time, request: RequestId, outcome: ListOutcome) {
        let Phase::Listing { request: Some(expected), failures, .. } = &mut self.phase else { return };
        if *expected != request {
            return;
        }
        let failures_so_far = *failures;
        match outcome {
            ListOutcome::Listed { keys, truncated } => match recovery::first_gap(&keys, truncated) {
                Ok(listing) => self.start_reading_back(listing),
                Err(failure) => self.fail(failure),
            },
            ListOutcome::Failed(fault) => {
                if !fault.is_retryable() {
                    return self.fail(Failure::Rejected { position: Position(0), reason: fault.to_string() });
                }
                if failures_so_far >= self.config.max_retry_attempts {
                    return self.fail(Failure::RetriesExhausted {
                        position: Position(0),
                        attempts: failures_so_far + 1,
                        last: fault,
                    });
                }
                self.stats.retries.count(&fault);
                let delay = self.backoff(failures_so_far + 1, Position(0));
                self.phase =
                    Phase::Listing { request: None, failures: failures_so_far + 1, retry_at: Some(now + delay) };
            }
        }
    }

    fn start_reading_back(&mut self, listing: recovery::Listing) {
        self.epoch = Epoch { generation: listing.gap.0, nonce: self.identity.nonce };
        info!(gap = %listing.gap, epoch = %self.epoch, "recovering: listed the log");
        let reach = (self.window_limit() as u64).max(listing.claimed_above_gap());
        let next = Fencing { gap: listing.gap, first_win: None, reach };
        self.phase = Phase::ReadingBack { reads: ReadBack::new(listing.read_back()), next };
    }

    fn issue_reads(&mut self, now: Time) {
        let limit = self.window_limit();
        loop {
            let Phase::ReadingBack { reads, .. } = &mut self.phase else { return };
            if reads.outstanding() >= limit {
                return;
            }
            let Some(position) = reads.next_due(now) else { return };
            let request = RequestId(self.next_request + 1);
            self.next_request += 1;
            reads.sent(request, position);
            self.stats.heads += 1;
            self.stats.recovery.heads += 1;
            self.actions.push_back(Action::Head { request, position, key: position.key() });
        }
    }

    fn on_read_back(&mut self, now: Time, request: RequestId, outcome: HeadOutcome) {
        let delay_base = (self.config.retry_base_delay, self.config.retry_max_delay, self.identity.jitter_seed);
        let max_retries = self.config.max_retry_attempts;
        let Phase::ReadingBack { reads, next } = &mut self.phase else { return };
        let Some(position) = reads.finished(request) else { return };
        let top = next.gap.0.checked_sub(1) == Some(position.0);
        let failure = match outcome {
            HeadOutcome::Found { tag } => match parse_tag(position, tag.as_deref()) {
                Ok(tag) if tag.header.position == position && top => match recovery::read_back_start(&tag) {
                    Ok(from) => {
                        next.saw(&tag);
                        reads.record(position, tag);
                        reads.widen(from.0);
                        None
                    }
                    Err(failure) => Some(failure),
                },
                Ok(tag) if tag.header.position == position => {
                    next.saw(&tag);
                    reads.record(position, tag);
                    None
                }
                Ok(tag) => Some(Failure::ProtocolViolation {
                    position,
                    detail: format!("object claims to be at {}", tag.header.position),
                }),
                Err(f) => Some(f),
            },
            HeadOutcome::NotFound => Some(Failure::ProtocolViolation {
                position,
                detail: "missing below the first gap: objects were deleted".into(),
            }),
            HeadOutcome::Failed(fault) if fault.is_retryable() && reads.failures(position) < max_retries => {
                self.stats.retries.count(&fault);
                let attempt = reads.failures(position) + 1;
                let delay = retry::backoff(delay_base.0, delay_base.1, attempt, delay_base.2, position);
                reads.retry_at(position, now + delay);
                None
            }
            HeadOutcome::Failed(fault) if fault.is_retryable() => {
                Some(Failure::RetriesExhausted { position, attempts: reads.failures(position) + 1, last: fault })
            }
            HeadOutcome::Failed(fault) => Some(Failure::Rejected { position, reason: fault.to_string() }),
        };
        if let Some(failure) = failure {
            self.fail(failure);
        }
    }

    fn finish_reading_back_if_done(&mut self) {
        let Phase::ReadingBack { reads, next } = &self.phase else { return };
        if !reads.is_complete() {
            return;
        }
        let fencing = Fencing { ..*next };
        let gap = fencing.gap;
        match recovery::state_at_gap(gap, reads.tags()) {
            Ok(state) => {
                info!(%gap, next_seq = %state.next_seq, reach = fencing.reach, "recovering: read the log's end; fencing");
                self.window = Window::new(Checkpoint { position: gap, state }, self.window_limit());
                self.next_seq = state.next_seq;
                self.durable_seq = state.next_seq;
                if self.has_bug(PlantedBug::SkipFence) {
                    self.phase = Phase::Writing;
                    return self.start_writing(state.next_seq);
                }
                self.phase = Phase::Fencing(fencing);
            }
            Err(failure) => self.fail(failure),
        }
    }

    fn claim_fences(&mut self, now: Time) {
        loop {
            let Phase::Fencing(fencing) = &self.phase else { return };
            let position = self.window.next_position();
            if !self.room_to_claim() || position >= fencing.end() {
                return;
            }
            let (body, tag) = format::encode_fence(self.header(ObjectKind::Fence, position, self.durable_seq));
            let empty = CommitRange::new(self.durable_seq, self.durable_seq);
            self.claim(now, position, empty, 0, body, tag);
        }
    }

    /// Records that we won a position of the fence range.
    fn won(&mut self, position: Position) {
        if let Phase::Fencing(fencing) = &mut self.phase {
            if fencing.first_win.is_none_or(|f| position < f) {
                fencing.first_win = Some(position);
            }
        }
    }

    /// Records that an older writer's object holds a position of the fence
    /// range: it is resolved, and the log's state takes it in.
    fn lost_to_older(&mut self, position: Position, theirs: ObjectTag) {
        if let Phase::Fencing(fencing) = &mut self.phase {
            fencing.saw(&theirs);
        }
        if let Some(slot) = self.window.slot(position) {
            slot.tag = theirs;
        }
    }

    fn finish_fencing_if_done(&mut self) {
        let Phase::Fencing(fencing) = &self.phase else { return };
        if !self.window.is_empty() || self.window.durable() < fencing.end() {
            return;
        }
        let Some(first_win) = fencing.first_win else {
            let (gap, positions) = (fencing.gap, fencing.reach);
            return self.fail(Failure::TakeoverLost { gap, positions });
        };
        let state = self.window.checkpoint().state;
        info!(%first_win, start = %self.window.durable(), next_seq = %state.next_seq, "fenced; writing");
        self.phase = Phase::Writing;
        self.start_writing(state.next_seq);
    }

    fn start_writing(&mut self, next_commit: CommitSeq) {
        self.next_seq = next_commit;
        self.durable_seq = next_commit;
        self.actions.push_back(Action::Ready { next_commit, epoch: self.epoch });
    }

    // ---- completions ---------------------------------------------------

    fn on_put_finished(&mut self, now: Time, request: RequestId, outcome: PutOutcome) {
        if !self.is_claiming() {
            return;
        }
        if self.config.hedge_adaptive {
            let answered = matches!(outcome, PutOutcome::Created | PutOutcome::AlreadyExists);
            self.round_trips.answered(request, now, answered);
        }
        if let Some(position) = self.window.take_orphan(request) {
            if outcome == PutOutcome::Created {
                self.created_by_orphan(position);
            }
            return;
        }
        let Some(slot) = self.window.by_request(request) else { return };
        let SlotState::Putting { request: first, hedge } = slot.state else { return };
        let position = slot.position;
        match &outcome {
            PutOutcome::Created | PutOutcome::AlreadyExists => self.health.heard(now),
            PutOutcome::Failed(Fault::ConnectionFailed | Fault::TimedOut) if self.is_recovered() => {
                self.health.lost_contact(now);
            }
            PutOutcome::Failed(_) => {}
        }
        let twin = match hedge {
            Hedge::Out(hedge) if hedge == request => Some(first),
            Hedge::Out(hedge) => Some(hedge),
            Hedge::Armed { .. } | Hedge::Spent => None,
        };
        if let Some(twin) = twin {
            match &outcome {
                // A retryable failure of one: the other may still settle it.
                PutOutcome::Failed(fault) if fault.is_retryable() => return self.wait_for_twin(position, twin),
                // The object exists: the other's answer can only repeat it.
                PutOutcome::Created | PutOutcome::AlreadyExists => self.window.orphan(twin, position),
                PutOutcome::Failed(_) => {}
            }
        }
        match outcome {
            PutOutcome::Created => {
                self.won(position);
                self.confirm(position);
            }
            PutOutcome::AlreadyExists if self.has_bug(PlantedBug::Trust412) => self.confirm(position),
            PutOutcome::AlreadyExists => self.check_owner(position),
            PutOutcome::Failed(fault) => self.retry_or_fail(now, position, Retry::Put, fault),
        }
    }

    /// An orphaned PUT created its object: the position is ours, whatever is
    /// still being asked about it (typically the owner check that the other
    /// PUT's 412 started, which is now orphaned in turn).
    fn created_by_orphan(&mut self, position: Position) {
        let Some(slot) = self.window.slot(position) else { return };
        if slot.state == SlotState::Confirmed {
            return;
        }
        let out: Vec<RequestId> = slot.requests().collect();
        for request in out {
            self.window.orphan(request, position);
        }
        debug!(%position, "an orphaned PUT created the object");
        self.won(position);
        self.confirm(position);
    }

    /// One PUT of a hedged pair failed; the other, still out, may yet
    /// settle the position. No further hedge for this attempt.
    fn wait_for_twin(&mut self, position: Position, twin: RequestId) {
        if let Some(slot) = self.window.slot(position) {
            slot.state = SlotState::Putting { request: twin, hedge: Hedge::Spent };
        }
        debug!(%position, "one PUT of a hedged pair failed; waiting for the other");
    }

    fn on_head_finished(&mut self, now: Time, request: RequestId, outcome: HeadOutcome) {
        if let Phase::ReadingBack { .. } = self.phase {
            return self.on_read_back(now, request, outcome);
        }
        if !self.is_claiming() || self.window.take_orphan(request).is_some() {
            return;
        }
        let Some(slot) = self.window.by_request(request) else { return };
        if !matches!(slot.state, SlotState::CheckingOwner(_)) {
            return;
        }
        let (position, ours) = (slot.position, slot.tag);
        match outcome {
            HeadOutcome::Found { tag } => match parse_tag(position, tag.as_deref()) {
                Ok(theirs) => self.settle_owner(position, ours, theirs),
                Err(failure) => self.fail(failure),
            },
            HeadOutcome::NotFound => {
                // 412 then 404: the store contradicted itself. Objects are never
                // deleted, so the PUT is safe to repeat; it counts as a failure.
                self.stats.retries.missing_after_412 += 1;
                self.retry_or_fail(now, position, Retry::Put, Fault::ServerError { status: 404 });
            }
            HeadOutcome::Failed(fault) => self.retry_or_fail(now, position, Retry::Head, fault),
        }
    }

    /// Acts on whose object sits at a position that answered 412.
    fn settle_owner(&mut self, position: Position, ours: ObjectTag, theirs: ObjectTag) {
        let owner = if theirs == ours {
            Owner::Ours
        } else if theirs.header.epoch < self.epoch {
            Owner::Older(theirs)
        } else {
            Owner::Newer(theirs)
        };
        match (owner, &self.phase) {
            (Owner::Ours, _) => {
                debug!(%position, "412 on our own earlier write");
                self.won(position);
                self.confirm(position);
            }
            (Owner::Older(theirs), Phase::Fencing(_)) => {
                debug!(%position, owner = %theirs.header.leader, "fence lost to an older writer");
                self.lost_to_older(position, theirs);
                self.confirm(position);
            }
            (Owner::Older(theirs), _) => self.fail(Failure::ProtocolViolation {
                position,
                detail: format!(
                    "older writer {} of {} (window {}) past our fence range: a writer with a larger window \
                     than any object recovery saw is still running",
                    theirs.header.leader, theirs.header.epoch, theirs.header.window
                ),
            }),
            (Owner::Newer(theirs), _) => {
                let h = theirs.header;
                self.fail(Failure::Fenced { position, leader: h.leader, epoch: h.epoch });
            }
        }
    }

    fn on_probe_finished(&mut self, now: Time, request: RequestId, outcome: Result<(), Fault>) {
        if !self.health.take_probe(request) || !self.is_claiming() {
            return;
        }
        match outcome {
            Ok(()) => self.health.probe_succeeded(now),
            Err(Fault::Rejected { reason }) => {
                self.fail(Failure::Rejected { position: self.window.next_position(), reason });
            }
            Err(fault) => {
                let (base, max, seed) =
                    (self.config.retry_base_delay, self.config.retry_max_delay, self.identity.jitter_seed);
                let position = self.window.next_position();
                let failed = self.health.probe_failed(now, |n| retry::backoff(base, max, n, seed, position));
                debug!(%fault, failed, "health probe failed; new batches wait");
            }
        }
    }

    /// When a probe should go out, if one can: it is a request like any
    /// other and waits for room under `max_in_flight_requests`.
    fn probe_due(&self) -> Option<Time> {
        if !matches!(self.phase, Phase::Writing | Phase::Draining) || self.places_taken() >= self.window_limit() {
            return None;
        }
        let idle = matches!(self.phase, Phase::Writing) && self.window.is_empty() && self.batcher.is_empty();
        self.health.probe_due(idle)
    }

    /// Probes the store when it has been idle long, or is unhealthy.
    fn maybe_probe(&mut self, now: Time) {
        if self.probe_due().is_some_and(|at| at <= now) {
            let request = self.new_request();
            self.health.probe_sent(request);
            self.stats.probes += 1;
            self.actions.push_back(Action::Probe { request });
        }
    }

    fn on_timer(&mut self, now: Time) {
        if let Phase::Listing { retry_at: Some(at), .. } = self.phase {
            if at <= now {
                self.issue_list();
            }
        }
        if !self.is_claiming() {
            return;
        }
        let mut reissue = Vec::new();
        for slot in self.window.due(now) {
            if let SlotState::Waiting { then, .. } = slot.state {
                reissue.push((slot.position, then));
            }
        }
        for (position, then) in reissue {
            match then {
                Retry::Put => self.issue_put(now, position),
                Retry::Head => self.check_owner(position),
            }
        }
        self.send_due_hedges(now);
    }

    fn on_shutdown(&mut self) {
        match self.phase {
            Phase::Writing => {
                if self.has_bug(PlantedBug::DropOpenBatchOnShutdown) {
                    self.batcher.clear();
                }
                self.phase = Phase::Draining;
            }
            Phase::Listing { .. } | Phase::ReadingBack { .. } | Phase::Fencing(_) | Phase::Failed(_) => {
                // Nothing accepted is waiting; outstanding fences are harmless.
                self.window.clear();
                self.phase = Phase::Done;
                self.actions.push_back(Action::ShutdownComplete);
            }
            Phase::Draining | Phase::Done => {}
        }
    }

    /// Whether the window's positions are being worked on.
    fn is_claiming(&self) -> bool {
        matches!(self.phase, Phase::Fencing(_) | Phase::Writing | Phase::Draining)
    }

    /// After any input: start what can start, move phases on.
    fn make_progress(&mut self, now: Time) {
        match self.phase {
            Phase::ReadingBack { .. } => {
                self.issue_reads(now);
                self.finish_reading_back_if_done();
                self.claim_fences(now);
            }
            Phase::Fencing(_) => {
                self.claim_fences(now);
                self.finish_fencing_if_done();
                self.send_ready_batches(now);
            }
            Phase::Writing | Phase::Draining => {
                self.maybe_probe(now);
                self.send_due_hedges(now);
                self.send_ready_batches(now);
                self.finish_shutdown_if_drained();
            }
            Phase::Listing { .. } | Phase::Done | Phase::Failed(_) => {}
        }
    }

    // ---- writing -------------------------------------------------------

    /// Claims positions for every batch that is ready, while the window has room.
    fn send_ready_batches(&mut self, now: Time) {
        while matches!(self.phase, Phase::Writing | Phase::Draining) && self.room_to_claim() {
            let send = match self.phase {
                Phase::Draining => SendNow::Draining,
                _ if self.window.is_empty() => SendNow::Idle,
                _ => SendNow::IfTriggered,
            };
            let Some(batch) = self.batcher.take_ready(now, send) else { break };
            self.claim_batch(now, batch);
        }
    }

    /// Whether a new position may be claimed. An outstanding probe takes a
    /// place too: every claimed position may have a request out at once.
    fn room_to_claim(&self) -> bool {
        if !self.health.is_healthy() {
            return false;
        }
        if self.has_bug(PlantedBug::WindowCountsOutstandingOnly) {
            return self.window.has_request_room();
        }
        self.places_taken() + self.hedge_reserve() < self.window_limit()
    }

    /// Places new batches leave free for hedges. Without them a slow PUT
    /// could not be hedged once the window filled up behind it, which is
    /// exactly when its hedge matters most.
    fn hedge_reserve(&self) -> usize {
        let hedging = self.config.hedge_after.is_some() && matches!(self.phase, Phase::Writing | Phase::Draining);
        let limit = self.window_limit();
        if hedging {
            (limit / 10).max(1).min(limit - 1)
        } else {
            0
        }
    }

    /// Places under `max_in_flight_requests`: claimed positions, hedges and
    /// a probe each take one, so requests never outnumber the limit.
    /// Hedges and orphans exist only with `hedge_after` set; without it
    /// this is O(1), as it is asked after every input.
    fn places_taken(&self) -> usize {
        self.window.len() + self.extra_requests() + usize::from(self.health.probing())
    }

    /// Hedges and orphans out: requests beyond one per claimed position.
    fn extra_requests(&self) -> usize {
        if self.config.hedge_after.is_none() {
            return 0;
        }
        let forgotten = if self.has_bug(PlantedBug::ForgetOrphans) { self.window.orphans() } else { 0 };
        self.window.extra_requests() - forgotten
    }

    fn claim_batch(&mut self, now: Time, batch: SealedBatch) {
        let position = self.window.next_position();
        let header = self.header(ObjectKind::Batch, position, batch.commits.start);
        let (body, tag) = BatchBuilder::seal(batch.builder, header);
        self.stats.batches += 1;
        self.actions.push_back(Action::Accepted { commits: batch.commits });
        self.claim(now, position, batch.commits, batch.payload_bytes, body, tag);
    }

    fn claim(
        &mut self,
        now: Time,
        position: Position,
        commits: CommitRange,
        payload_bytes: u64,
        body: Bytes,
        tag: ObjectTag,
    ) {
        let request = self.new_request();
        let state = SlotState::Putting { request, hedge: self.hedge_for(now, commits) };
        self.window.claim(Slot { position, commits, payload_bytes, body, tag, state, failures: 0 });
        self.emit_put(now, request, position);
    }

    /// How long a batch PUT may be out before it is hedged, if hedging is on:
    /// `hedge_after`, or with `hedge_adaptive` what the store's round trips
    /// say, never less than `hedge_after`.
    fn hedge_delay(&self) -> Option<Duration> {
        let floor = self.config.hedge_after?;
        Some(if self.config.hedge_adaptive { self.round_trips.hedge_delay(floor) } else { floor })
    }

    /// A batch PUT sent at `now` may be hedged if a delay is configured.
    /// Fences (no commits) are not: recovery is not on any commit's path.
    fn hedge_for(&self, now: Time, commits: CommitRange) -> Hedge {
        let writing = matches!(self.phase, Phase::Writing | Phase::Draining);
        match self.config.hedge_after {
            Some(_) if writing && !commits.is_empty() => Hedge::Armed { since: now },
            _ => Hedge::Spent,
        }
    }

    /// The header of an object claimed now: its checkpoint is the durable prefix.
    fn header(&self, kind: ObjectKind, position: Position, first_seq: CommitSeq) -> Header {
        let (leader, epoch, checkpoint) = (self.identity.leader, self.epoch, self.window.checkpoint());
        let window = self.config.max_in_flight_requests;
        Header { kind, leader, epoch, position, first_seq, count: 0, checkpoint, window }
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Sends the position's PUT again, with the very same bytes.
    fn issue_put(&mut self, now: Time, position: Position) {
        let request = self.new_request();
        let Some(commits) = self.window.slot(position).map(|slot| slot.commits) else { return };
        let hedge = self.hedge_for(now, commits);
        let Some(slot) = self.window.slot(position) else { return };
        slot.state = SlotState::Putting { request, hedge };
        self.emit_put(now, request, position);
    }

    /// Sends a second PUT for every batch whose PUT has been out longer
    /// than `hedge_after`, while the window has room for it. Not while the
    /// store is unhealthy: it would only add requests to a failing store.
    fn send_due_hedges(&mut self, now: Time) {
        let Some(delay) = self.hedge_delay() else { return };
        if !self.health.is_healthy() {
            return;
        }
        for position in self.window.due_hedges(now, delay) {
            if self.places_taken() >= self.window_limit() {
                return;
            }
            let request = self.new_request();
            let Some(slot) = self.window.slot(position) else { continue };
            if let SlotState::Putting { hedge, .. } = &mut slot.state {
                *hedge = Hedge::Out(request);
            }
            self.stats.hedges += 1;
            debug!(%position, "PUT slow; hedged");
            self.emit_put(now, request, position);
        }
    }

    fn emit_put(&mut self, now: Time, request: RequestId, position: Position) {
        if self.config.hedge_adaptive {
            self.round_trips.sent(request, now);
        }
        let Some(slot) = self.window.slot(position) else { return };
        let put = PutRequest {
            request,
            position,
            key: position.key(),
            body: slot.body.clone(),
            metadata: vec![(TAG_METADATA_KEY.to_string(), slot.tag.to_metadata_value())],
        };
        self.stats.puts += 1;
        if !self.is_recovered() {
            self.stats.recovery.puts += 1;
        }
        self.actions.push_back(Action::Put(put));
    }

    fn check_owner(&mut self, position: Position) {
        let request = self.new_request();
        let Some(slot) = self.window.slot(position) else { return };
        slot.state = SlotState::CheckingOwner(request);
        self.stats.heads += 1;
        if !self.is_recovered() {
            self.stats.recovery.heads += 1;
        }
        self.actions.push_back(Action::Head { request, position, key: position.key() });
    }

    fn backoff(&self, retry: u32, position: Position) -> std::time::Duration {
        let c = &self.config;
        retry::backoff(c.retry_base_delay, c.retry_max_delay, retry, self.identity.jitter_seed, position)
    }

    fn retry_or_fail(&mut self, now: Time, position: Position, then: Retry, fault: Fault) {
        if !fault.is_retryable() {
            let reason = fault.to_string();
            return self.fail(Failure::Rejected { position, reason });
        }
        let max_retries = self.config.max_retry_attempts;
        let Some(slot) = self.window.slot(position) else { return };
        if slot.failures >= max_retries {
            let attempts = slot.failures + 1;
            return self.fail(Failure::RetriesExhausted { position, attempts, last: fault });
        }
        self.stats.retries.count(&fault);
        slot.failures += 1;
        let failures = slot.failures;
        let delay = self.backoff(failures, position);
        if let Some(slot) = self.window.slot(position) {
            slot.state = SlotState::Waiting { until: now + delay, then };
        }
        debug!(%position, failures, ?delay, "retry scheduled");
    }

    fn confirm(&mut self, position: Position) {
        let mut early = None;
        if let Some(slot) = self.window.slot(position) {
            slot.state = SlotState::Confirmed;
            early = Some(slot.commits);
        }
        if self.has_bug(PlantedBug::AckOnCompletion) {
            if let Some(commits) = early.filter(|c| !c.is_empty() && c.start != self.durable_seq) {
                self.actions.push_back(Action::Durable { commits });
            }
        }
        let skip_one_hole = self.has_bug(PlantedBug::AckBeforeEarlierDurable);
        let released = match self.window.advance(self.durable_seq, skip_one_hole) {
            Ok(released) => released,
            Err(broken) => return self.fail(Failure::ProtocolViolation { position, detail: broken.to_string() }),
        };
        let released_cost = budget_cost(released.commits.map_or(0, |c| c.len()), released.payload_bytes);
        if let Some(commits) = released.commits {
            debug_assert_eq!(commits.start, self.durable_seq);
            self.durable_seq = commits.end;
            self.actions.push_back(Action::Durable { commits });
            if self.window.is_empty() {
                self.batcher.expect_wave(commits.len());
            }
        }
        self.release_budget(released_cost);
        for body in released.bodies {
            self.batcher.recycle(body, self.budget.free());
        }
    }

    fn release_budget(&mut self, bytes: u64) {
        self.budget.used -= bytes;
        if self.budget.producers_waiting && self.budget.used <= self.budget.limit {
            self.budget.producers_waiting = false;
            self.actions.push_back(Action::ProducersMayContinue);
        }
    }

    fn fail(&mut self, failure: Failure) {
        warn!(%failure, "s3wal writer failed");
        let commits = CommitRange::new(self.durable_seq, self.next_seq);
        self.actions.push_back(Action::Failed { commits, failure: failure.clone() });
        // A shutdown in progress ends here, with the failure.
        let draining = matches!(self.phase, Phase::Draining);
        self.phase = Phase::Failed(failure);
        if draining {
            self.actions.push_back(Action::ShutdownComplete);
        }
        self.window.clear();
        self.batcher.clear();
        self.round_trips.clear();
        let used = self.budget.used;
        self.release_budget(used);
    }

    fn finish_shutdown_if_drained(&mut self) {
        if matches!(self.phase, Phase::Draining) && self.window.is_empty() && self.batcher.is_empty() {
            self.phase = Phase::Done;
            self.actions.push_back(Action::ShutdownComplete);
        }
    }

    // ---- the timer -----------------------------------------------------

    /// The earliest moment a backed-off request wants to go again.
    fn next_retry(&self) -> Option<Time> {
        match &self.phase {
            Phase::Listing { retry_at, .. } => *retry_at,
            Phase::ReadingBack { reads, .. } => reads.deadline(),
            Phase::Fencing(_) | Phase::Writing | Phase::Draining => self.window.retry_deadline(),
            Phase::Done | Phase::Failed(_) => None,
        }
    }

    /// When the next PUT becomes due for a hedge, if one can be sent.
    fn hedge_due(&self) -> Option<Time> {
        let delay = self.hedge_delay()?;
        let room = matches!(self.phase, Phase::Writing | Phase::Draining)
            && self.health.is_healthy()
            && self.places_taken() < self.window_limit();
        room.then(|| self.window.hedge_deadline(delay)).flatten()
    }

    /// Keeps the driver's one timer at the earliest moment something is due.
    fn refresh_timer(&mut self, now: Time) {
        let writing = matches!(self.phase, Phase::Writing | Phase::Draining);
        let batch_due = if writing && self.room_to_claim() { self.batcher.deadline() } else { None };
        let probe_due = self.probe_due();
        let hedge_due = self.hedge_due();
        let wanted = [batch_due, self.retry_deadline, probe_due, hedge_due].into_iter().flatten().min();
        if wanted == self.timer {
            return;
        }
        debug_assert!(batch_due.is_none_or(|t| t > now), "a due batch is sent, not re-armed");
        self.timer = wanted;
        self.actions.push_back(match wanted {
            Some(at) => Action::SetTimer { at },
            None => Action::CancelTimer,
        });
    }
}

/// Reads an object's tag from its HEAD metadata.
fn parse_tag(position: Position, value: Option<&str>) -> Result<ObjectTag, Failure> {
    let value = value.ok_or_else(|| Failure::ProtocolViolation {
        position,
        detail: "object has no s3wal tag: not written by s3wal".into(),
    })?;
    ObjectTag::parse(value).map_err(|e| Failure::ProtocolViolation { position, detail: e.to_string() })
}

#[cfg(test)]
mod tests;
