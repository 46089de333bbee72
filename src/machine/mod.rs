//! The sans-IO persister: turns commits into batch objects, pipelines their
//! PUTs, and acknowledges commits strictly in order.
//!
//! Its contract with a driver is in [`crate::protocol`]. Inside, three parts
//! with one job each: the [`batcher`] decides when a batch is complete, the
//! [`window`] tracks claimed positions until they join the durable prefix,
//! and [`retry`] spaces out attempts.

mod batcher;
mod retry;
mod window;

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::{debug, warn};

use crate::config::ValidConfig;
use crate::format::{self, BatchBuilder, Header, ObjectKind, ObjectTag, TAG_METADATA_KEY};
use crate::protocol::{
    Action, Failure, Fault, HeadOutcome, Input, PutOutcome, PutRequest, Refused,
};
use crate::types::{CommitRange, CommitSeq, Epoch, LeaderId, Position, RequestId, Time};

use batcher::{Batcher, SealedBatch, SendNow};
use window::{Retry, Slot, SlotState, Window};

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

/// Where a writer starts: the result of recovery.
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
    /// Batches sent (first attempts).
    pub batches: u64,
    /// Retries, by cause: 409, 503, 5xx, timeout, connection, 412-then-missing.
    pub retries: RetryCounts,
}

/// Retries by what caused them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryCounts {
    pub conflict: u64,
    pub throttled: u64,
    pub server_error: u64,
    pub timed_out: u64,
    pub connection_failed: u64,
    pub missing_after_412: u64,
}

impl RetryCounts {
    fn count(&mut self, fault: &Fault) {
        match fault {
            Fault::Conflict => self.conflict += 1,
            Fault::Throttled => self.throttled += 1,
            Fault::ServerError { .. } => self.server_error += 1,
            Fault::TimedOut => self.timed_out += 1,
            Fault::ConnectionFailed => self.connection_failed += 1,
            Fault::Rejected { .. } => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Writing,
    Draining,
    Done,
    Failed(Failure),
}

/// Accepted-but-not-durable bytes against the budget.
#[derive(Debug)]
struct Budget {
    limit: u64,
    used: u64,
    producers_waiting: bool,
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
    stats: Stats,
}

impl Persister {
    /// A writer that starts at `start`, as if recovery had just finished.
    /// Emits [`Action::Ready`].
    pub fn resume(config: ValidConfig, identity: Identity, start: StartPoint) -> Persister {
        let window = Window::new(start.position, config.max_in_flight_requests as usize);
        let batcher = Batcher::new(config.batch_size_threshold, config.batch_timeout);
        let budget = Budget {
            limit: config.byte_budget,
            used: 0,
            producers_waiting: false,
        };
        let mut p = Persister {
            config,
            identity,
            epoch: start.epoch,
            phase: Phase::Writing,
            batcher,
            window,
            next_seq: start.next_commit,
            durable_seq: start.next_commit,
            budget,
            actions: VecDeque::new(),
            next_request: 0,
            timer: None,
            retry_deadline: None,
            stats: Stats::default(),
        };
        p.actions.push_back(Action::Ready {
            next_commit: start.next_commit,
            epoch: start.epoch,
        });
        p
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
        self.window.outstanding()
    }

    /// This instance's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
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

    /// Whether a requested shutdown has finished.
    pub fn is_shut_down(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next thing to do, if any. Drain after every [`Persister::handle`].
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Feeds one input. Only [`Input::CommitArrived`] can be refused.
    pub fn handle(&mut self, now: Time, input: Input) -> Result<(), Refused> {
        match input {
            Input::CommitArrived(payload) => self.on_commit(now, payload)?,
            Input::PutFinished { request, outcome } => self.on_put_finished(now, request, outcome),
            Input::HeadFinished { request, outcome } => {
                self.on_head_finished(now, request, outcome)
            }
            Input::ListFinished { .. } => {}
            Input::TimerFired => self.on_timer(now),
            Input::ShutdownRequested => self.on_shutdown(),
        }
        self.send_ready_batches(now);
        self.finish_shutdown_if_drained();
        self.refresh_timer(now);
        Ok(())
    }

    fn on_commit(&mut self, now: Time, payload: Bytes) -> Result<(), Refused> {
        match &self.phase {
            Phase::Writing => {}
            Phase::Draining | Phase::Done => return Err(Refused::ShuttingDown),
            Phase::Failed(f) => return Err(Refused::Failed(f.clone())),
        }
        let max = self.max_commit_len();
        if payload.len() > max {
            return Err(Refused::TooLarge {
                len: payload.len(),
                max,
            });
        }
        self.batcher.push(now, self.next_seq, &payload);
        self.next_seq = self.next_seq.next();
        self.budget.used += payload.len() as u64;
        if self.budget.used > self.budget.limit && !self.budget.producers_waiting {
            self.budget.producers_waiting = true;
            self.actions.push_back(Action::ProducersMustWait);
        }
        Ok(())
    }

    /// A commit must fit the format's length field and the byte budget (a
    /// producer waiting for more budget than exists would wait forever).
    fn max_commit_len(&self) -> usize {
        let budget = usize::try_from(self.budget.limit).unwrap_or(usize::MAX);
        budget.min(u32::MAX as usize)
    }

    fn on_put_finished(&mut self, now: Time, request: RequestId, outcome: PutOutcome) {
        if !self.is_running() {
            return;
        }
        let Some(slot) = self.window.by_request(request) else {
            return;
        };
        if !matches!(slot.state, SlotState::Putting(_)) {
            return;
        }
        let position = slot.position;
        match outcome {
            PutOutcome::Created => self.confirm(position),
            PutOutcome::AlreadyExists => self.check_owner(position),
            PutOutcome::Failed(fault) => self.retry_or_fail(now, position, Retry::Put, fault),
        }
        self.retry_deadline = self.window.retry_deadline();
    }

    fn on_head_finished(&mut self, now: Time, request: RequestId, outcome: HeadOutcome) {
        if !self.is_running() {
            return;
        }
        let Some(slot) = self.window.by_request(request) else {
            return;
        };
        if !matches!(slot.state, SlotState::CheckingOwner(_)) {
            return;
        }
        let (position, ours) = (slot.position, slot.tag);
        match outcome {
            HeadOutcome::Found { tag } => self.judge_owner(position, ours, tag.as_deref()),
            HeadOutcome::NotFound => {
                // 412 then 404: the store contradicted itself. Objects are never
                // deleted, so the PUT is safe to repeat; it counts as a failure.
                self.stats.retries.missing_after_412 += 1;
                self.schedule_retry(now, position, Retry::Put);
            }
            HeadOutcome::Failed(fault) => self.retry_or_fail(now, position, Retry::Head, fault),
        }
        self.retry_deadline = self.window.retry_deadline();
    }

    /// Decides whose object sits at a position that answered 412.
    fn judge_owner(&mut self, position: Position, ours: ObjectTag, found: Option<&str>) {
        let theirs = match found.map(ObjectTag::parse) {
            Some(Ok(tag)) => tag,
            Some(Err(e)) => {
                return self.fail(Failure::ProtocolViolation {
                    position,
                    detail: e.to_string(),
                })
            }
            None => {
                let detail = "object has no s3wal tag: not written by s3wal".to_string();
                return self.fail(Failure::ProtocolViolation { position, detail });
            }
        };
        if theirs == ours {
            debug!(%position, "412 on our own earlier write");
            return self.confirm(position);
        }
        let h = theirs.header;
        self.fail(Failure::Fenced {
            position,
            leader: h.leader,
            epoch: h.epoch,
        });
    }

    fn on_timer(&mut self, now: Time) {
        if !self.is_running() {
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
                Retry::Put => self.issue_put(position),
                Retry::Head => self.check_owner(position),
            }
        }
        self.retry_deadline = self.window.retry_deadline();
    }

    fn on_shutdown(&mut self) {
        match self.phase {
            Phase::Writing => self.phase = Phase::Draining,
            Phase::Failed(_) => {
                self.phase = Phase::Done;
                self.actions.push_back(Action::ShutdownComplete);
            }
            Phase::Draining | Phase::Done => {}
        }
    }

    fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Writing | Phase::Draining)
    }

    /// Claims positions for every batch that is ready, while the window has room.
    fn send_ready_batches(&mut self, now: Time) {
        while self.is_running() && self.window.has_room() {
            let send = match self.phase {
                Phase::Draining => SendNow::Draining,
                _ if self.window.is_empty() => SendNow::Idle,
                _ => SendNow::IfTriggered,
            };
            let Some(batch) = self.batcher.take_ready(now, send) else {
                break;
            };
            self.claim_batch(batch);
        }
    }

    fn claim_batch(&mut self, batch: SealedBatch) {
        let position = self.window.next_position();
        let header = self.header(ObjectKind::Batch, position, batch.commits.start);
        let (body, tag) = BatchBuilder::seal(batch.builder, header);
        self.stats.batches += 1;
        self.actions.push_back(Action::Accepted {
            commits: batch.commits,
        });
        self.claim(position, batch.commits, batch.payload_bytes, body, tag);
    }

    /// Claims a position for a fence that carries `next_seq`.
    #[allow(dead_code)]
    fn claim_fence(&mut self, next_seq: CommitSeq) {
        let position = self.window.next_position();
        let (body, tag) =
            format::encode_fence(self.identity.leader, self.epoch, position, next_seq);
        self.claim(position, CommitRange::new(next_seq, next_seq), 0, body, tag);
    }

    fn claim(
        &mut self,
        position: Position,
        commits: CommitRange,
        payload_bytes: u64,
        body: Bytes,
        tag: ObjectTag,
    ) {
        let request = self.new_request();
        let state = SlotState::Putting(request);
        self.window.claim(Slot {
            position,
            commits,
            payload_bytes,
            body,
            tag,
            state,
            failures: 0,
        });
        self.emit_put(request, position);
    }

    fn header(&self, kind: ObjectKind, position: Position, first_seq: CommitSeq) -> Header {
        Header {
            kind,
            leader: self.identity.leader,
            epoch: self.epoch,
            position,
            first_seq,
            count: 0,
        }
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Sends the position's PUT again, with the very same bytes.
    fn issue_put(&mut self, position: Position) {
        let request = self.new_request();
        let Some(slot) = self.slot_mut(position) else {
            return;
        };
        slot.state = SlotState::Putting(request);
        self.emit_put(request, position);
    }

    fn emit_put(&mut self, request: RequestId, position: Position) {
        let Some(slot) = self.slot_mut(position) else {
            return;
        };
        let put = PutRequest {
            request,
            position,
            key: position.key(),
            body: slot.body.clone(),
            metadata: vec![(TAG_METADATA_KEY.to_string(), slot.tag.to_metadata_value())],
        };
        self.stats.puts += 1;
        self.actions.push_back(Action::Put(put));
    }

    fn check_owner(&mut self, position: Position) {
        let request = self.new_request();
        let Some(slot) = self.slot_mut(position) else {
            return;
        };
        slot.state = SlotState::CheckingOwner(request);
        self.stats.heads += 1;
        self.actions.push_back(Action::Head {
            request,
            position,
            key: position.key(),
        });
    }

    fn slot_mut(&mut self, position: Position) -> Option<&mut Slot> {
        self.window.slot(position)
    }

    fn retry_or_fail(&mut self, now: Time, position: Position, then: Retry, fault: Fault) {
        if !fault.is_retryable() {
            let reason = fault.to_string();
            return self.fail(Failure::Rejected { position, reason });
        }
        self.stats.retries.count(&fault);
        let max_retries = self.config.max_retry_attempts;
        let Some(slot) = self.slot_mut(position) else {
            return;
        };
        if slot.failures >= max_retries {
            let attempts = slot.failures + 1;
            return self.fail(Failure::RetriesExhausted {
                position,
                attempts,
                last: fault,
            });
        }
        self.schedule_retry(now, position, then);
    }

    fn schedule_retry(&mut self, now: Time, position: Position, then: Retry) {
        let (base, max, seed) = (
            self.config.retry_base_delay,
            self.config.retry_max_delay,
            self.identity.jitter_seed,
        );
        let Some(slot) = self.slot_mut(position) else {
            return;
        };
        slot.failures += 1;
        let delay = retry::backoff(base, max, slot.failures, seed, position);
        slot.state = SlotState::Waiting {
            until: now + delay,
            then,
        };
        debug!(%position, failures = slot.failures, ?delay, "retry scheduled");
    }

    fn confirm(&mut self, position: Position) {
        if let Some(slot) = self.slot_mut(position) {
            slot.state = SlotState::Confirmed;
        }
        let released = self.window.advance(self.durable_seq);
        if let Some(commits) = released.commits {
            debug_assert_eq!(commits.start, self.durable_seq);
            self.durable_seq = commits.end;
            self.actions.push_back(Action::Durable { commits });
        }
        self.release_budget(released.payload_bytes);
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
        self.actions.push_back(Action::Failed {
            commits,
            failure: failure.clone(),
        });
        self.phase = Phase::Failed(failure);
        self.window.clear();
        self.batcher.clear();
        let used = self.budget.used;
        self.release_budget(used);
    }

    fn finish_shutdown_if_drained(&mut self) {
        if self.phase == Phase::Draining && self.window.is_empty() && self.batcher.is_empty() {
            self.phase = Phase::Done;
            self.actions.push_back(Action::ShutdownComplete);
        }
    }

    /// Keeps the driver's one timer at the earliest moment something is due.
    fn refresh_timer(&mut self, now: Time) {
        let batch_due = if self.is_running() && self.window.has_room() {
            self.batcher.deadline()
        } else {
            None
        };
        let retry_due = if self.is_running() {
            self.retry_deadline
        } else {
            None
        };
        let wanted = match (batch_due, retry_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if wanted == self.timer {
            return;
        }
        debug_assert!(
            batch_due.is_none_or(|t| t > now),
            "a due batch is sent, not re-armed"
        );
        self.timer = wanted;
        self.actions.push_back(match wanted {
            Some(at) => Action::SetTimer { at },
            None => Action::CancelTimer,
        });
    }
}

#[cfg(test)]
mod tests;
