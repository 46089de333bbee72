//! The world: virtual time, the workload, the store behind its fault layer,
//! and the instances it drives.
//!
//! One event at a time, earliest first. Every instance is driven by the rule
//! of `s3wal::protocol`: feed one input, drain `poll_action` until it is
//! empty, carry out each action. Requests go through the fault layer and the
//! latency model to the [`S3Model`]: a request *arrives* (and is applied) at
//! one instant and is *answered* at a later one, so answers reorder and a
//! request can land although its answer is lost. The [`Checker`] hears every
//! report and checks the invariants after every step.
//!
//! Instances are kept by [`InstanceId`], each with its own timer and requests
//! in flight, so that crashed, paused and restarted instances can join the
//! one that runs today.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use s3wal::format::{ObjectKind, ObjectTag, TAG_METADATA_KEY};
use s3wal::{
    Action, CommitRange, CommitSeq, Epoch, Failure, Fault, HeadOutcome, Identity, Input, LeaderId, ListOutcome,
    Persister, Position, PutOutcome, PutRequest, RequestId, StartPoint, Time,
};

use crate::checker::{Checker, Invariant, Violation, WindowState};
use crate::event_queue::EventQueue;
use crate::faults::{FaultClass, FaultInjector, PhaseChange, RequestKind, RequestPlan};
use crate::instance::{Instance, InstanceId, OpId, Status, TimerGeneration};
use crate::knobs::RunKnobs;
use crate::latency::LatencyModel;
use crate::report::{failure_kind, End, InstanceReport, Outcome, RunReport, StoreCounts};
use crate::s3_model::{PutResult, S3Model, StoredObject};
use crate::sampling::{chance, uniform_duration};
use crate::sampling::{stream, Stream};
use crate::trace::{Range, Size, Trace, TraceTime};
use crate::workload::{ProducerId, Workload};

/// The most events one run may take before it counts as hung.
const MAX_EVENTS: u64 = 5_000_000;
/// The most virtual time one run may take before it counts as hung.
const MAX_SIM_TIME: Duration = Duration::from_secs(24 * 3600);

/// How to run a seed.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Commits the workload issues.
    pub commits: u64,
    /// Whether to keep the trace.
    pub trace: bool,
    /// A bug to plant in the world, to show the checker catches it.
    pub planted_bug: Option<PlantedBug>,
    /// How instances start.
    pub start: StartMode,
    /// Called on every machine the world builds, before it is driven. Tests
    /// use it to plant the library's deliberate bugs (`Persister::plant`,
    /// behind s3wal's `planted-bugs` feature) without this crate needing it.
    pub prepare_machine: Option<fn(&mut Persister)>,
    /// Leave out of the trace recovery's requests that go as planned (fence
    /// PUTs created, read-back HEADs found): `ready` sums them up in one
    /// line, and scenarios' traces stay readable. Anything else is traced.
    pub compact_fences: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            commits: 1000,
            trace: false,
            planted_bug: None,
            start: StartMode::Resume,
            prepare_machine: None,
            compact_fences: false,
        }
    }
}

/// How the world starts an instance.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum StartMode {
    /// `Persister::resume` at position 0, commit 0: the write path alone.
    #[default]
    Resume,
    /// `Persister::recover`: one LIST, read-back, fences, then `Ready`.
    Recover,
}

/// A deliberate bug in the world, for tests that show the checker can fail.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// The store answers `Created` to the first conditional PUT that would
    /// create its object, without writing it.
    CreatedWithoutWriting,
}

/// Something due at a point of virtual time.
#[derive(Debug)]
enum Event {
    /// A producer issues its next commit.
    Produce(ProducerId),
    /// An instance may take commits again: hand over the parked ones.
    Resume,
    /// A request reaches the store.
    Arrive(OpId),
    /// A request's answer reaches its instance.
    Respond(OpId),
    /// An instance's timer is due.
    Timer(InstanceId, TimerGeneration),
    /// The application asks one instance (or, `None`, every live one) to shut down.
    Shutdown(Option<InstanceId>),
    /// The leader crashes.
    Crash,
    /// The leader is paused for this long (it becomes a zombie).
    Pause(Duration),
    /// A paused instance resumes.
    Unpause(InstanceId),
    /// A new leader (or two, from one listing) starts recovering.
    Replace,
}

/// What a request asks the store.
#[derive(Debug)]
enum StoreOp {
    Put {
        position: Position,
        key: String,
        object: StoredObject,
    },
    Head {
        position: Position,
        key: String,
    },
    List {
        prefix: String,
        max_keys: u32,
    },
    /// A health probe: a LIST of one key whose answer only says "alive".
    Probe,
}

impl StoreOp {
    fn kind(&self) -> RequestKind {
        match self {
            StoreOp::Put { .. } => RequestKind::Put,
            StoreOp::Head { .. } => RequestKind::Head,
            StoreOp::List { .. } | StoreOp::Probe => RequestKind::List,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            StoreOp::Put { object, .. } => object.body.len(),
            StoreOp::Head { .. } | StoreOp::List { .. } | StoreOp::Probe => 0,
        }
    }

    fn name(&self) -> String {
        match self {
            StoreOp::Put { position, .. } => format!("put {position}"),
            StoreOp::Head { position, .. } => format!("head {position}"),
            StoreOp::List { prefix, .. } => format!("list {prefix}"),
            StoreOp::Probe => "probe".to_string(),
        }
    }
}

/// What the store answered, before any fault replaces it.
#[derive(Debug)]
enum Answer {
    Put(PutOutcome),
    Head(HeadOutcome),
    List(ListOutcome),
    Probe,
}

/// One request on its way.
#[derive(Debug)]
struct InFlight {
    id: OpId,
    /// A fence PUT whose uneventful lines the trace leaves out.
    quiet: bool,
    instance: InstanceId,
    request: RequestId,
    op: StoreOp,
    processing: Duration,
    /// What the client hears instead of the store's answer.
    fault: Option<Fault>,
    answer: Option<Answer>,
}

impl InFlight {
    /// The input the answer becomes.
    fn input(self) -> Input {
        let request = self.request;
        if matches!(self.op, StoreOp::Probe) {
            let outcome = self.fault.map_or(Ok(()), Err);
            return Input::ProbeFinished { request, outcome };
        }
        match (self.op.kind(), self.fault, self.answer) {
            (RequestKind::Put, Some(fault), _) => Input::PutFinished { request, outcome: PutOutcome::Failed(fault) },
            (RequestKind::Head, Some(fault), _) => Input::HeadFinished { request, outcome: HeadOutcome::Failed(fault) },
            (RequestKind::List, Some(fault), _) => Input::ListFinished { request, outcome: ListOutcome::Failed(fault) },
            (_, None, Some(Answer::Put(outcome))) => Input::PutFinished { request, outcome },
            (_, None, Some(Answer::Head(outcome))) => Input::HeadFinished { request, outcome },
            (_, None, Some(Answer::List(outcome))) => Input::ListFinished { request, outcome },
            (_, None, Some(Answer::Probe)) => unreachable!("probes are answered above"),
            (_, None, None) => unreachable!("{request} answered before it reached the store"),
        }
    }
}

/// A commit issued by a producer, waiting to be handed over.
#[derive(Debug)]
struct Parked {
    producer: ProducerId,
    index: u64,
    payload: Bytes,
}

type Checked = Result<(), Violation>;

/// The simulated world of one run.
#[derive(Debug)]
pub struct World {
    seed: u64,
    knobs: RunKnobs,
    now: Time,
    queue: EventQueue<Event>,
    store: S3Model,
    instances: BTreeMap<InstanceId, Instance>,
    /// The newest generation of instances: producers hand their commits to
    /// the first of them that is ready (two after a dual recovery).
    candidates: Vec<InstanceId>,
    next_instance: u32,
    /// New leaders scheduled to start.
    replacing: u32,
    instance_rng: ChaCha8Rng,
    /// Leader ids and nonces handed out, to keep them distinct.
    identities: BTreeSet<u64>,
    /// Answers held back from paused instances.
    held: BTreeMap<InstanceId, Vec<OpId>>,
    /// Requests of paused instances that land late, and when.
    late: BTreeMap<OpId, Time>,
    /// What each instance was and how it ended, for the report.
    lives: BTreeMap<InstanceId, InstanceReport>,
    requests: BTreeMap<OpId, InFlight>,
    next_op: u64,
    workload: Workload,
    parked: VecDeque<Parked>,
    shutdown_scheduled: bool,
    latency: LatencyModel,
    latency_rng: ChaCha8Rng,
    faults: FaultInjector,
    fault_rng: ChaCha8Rng,
    checker: Checker,
    trace: Trace,
    planted_bug: Option<PlantedBug>,
    start: StartMode,
    prepare_machine: Option<fn(&mut Persister)>,
    compact_fences: bool,
    events: u64,
    store_counts: StoreCounts,
    refused: u64,
    producer_waits: u64,
    instance_failure: Option<(String, String)>,
    failed_after_faults_stopped: bool,
    outcome: Outcome,
}

impl World {
    /// The world of `seed`, with the knobs the seed drew.
    pub fn new(seed: u64, knobs: RunKnobs, options: &RunOptions) -> World {
        let max_in_flight = knobs.config.max_in_flight_requests as usize;
        let mut trace = Trace::new(options.trace);
        trace.note(|| format!("seed {seed}"));
        for line in knobs.summary_lines() {
            trace.note(|| line);
        }
        World {
            seed,
            now: Time::ZERO,
            queue: EventQueue::new(),
            store: S3Model::new(),
            instances: BTreeMap::new(),
            candidates: Vec::new(),
            next_instance: 1,
            replacing: 0,
            instance_rng: stream(seed, Stream::Instances),
            identities: BTreeSet::new(),
            held: BTreeMap::new(),
            late: BTreeMap::new(),
            lives: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_op: 0,
            workload: Workload::new(knobs.workload.clone(), stream(seed, Stream::Workload)),
            parked: VecDeque::new(),
            shutdown_scheduled: false,
            latency: LatencyModel::new(knobs.latency.clone()),
            latency_rng: stream(seed, Stream::Latency),
            faults: FaultInjector::new(knobs.faults.clone()),
            fault_rng: stream(seed, Stream::Faults),
            checker: Checker::new(max_in_flight),
            trace,
            planted_bug: options.planted_bug,
            start: options.start,
            prepare_machine: options.prepare_machine,
            compact_fences: options.compact_fences,
            events: 0,
            store_counts: StoreCounts::default(),
            refused: 0,
            producer_waits: 0,
            instance_failure: None,
            failed_after_faults_stopped: false,
            outcome: Outcome::Passed,
            knobs,
        }
    }

    /// Runs to the end, or to the first violation.
    pub fn run(&mut self) {
        if let Err(violation) = self.run_to_end() {
            self.outcome = Outcome::Violated { violation, trace_line: self.trace.len() };
        }
    }

    /// Records that the run panicked (the caller caught it).
    pub fn record_panic(&mut self, message: String) {
        self.outcome = Outcome::Panicked { message, trace_line: self.trace.len() };
    }

    /// What the run did.
    pub fn into_report(self) -> RunReport {
        let mut instances: Vec<InstanceReport> = self.lives.into_values().collect();
        for r in &mut instances {
            if let Some((epoch, acked)) = self.checker.acked_range(r.id) {
                (r.epoch, r.acked) = (epoch, acked);
            }
            if let Some(i) = self.instances.get(&r.id) {
                r.hedges = i.machine.stats().hedges;
                r.end = match i.status {
                    Status::Starting => End::Running,
                    Status::Ready => End::Running,
                    Status::Failed => r.end.clone(),
                    Status::ShutDown => End::ShutDown,
                };
            }
        }
        RunReport {
            instances,
            seed: self.seed,
            sim_time: self.now,
            events: self.events,
            faults: self.faults.counts().clone(),
            store: StoreCounts { objects: self.store.len() as u64, ..self.store_counts },
            checks: self.checker.checks(),
            commits_issued: self.workload.issued(),
            commits_handed_over: self.checker.handed_over(),
            commits_acked: self.checker.acked(),
            commits_refused: self.refused,
            producer_waits: self.producer_waits,
            instance_failure: self.instance_failure,
            failed_after_faults_stopped: self.failed_after_faults_stopped,
            outcome: self.outcome,
            knobs: self.knobs.summary_lines(),
            trace: self.trace.into_lines(),
        }
    }

    fn run_to_end(&mut self) -> Checked {
        let first = self.new_instance_id();
        self.candidates = vec![first];
        let identity = self.knobs.identity;
        self.identities.extend([identity.leader.0, identity.nonce]);
        self.start_instance(first, self.start, identity)?;
        let producers: Vec<ProducerId> = self.workload.producers().collect();
        for producer in producers {
            let at = self.now + self.workload.next_gap(producer);
            self.queue.push(at, Event::Produce(producer));
        }
        while let Some((at, event)) = self.queue.pop() {
            debug_assert!(at >= self.now, "time runs forward");
            self.now = at;
            self.events += 1;
            self.check_limits()?;
            self.dispatch(event)?;
        }
        self.checker.finish(self.now, &self.store)
    }

    fn check_limits(&self) -> Checked {
        let time_limit = Time::ZERO + MAX_SIM_TIME;
        if self.events <= MAX_EVENTS && self.now <= time_limit {
            return Ok(());
        }
        Err(Violation {
            invariant: Invariant::Liveness,
            at: self.now,
            instance: self.leader().unwrap_or(InstanceId(0)),
            detail: format!(
                "the run did not end within {MAX_EVENTS} events and {}s of virtual time",
                MAX_SIM_TIME.as_secs()
            ),
        })
    }

    fn dispatch(&mut self, event: Event) -> Checked {
        match event {
            Event::Produce(producer) => self.on_produce(producer),
            Event::Resume => self.hand_over_parked(),
            Event::Arrive(op) => {
                self.on_arrive(op);
                Ok(())
            }
            Event::Respond(op) => self.on_respond(op),
            Event::Timer(id, generation) => self.on_timer(id, generation),
            Event::Shutdown(id) => self.on_shutdown(id),
            Event::Crash => self.on_crash(),
            Event::Pause(pause) => self.on_pause(pause),
            Event::Unpause(id) => self.on_unpause(id),
            Event::Replace => self.on_replace(),
        }
    }

    // ---- instances -------------------------------------------------------

    fn new_instance_id(&mut self) -> InstanceId {
        let id = InstanceId(self.next_instance);
        self.next_instance += 1;
        id
    }

    /// A leader id and nonce no instance of this run had.
    fn new_identity(&mut self) -> Identity {
        let fresh = |rng: &mut ChaCha8Rng, used: &mut BTreeSet<u64>| loop {
            let n: u64 = rng.random();
            if used.insert(n) {
                return n;
            }
        };
        let leader = LeaderId(fresh(&mut self.instance_rng, &mut self.identities));
        let nonce = fresh(&mut self.instance_rng, &mut self.identities);
        Identity { leader, nonce, jitter_seed: self.instance_rng.random() }
    }

    /// The instance producers hand commits to: the first of the newest
    /// generation that is ready, else one still recovering, else (unless a
    /// new generation is on its way) one that ended: it refuses. Paused and
    /// crashed instances are skipped.
    fn leader(&self) -> Option<InstanceId> {
        let alive: Vec<&Instance> =
            self.candidates.iter().filter_map(|id| self.instances.get(id)).filter(|i| !i.is_paused()).collect();
        let first = |status: Status| alive.iter().find(|i| i.status == status).map(|i| i.id);
        let ended = || alive.first().map(|i| i.id).filter(|_| self.replacing == 0);
        first(Status::Ready).or_else(|| first(Status::Starting)).or_else(ended)
    }

    fn start_instance(&mut self, id: InstanceId, start: StartMode, identity: Identity) -> Checked {
        let config = self.knobs.config.clone();
        let (mut machine, how) = match start {
            StartMode::Resume => {
                let start = StartPoint { position: Position(0), next_commit: CommitSeq(0), epoch: Epoch::default() };
                (Persister::resume(config, identity, start), "resume at p0 #0")
            }
            StartMode::Recover => (Persister::recover(config, identity), "recover"),
        };
        if let Some(prepare) = self.prepare_machine {
            prepare(&mut machine);
        }
        self.instances.insert(id, Instance::new(id, machine));
        let leader = identity.leader;
        self.lives.insert(
            id,
            InstanceReport {
                id,
                leader,
                epoch: Epoch::default(),
                acked: CommitRange::new(CommitSeq(0), CommitSeq(0)),
                end: End::Running,
                zombie: false,
                hedges: 0,
            },
        );
        self.trace.line(self.now, id, || format!("start: {how} as {leader}"));
        self.checker.on_start(self.now, id)?;
        self.drain(id)?;
        self.after_step(id)
    }

    /// Feeds one input that cannot be refused, then drains.
    fn feed(&mut self, id: InstanceId, input: Input) -> Checked {
        let Some(instance) = self.instances.get_mut(&id) else {
            return Ok(());
        };
        if let Err(refused) = instance.machine.handle(self.now, input) {
            return Err(Violation {
                invariant: Invariant::Contract,
                at: self.now,
                instance: id,
                detail: format!("an input other than a commit was refused: {refused}"),
            });
        }
        self.drain(id)?;
        self.after_step(id)
    }

    /// Step 2 of the driving rule: carry out every action, in order.
    fn drain(&mut self, id: InstanceId) -> Checked {
        while let Some(action) = self.instances.get_mut(&id).and_then(|i| i.machine.poll_action()) {
            self.execute(id, action)?;
        }
        Ok(())
    }

    fn after_step(&mut self, id: InstanceId) -> Checked {
        if self.checker.checkpoint_due() {
            self.checker.checkpoint_store(self.now, id, &self.store)?;
        }
        let Some(instance) = self.instances.get(&id) else {
            return Ok(());
        };
        let window = WindowState {
            window_len: instance.machine.window_len(),
            machine_outstanding: instance.machine.outstanding_requests(),
            driver_outstanding: instance.in_flight.len(),
        };
        self.checker.after_step(self.now, id, window)
    }

    fn instance(&mut self, id: InstanceId) -> &mut Instance {
        match self.instances.get_mut(&id) {
            Some(instance) => instance,
            None => unreachable!("{id} acted without being alive"),
        }
    }

    fn execute(&mut self, id: InstanceId, action: Action) -> Checked {
        let now = self.now;
        match action {
            Action::Put(put) => self.send_put(id, put),
            Action::Head { request, position, key } => {
                // Recovery's read-back: hundreds of uneventful HEADs.
                let quiet = self.compact_fences && self.instance(id).status == Status::Starting;
                self.send_traced(id, request, StoreOp::Head { position, key }, quiet);
            }
            Action::List { request, prefix, max_keys } => self.send(id, request, StoreOp::List { prefix, max_keys }),
            Action::Probe { request } => self.send(id, request, StoreOp::Probe),
            Action::SetTimer { at } => {
                let generation = self.instance(id).timer.set(at);
                self.queue.push(at.max(now), Event::Timer(id, generation));
                self.trace.line(now, id, || format!("timer {}", TraceTime(at).to_string().trim()));
            }
            Action::CancelTimer => {
                self.instance(id).timer.cancel();
                self.trace.line(now, id, || "timer cancel".into());
            }
            Action::Accepted { commits } => {
                self.trace.line(now, id, || format!("accepted {}", Range(commits)));
                self.checker.on_accepted(now, id, commits)?;
            }
            Action::Durable { commits } => {
                self.trace.line(now, id, || format!("ack {}", Range(commits)));
                self.checker.on_durable(now, id, commits, &self.store)?;
            }
            Action::ProducersMustWait => {
                self.instance(id).producers_must_wait = true;
                self.producer_waits += 1;
                self.trace.line(now, id, || "producers must wait".into());
            }
            Action::ProducersMayContinue => {
                self.instance(id).producers_must_wait = false;
                self.queue.push(now, Event::Resume);
                self.trace.line(now, id, || "producers may continue".into());
            }
            Action::Ready { next_commit, epoch } => {
                self.instance(id).status = Status::Ready;
                self.queue.push(now, Event::Resume);
                let cost = self.instance(id).machine.stats().recovery.clone();
                self.trace.line(now, id, || {
                    format!(
                        "ready next {next_commit} {epoch} after {} list, {} heads, {} fences",
                        cost.lists, cost.heads, cost.puts
                    )
                });
                let recovery = (cost.lists > 0).then_some((cost, self.instance(id).heard));
                self.checker.on_ready(now, id, next_commit, epoch, recovery)?;
            }
            Action::Failed { commits, failure } => {
                self.instance(id).status = Status::Failed;
                self.trace.line(now, id, || format!("FAILED leaving {}: {failure}", Range(commits)));
                if let Some(life) = self.lives.get_mut(&id) {
                    life.end = End::Failed(failure.clone());
                }
                if !matches!(failure, Failure::Fenced { .. } | Failure::TakeoverLost { .. }) {
                    self.instance_failure = Some((failure_kind(&failure), failure.to_string()));
                    self.failed_after_faults_stopped = !self.faults.is_active();
                }
                self.checker.on_failed(now, id, commits, &failure)?;
                self.queue.push(now, Event::Resume);
            }
            Action::ShutdownComplete => {
                self.instance(id).status = Status::ShutDown;
                self.trace.line(now, id, || "shutdown complete".into());
                self.checker.on_shutdown_complete(now, id)?;
            }
        }
        Ok(())
    }

    // ---- the workload ----------------------------------------------------

    fn on_produce(&mut self, producer: ProducerId) -> Checked {
        let Some((index, payload)) = self.workload.next_commit(producer) else {
            return Ok(());
        };
        if let Some(change) = self.faults.on_commit_issued(index, self.now) {
            self.trace_phase(change);
        }
        self.schedule_takeovers(index);
        self.parked.push_back(Parked { producer, index, payload });
        self.hand_over_parked()
    }

    /// Hands parked commits to the leader, oldest first, while it takes them.
    /// A failed leader is handed them too: it must refuse them.
    fn hand_over_parked(&mut self) -> Checked {
        while self.leader_takes_commits() {
            let Some(parked) = self.parked.pop_front() else {
                break;
            };
            self.hand_over(parked)?;
        }
        self.maybe_request_shutdown();
        Ok(())
    }

    fn leader_takes_commits(&self) -> bool {
        let leader = self.leader().and_then(|id| self.instances.get(&id));
        leader.is_some_and(|l| l.takes_commits() || l.has_ended())
    }

    fn hand_over(&mut self, parked: Parked) -> Checked {
        let Some(id) = self.leader() else {
            return Ok(());
        };
        let label = format!("{} c{}", parked.producer, parked.index);
        if self.give(id, parked.payload, label)? {
            let at = self.now + self.workload.next_gap(parked.producer);
            self.queue.push(at, Event::Produce(parked.producer));
        }
        Ok(())
    }

    /// Hands one commit to instance `id`; whether it took it (a producer
    /// whose commit is refused stops).
    fn give(&mut self, id: InstanceId, payload: Bytes, label: String) -> Result<bool, Violation> {
        let now = self.now;
        let machine = &mut self.instance(id).machine;
        let seq = machine.next_commit_seq();
        let len = payload.len() as u64;
        let taken = match machine.handle(now, Input::CommitArrived(payload.clone())) {
            Ok(()) => {
                self.trace.line(now, id, || format!("commit {seq} {} {label}", Size(len)));
                self.checker.on_commit(now, id, seq, payload)?;
                true
            }
            Err(refused) => {
                self.refused += 1;
                self.trace.line(now, id, || format!("refused {label}: {refused}"));
                self.checker.on_refused(now, id, &refused)?;
                false
            }
        };
        self.drain(id)?;
        self.after_step(id)?;
        Ok(taken)
    }

    /// Once every commit is handed over, or every leader of the newest
    /// generation failed, the application asks for a shutdown.
    fn maybe_request_shutdown(&mut self) {
        if self.shutdown_scheduled {
            return;
        }
        let done = self.workload.is_exhausted() && self.parked.is_empty();
        let alive = self.candidates.iter().filter_map(|id| self.instances.get(id));
        let gave_up = self.replacing == 0 && alive.clone().count() > 0 && alive.clone().all(Instance::has_ended);
        if !(done || gave_up) {
            return;
        }
        self.shutdown_scheduled = true;
        let at = self.now + self.knobs.shutdown_delay;
        self.queue.push(at, Event::Shutdown(None));
    }

    fn on_shutdown(&mut self, target: Option<InstanceId>) -> Checked {
        if target.is_none() {
            if let Some(change) = self.faults.stop() {
                self.trace_phase(change);
            }
        }
        let ids: Vec<InstanceId> = match target {
            Some(id) => vec![id],
            None => self.instances.keys().copied().collect(),
        };
        for id in ids {
            let Some(instance) = self.instances.get_mut(&id) else {
                continue;
            };
            if instance.has_ended() || instance.shutdown_requested || instance.is_paused() {
                continue;
            }
            instance.shutdown_requested = true;
            self.trace.line(self.now, id, || "shutdown requested".into());
            self.feed(id, Input::ShutdownRequested)?;
        }
        Ok(())
    }

    // ---- takeovers -------------------------------------------------------

    /// Crashes and pauses due when the workload issues commit `index`.
    fn schedule_takeovers(&mut self, index: u64) {
        let t = &self.knobs.takeovers;
        let crashes = t.crashes.iter().filter(|c| **c == index).count();
        let pauses: Vec<Duration> = t.zombies.iter().filter(|z| z.at_commit == index).map(|z| z.pause).collect();
        let delay = t.trigger_delay;
        for _ in 0..crashes {
            let at = self.now + uniform_duration(&mut self.instance_rng, Duration::ZERO, delay);
            self.queue.push(at, Event::Crash);
        }
        for pause in pauses {
            let at = self.now + uniform_duration(&mut self.instance_rng, Duration::ZERO, delay);
            self.queue.push(at, Event::Pause(pause));
        }
    }

    /// The leader the next crash or pause strikes: present, not ended, not paused.
    fn live_leader(&self) -> Option<InstanceId> {
        if self.shutdown_scheduled {
            return None;
        }
        self.leader().filter(|id| self.instances.get(id).is_some_and(|i| !i.has_ended() && !i.shutdown_requested))
    }

    /// Drops the leader: its requests still land, their answers find nobody.
    fn on_crash(&mut self) -> Checked {
        let Some(id) = self.live_leader() else {
            return Ok(());
        };
        self.faults.count(FaultClass::Crash);
        let crashed = self.instances.remove(&id);
        if let Some(life) = self.lives.get_mut(&id) {
            life.end = End::Crashed;
            life.hedges = crashed.map_or(0, |i| i.machine.stats().hedges);
        }
        self.trace.line(self.now, "W", || format!("crash {id}"));
        self.checker.on_crash(self.now, id, &self.store)?;
        self.schedule_replacement();
        Ok(())
    }

    fn schedule_replacement(&mut self) {
        self.replacing += 1;
        self.queue.push(self.now + self.knobs.takeovers.restart_delay, Event::Replace);
    }

    /// Pauses the leader: its timer and answers are held back, some of its
    /// requests land late, and a new leader takes over meanwhile.
    fn on_pause(&mut self, pause: Duration) -> Checked {
        let Some(id) = self.live_leader() else {
            return Ok(());
        };
        self.faults.count(FaultClass::Zombie);
        let until = self.now + pause;
        let instance = self.instance(id);
        instance.paused_until = Some(until);
        let in_flight: Vec<OpId> = instance.in_flight.iter().copied().collect();
        if let Some(life) = self.lives.get_mut(&id) {
            life.zombie = true;
        }
        let latest = pause.saturating_sub(Duration::from_micros(1));
        for op in in_flight {
            if chance(&mut self.instance_rng, 0.5) {
                let at = self.now + uniform_duration(&mut self.instance_rng, Duration::ZERO, latest);
                self.late.insert(op, at);
            }
        }
        self.trace.line(self.now, "W", || format!("pause {id} until {}", TraceTime(until).to_string().trim()));
        self.checker.checkpoint_store(self.now, id, &self.store)?;
        self.queue.push(until, Event::Unpause(id));
        self.schedule_replacement();
        Ok(())
    }

    /// A zombie wakes up: it hears what was held back, and the application,
    /// unaware, hands it one more commit and later asks it to shut down.
    fn on_unpause(&mut self, id: InstanceId) -> Checked {
        let Some(instance) = self.instances.get_mut(&id) else {
            return Ok(());
        };
        instance.paused_until = None;
        let timer = std::mem::take(&mut instance.timer_held);
        self.trace.line(self.now, "W", || format!("resume {id}"));
        for op in self.held.remove(&id).unwrap_or_default() {
            if let Some(flight) = self.requests.remove(&op) {
                self.deliver(flight)?;
            }
        }
        if timer {
            self.trace.line(self.now, id, || "timer fired (held)".into());
            self.feed(id, Input::TimerFired)?;
        }
        if self.instances.get(&id).is_some_and(Instance::takes_commits) {
            let payload = Bytes::from(format!("stray commit handed to zombie {id}"));
            self.give(id, payload, "stray".into())?;
        }
        self.queue.push(self.now + Duration::from_secs(1), Event::Shutdown(Some(id)));
        Ok(())
    }

    /// A new generation: one instance, or two recovering from one listing.
    fn on_replace(&mut self) -> Checked {
        self.replacing -= 1;
        if self.shutdown_scheduled {
            return Ok(());
        }
        let dual = chance(&mut self.instance_rng, self.knobs.takeovers.dual_recovery);
        let ids: Vec<InstanceId> = (0..1 + u32::from(dual)).map(|_| self.new_instance_id()).collect();
        if dual {
            self.faults.count(FaultClass::DualRecovery);
        }
        self.candidates = ids.clone();
        for id in ids {
            let identity = self.new_identity();
            self.start_instance(id, StartMode::Recover, identity)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, id: InstanceId, generation: TimerGeneration) -> Checked {
        let Some(instance) = self.instances.get_mut(&id) else {
            return Ok(());
        };
        if !instance.timer.fire(generation) {
            return Ok(());
        }
        if instance.is_paused() {
            instance.timer_held = true;
            return Ok(());
        }
        self.trace.line(self.now, id, || "timer fired".into());
        self.feed(id, Input::TimerFired)
    }

    fn trace_phase(&mut self, change: PhaseChange) {
        self.trace.line(self.now, "W", || match change {
            PhaseChange::BurstStarted { until } => {
                format!("burst: every request fails until {}", TraceTime(until).to_string().trim())
            }
            PhaseChange::FaultsStopped => "faults stop".into(),
        });
    }

    // ---- requests --------------------------------------------------------

    fn send_put(&mut self, id: InstanceId, put: PutRequest) {
        let tag = put.metadata.iter().find(|(k, _)| k == TAG_METADATA_KEY).and_then(|(_, v)| ObjectTag::parse(v).ok());
        let (position, request, len) = (put.position, put.request, put.body.len() as u64);
        let fence = tag.as_ref().is_some_and(|t| t.header.kind == ObjectKind::Fence);
        let quiet = fence && self.compact_fences;
        let mut trace = std::mem::take(&mut self.trace);
        if !quiet {
            trace.line(self.now, id, || {
                let commits = match tag {
                    None => "untagged".to_string(),
                    Some(t) if t.header.kind == ObjectKind::Fence => format!("fence next {}", t.header.first_seq),
                    Some(t) => {
                        let start = t.header.first_seq;
                        Range(CommitRange::new(start, start.plus(u64::from(t.header.count)))).to_string()
                    }
                };
                format!("put {position} {request} {commits} {}", Size(len))
            });
        }
        self.trace = trace;
        let object = StoredObject { body: put.body, metadata: put.metadata };
        self.send_traced(id, request, StoreOp::Put { position, key: put.key, object }, quiet);
    }

    fn send(&mut self, id: InstanceId, request: RequestId, op: StoreOp) {
        self.send_traced(id, request, op, false);
    }

    fn send_traced(&mut self, id: InstanceId, request: RequestId, op: StoreOp, quiet: bool) {
        let effect = self.faults.inject(self.now, op.kind(), &mut self.fault_rng);
        let timing = self.latency.timing(&mut self.latency_rng, op.body_len());
        let plan = RequestPlan::new(timing, effect, self.knobs.request_timeout);
        let op_id = OpId(self.next_op);
        self.next_op += 1;
        if !matches!(op, StoreOp::Put { .. }) && !quiet {
            let name = op.name();
            self.trace.line(self.now, id, || format!("{name} {request}"));
        }
        if let Some(class) = plan.class {
            let lands: Vec<String> =
                plan.arrivals.iter().map(|d| TraceTime(self.now + *d).to_string().trim().to_owned()).collect();
            let when =
                if lands.is_empty() { "never lands".to_string() } else { format!("lands {}", lands.join(" and ")) };
            self.trace.line(self.now, "W", || format!("fault {class} on {request}: {when}"));
        }
        self.store_counts.slow_timeouts += u64::from(plan.slow_timeout);
        self.instance(id).in_flight.insert(op_id);
        self.requests.insert(
            op_id,
            InFlight {
                id: op_id,
                quiet,
                instance: id,
                request,
                op,
                processing: timing.processing,
                fault: plan.fault,
                answer: None,
            },
        );
        for after in plan.arrivals {
            self.queue.push(self.now + after, Event::Arrive(op_id));
        }
        self.queue.push(self.now + plan.answer_after, Event::Respond(op_id));
    }

    /// A request reaches the store and is applied, whoever still waits for it.
    fn on_arrive(&mut self, op: OpId) {
        let now = self.now;
        if let Some(at) = self.late.remove(&op) {
            if at > now {
                self.queue.push(at, Event::Arrive(op));
                return;
            }
        }
        let Some(flight) = self.requests.get_mut(&op) else {
            return;
        };
        let (answer, said) = match &flight.op {
            StoreOp::Put { key, object, .. } => {
                self.store_counts.puts += 1;
                let planted = self
                    .planted_bug
                    .take_if(|bug| *bug == PlantedBug::CreatedWithoutWriting && !self.store.contains(key));
                let result = match planted {
                    Some(_) => PutResult::Created,
                    None => self.store.put_if_absent(key, object.clone(), now, flight.processing),
                };
                let (outcome, said) = match result {
                    PutResult::Created if planted.is_some() => {
                        (PutOutcome::Created, "created [planted bug: not written]")
                    }
                    PutResult::Created => (PutOutcome::Created, "created"),
                    PutResult::AlreadyExists => {
                        self.store_counts.already_exists += 1;
                        (PutOutcome::AlreadyExists, "412 exists")
                    }
                    PutResult::Conflict => {
                        self.store_counts.conflicts += 1;
                        (PutOutcome::Failed(Fault::Conflict), "409 conflict")
                    }
                };
                (Answer::Put(outcome), said.to_string())
            }
            StoreOp::Head { key, .. } => {
                self.store_counts.heads += 1;
                let outcome = match self.store.get(key) {
                    Some(object) => {
                        HeadOutcome::Found { tag: object.metadata_value(TAG_METADATA_KEY).map(str::to_owned) }
                    }
                    None => HeadOutcome::NotFound,
                };
                let said = if matches!(outcome, HeadOutcome::NotFound) { "404" } else { "found" };
                (Answer::Head(outcome), said.to_string())
            }
            StoreOp::List { prefix, max_keys } => {
                self.store_counts.lists += 1;
                let page = self.store.list(prefix, *max_keys as usize, None);
                let said = format!("{} keys{}", page.keys.len(), if page.truncated { " truncated" } else { "" });
                let outcome = ListOutcome::Listed { keys: page.keys, truncated: page.truncated };
                (Answer::List(outcome), said)
            }
            StoreOp::Probe => (Answer::Probe, "alive".to_string()),
        };
        let (name, request) = (flight.op.name(), flight.request);
        flight.answer = Some(answer);
        if !(flight.quiet && (said == "created" || said == "found")) {
            self.trace.line(now, "S3", || format!("{name} {request} {said}"));
        }
    }

    /// A request's answer reaches its instance, if it is still there.
    fn on_respond(&mut self, op: OpId) -> Checked {
        let Some(flight) = self.requests.get(&op) else {
            return Ok(());
        };
        let id = flight.instance;
        if self.instances.get(&id).is_some_and(Instance::is_paused) {
            // Held back; the request itself may still land meanwhile.
            self.held.entry(id).or_default().push(op);
            return Ok(());
        }
        match self.requests.remove(&op) {
            Some(flight) => self.deliver(flight),
            None => Ok(()),
        }
    }

    /// Hands an answer to its instance (dropped if it crashed).
    fn deliver(&mut self, flight: InFlight) -> Checked {
        let id = flight.instance;
        let Some(instance) = self.instances.get_mut(&id) else {
            let request = flight.request;
            self.trace.line(self.now, "W", || format!("drop answer to {request}: {id} is gone"));
            return Ok(());
        };
        instance.in_flight.remove(&flight.id);
        let (name, request, quiet) = (flight.op.name(), flight.request, flight.quiet);
        let input = flight.input();
        if instance.status == Status::Starting {
            let heard = &mut instance.heard;
            match &input {
                Input::ListFinished { outcome: ListOutcome::Failed(_), .. } => heard.failed_lists += 1,
                Input::HeadFinished { outcome: HeadOutcome::Failed(_), .. } => heard.failed_heads += 1,
                // A 404 after a 412 sends the PUT again: a retry.
                Input::HeadFinished { outcome: HeadOutcome::NotFound, .. } => heard.failed_puts += 1,
                Input::PutFinished { outcome: PutOutcome::Failed(_), .. } => heard.failed_puts += 1,
                Input::PutFinished { outcome: PutOutcome::AlreadyExists, .. } => heard.put_412s += 1,
                _ => {}
            }
        }
        let uneventful = quiet
            && matches!(
                input,
                Input::PutFinished { outcome: PutOutcome::Created, .. }
                    | Input::HeadFinished { outcome: HeadOutcome::Found { .. }, .. }
            );
        if !uneventful {
            self.trace.line(self.now, id, || format!("<- {request} {name}: {}", describe(&input)));
        }
        self.feed(id, input)
    }
}

/// An answer, briefly.
fn describe(input: &Input) -> String {
    match input {
        Input::PutFinished { outcome, .. } => match outcome {
            PutOutcome::Created => "created".into(),
            PutOutcome::AlreadyExists => "412".into(),
            PutOutcome::Failed(fault) => format!("failed, {fault}"),
        },
        Input::HeadFinished { outcome, .. } => match outcome {
            HeadOutcome::Found { tag } => format!("found {}", tag.as_deref().unwrap_or("untagged")),
            HeadOutcome::NotFound => "404".into(),
            HeadOutcome::Failed(fault) => format!("failed, {fault}"),
        },
        Input::ListFinished { outcome, .. } => match outcome {
            ListOutcome::Listed { keys, truncated } => format!("{} keys, truncated {truncated}", keys.len()),
            ListOutcome::Failed(fault) => format!("failed, {fault}"),
        },
        other => format!("{other:?}"),
    }
}
