//! The madsim level: the real driver ([`s3wal::driver::Log`]) runs on madsim
//! nodes against one shared [`SimStore`], while a supervisor crashes,
//! restarts and pauses the nodes. Only under `RUSTFLAGS="--cfg madsim"`.
//!
//! One seed decides everything: the pure world's knobs ([`RunKnobs`]:
//! config, workload, latency, faults), plus what this level adds — a tighter
//! byte budget in half the runs (backpressure), crashes and zombies at
//! chosen commits, whether the application reads the stream of durable
//! commits, and how many append futures it drops (fire-and-forget appends
//! watched through the watermark only). madsim's scheduler and clock are
//! seeded with the same number, so the same seed gives the same run.
//!
//! A writer node runs the application: it opens the log (retrying while
//! recovery fails), runs the producers as tasks, awaits each kept future in
//! a task of its own, and shuts the log down when the workload is done. A
//! log that fails is shut down and opened anew; a fenced one means another
//! instance took over, and the node stops. After the writers are done the
//! faults stop and a last instance must open, acknowledge a few commits and
//! shut down cleanly (liveness). Then the library's reader reads the log
//! back and the [`DriverChecker`] judges everything. The whole run has a
//! limit in virtual time: a hang is a violation, not a stuck test.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use madsim::runtime::{Handle, NodeHandle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use s3wal::driver::{AppendError, Log, OpenError, OpenOptions};
use s3wal::reader::{ReadError, Reader};
use s3wal::{CommitSeq, Config, Time};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::driver_checker::{DriverChecker, DriverInvariant, DriverViolation, InstanceNo};
use crate::faults::{FaultCounts, PhaseChange};
use crate::knobs::RunKnobs;
use crate::s3_model::S3Model;
use crate::sampling::{chance, log_uniform_u64, stream, uniform_duration, Stream};
use crate::sim_store::{SimStore, SimStoreCounts, SimStoreKnobs};
use crate::trace::TraceTime;
use crate::workload::{ProducerId, Workload};

/// What `Log::open` returns, boxed.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Log, OpenError>> + Send>>;

/// How the application opens a log. Tests plant the library's deliberate
/// bugs through it (`Log::open_planted`, behind s3wal's `planted-bugs`
/// feature) without this crate needing the feature.
pub type Opener = Arc<dyn Fn(SimStore, OpenOptions) -> OpenFuture + Send + Sync>;

/// `Log::open`, as it is.
pub fn plain_open() -> Opener {
    Arc::new(|store, options| Box::pin(Log::open(store, options)))
}

/// How to run a seed at the madsim level.
#[derive(Clone)]
pub struct DriverRunOptions {
    /// Commits the workload issues (the liveness phase adds a few).
    pub commits: u64,
    /// How the application opens a log.
    pub open: Opener,
    /// The most virtual time a run may take before it counts as hung.
    pub time_limit: Duration,
    /// Whether the report's trace has a line per store request.
    pub log_requests: bool,
}

impl Default for DriverRunOptions {
    fn default() -> Self {
        DriverRunOptions {
            commits: 200,
            open: plain_open(),
            time_limit: Duration::from_secs(3600),
            log_requests: false,
        }
    }
}

impl std::fmt::Debug for DriverRunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverRunOptions")
            .field("commits", &self.commits)
            .field("time_limit", &self.time_limit)
            .finish_non_exhaustive()
    }
}

/// Something the supervisor does to the writer's node.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Disruption {
    /// Kill the node (the application and the driver with it). After
    /// `down`, restart it (`same_node`: its application starts again) or
    /// start a new node.
    Crash {
        /// How long the writer stays down.
        down: Duration,
        /// Restart the same node rather than start another.
        same_node: bool,
    },
    /// Pause the node; a new node opens the log (recovery, fencing) and
    /// carries on; the old one resumes after `paused`, a zombie.
    Zombie {
        /// How long the old node stays paused.
        paused: Duration,
    },
    /// A new node opens the log while the old one keeps running: two live
    /// instances, one of which must learn it was fenced.
    Takeover,
}

/// Everything a seed decides before a madsim run.
#[derive(Clone, Debug)]
pub struct DriverKnobs {
    /// The pure world's knobs (the config possibly tightened, see `tight_budget`).
    pub run: RunKnobs,
    /// Whether the budget and batch threshold were shrunk so producers wait.
    pub tight_budget: bool,
    /// Disruptions, each when the workload issues that commit (0-based).
    pub disruptions: Vec<(u64, Disruption)>,
    /// The chance that a new writer comes as two nodes recovering at once.
    pub dual_recovery: f64,
    /// The most a disruption lags behind the commit that triggers it.
    pub trigger_delay: Duration,
    /// Whether the application reads the stream of durable commits.
    pub stream: bool,
    /// How often the application drops an append's future unawaited.
    pub drop_chance: f64,
    /// Commits the last instance must acknowledge once faults stopped.
    pub liveness_commits: u32,
    /// Faults stop by this virtual time even if the workload has not got
    /// to its "faults stop" commit (a writer that cannot open issues none).
    pub faults_deadline: Duration,
}

impl DriverKnobs {
    /// The knobs `seed` gives a run of `commits` commits.
    pub fn draw(seed: u64, commits: u64) -> DriverKnobs {
        let mut run = RunKnobs::draw(seed, commits);
        let mut rng = own_stream(seed, 1);
        let tight_budget = chance(&mut rng, 0.5);
        if tight_budget {
            let mut config: Config = run.config.get().clone();
            let max_commit = run.workload.sizes.max() as u64;
            config.batch_size_threshold = log_uniform_u64(&mut rng, 200, 16 << 10);
            let floor = config.batch_size_threshold.max(2 * max_commit);
            config.byte_budget = log_uniform_u64(&mut rng, floor, 4 * floor);
            match config.clone().validate() {
                Ok(valid) => run.config = valid,
                Err(e) => unreachable!("the madsim level drew an invalid config {config:?}: {e}"),
            }
        }
        // The pure world's takeover plan for this seed (crashes, zombies,
        // concurrent recoveries), plus what only real nodes can do: a
        // restart of the same node, a takeover while the old writer keeps
        // running, and pauses longer than the client's request timeout.
        let t = &run.takeovers;
        let mut disruptions: Vec<(u64, Disruption)> = Vec::new();
        for &at in &t.crashes {
            disruptions.push((at, Disruption::Crash { down: t.restart_delay, same_node: chance(&mut rng, 0.7) }));
        }
        for z in &t.zombies {
            disruptions.push((z.at_commit, Disruption::Zombie { paused: z.pause }));
        }
        if chance(&mut rng, 0.25) {
            disruptions.push((rng.random_range(0..commits.max(1)), Disruption::Takeover));
        }
        if chance(&mut rng, 0.2) {
            let paused = uniform_duration(&mut rng, Duration::from_secs(5), Duration::from_secs(30));
            disruptions.push((rng.random_range(0..commits.max(1)), Disruption::Zombie { paused }));
        }
        disruptions.sort_by_key(|(at, _)| *at);
        let drop_chance = if chance(&mut rng, 0.5) { 0.0 } else { rng.random_range(0.05..0.5) };
        DriverKnobs {
            dual_recovery: run.takeovers.dual_recovery,
            trigger_delay: run.takeovers.trigger_delay,
            run,
            tight_budget,
            disruptions,
            stream: chance(&mut rng, 0.5),
            drop_chance,
            liveness_commits: rng.random_range(1..=20),
            faults_deadline: uniform_duration(&mut rng, Duration::from_secs(60), Duration::from_secs(180)),
        }
    }

    /// The store's part of the knobs.
    pub fn store_knobs(&self) -> SimStoreKnobs {
        SimStoreKnobs {
            latency: self.run.latency.clone(),
            faults: self.run.faults.clone(),
            request_timeout: self.run.request_timeout,
        }
    }

    /// The knobs, one line each.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = self.run.summary_lines();
        let disruptions: Vec<String> = self.disruptions.iter().map(|(at, d)| format!("@{at} {d:?}")).collect();
        lines.push(format!(
            "madsim tight-budget {} stream {} drop {:.0}% liveness {} faults-deadline {}s disruptions [{}] dual {:.0}%",
            self.tight_budget,
            self.stream,
            self.drop_chance * 100.0,
            self.liveness_commits,
            self.faults_deadline.as_secs(),
            disruptions.join(", "),
            self.dual_recovery * 100.0
        ));
        lines
    }
}

/// Disruptions carried out, by kind.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DisruptionCounts {
    /// Writer nodes killed.
    pub kills: u32,
    /// Of those, restarted (the same node's application starts again).
    pub restarts: u32,
    /// Writer nodes paused while a new one took over, then resumed.
    pub zombies: u32,
    /// New writers started while the old one kept running.
    pub takeovers: u32,
    /// Second writers started at the same moment as a new one.
    pub duals: u32,
}

impl DisruptionCounts {
    /// Adds another run's counts.
    pub fn merge(&mut self, o: &DisruptionCounts) {
        self.kills += o.kills;
        self.restarts += o.restarts;
        self.zombies += o.zombies;
        self.takeovers += o.takeovers;
        self.duals += o.duals;
    }
}

impl std::fmt::Display for DisruptionCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} kills ({} restarts), {} zombies, {} takeovers, {} dual recoveries",
            self.kills, self.restarts, self.zombies, self.takeovers, self.duals
        )
    }
}

/// What one madsim run did.
#[derive(Clone, Debug)]
pub struct DriverReport {
    /// The seed.
    pub seed: u64,
    /// Virtual time at the end.
    pub sim_time: Time,
    /// The knobs, one line each.
    pub knobs: Vec<String>,
    /// Faults injected, per class.
    pub faults: FaultCounts,
    /// What reached the store.
    pub store: SimStoreCounts,
    /// Instances opened (successful `Log::open`s).
    pub instances: u32,
    /// `Log::open`s that failed.
    pub failed_opens: u32,
    /// Disruptions carried out, by kind.
    pub disruptions: DisruptionCounts,
    /// Appends that had to wait for the byte budget.
    pub producer_waits: u64,
    /// Commits appended, acknowledged, and resolved with an error.
    pub appended: u64,
    /// See `appended`.
    pub acked: u64,
    /// See `appended`.
    pub failed: u64,
    /// Invariant checks made.
    pub checks: u64,
    /// The first violation, if any.
    pub violation: Option<DriverViolation>,
    /// The run's events, one line each.
    pub trace: Vec<String>,
}

impl DriverReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// One line: the seed, what happened, and the outcome.
    pub fn summary(&self) -> String {
        format!(
            "seed {}: {} at {}: {} instances ({} opens failed), {}, {} appended ({} waited), {} acked, {} failed, {} faults, {} checks",
            self.seed,
            self.violation.as_ref().map_or("passed".to_string(), |v| format!("FAILED ({v})")),
            TraceTime(self.sim_time).to_string().trim(),
            self.instances,
            self.failed_opens,
            self.disruptions,
            self.appended,
            self.producer_waits,
            self.acked,
            self.failed,
            self.faults.total(),
            self.checks
        )
    }

    /// The whole report: summary, knobs, fault counts and the trace. The
    /// same seed renders the same text, byte for byte.
    pub fn render(&self) -> String {
        let mut out = vec![self.summary()];
        out.extend(self.knobs.iter().cloned());
        let faults: Vec<String> = self.faults.iter().filter(|(_, n)| *n > 0).map(|(c, n)| format!("{c}={n}")).collect();
        out.push(format!("faults [{}] store {:?}", faults.join(" "), self.store));
        out.extend(self.trace.iter().cloned());
        out.push(format!("replay: just madsim-seed {} (S3WAL_MADSIM_REQUESTS=1 for every store request)", self.seed));
        out.join("\n")
    }
}

/// Runs one seed at the madsim level and reports. Must run inside a madsim
/// runtime seeded with `seed` (`#[madsim::test]`, or `Runtime::with_seed_and_config`).
pub async fn run_driver_seed(seed: u64, options: &DriverRunOptions) -> DriverReport {
    let knobs = DriverKnobs::draw(seed, options.commits);
    let store = SimStore::new(seed, knobs.store_knobs());
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (violated_tx, violated_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        seed,
        config: knobs.run.config.get().clone(),
        checker: Mutex::new(DriverChecker::new(knobs.run.config.byte_budget)),
        workload: Mutex::new(Workload::new(knobs.run.workload.clone(), stream(seed, Stream::Workload))),
        app_rng: Mutex::new(own_stream(seed, 2)),
        trace: Mutex::new(Vec::new()),
        counters: Mutex::new(Counters::default()),
        events: events_tx,
        violated: violated_tx,
        incarnations: Mutex::new(Vec::new()),
        open: Arc::clone(&options.open),
        store,
        knobs,
    });
    for line in ctx.knobs.summary_lines() {
        ctx.note(line);
    }
    if options.log_requests {
        ctx.store.log_requests();
    }
    let limit = options.time_limit;
    if timeout(limit, supervise(&ctx, events_rx, violated_rx)).await.is_err() {
        let detail = format!("the run did not end within {}s of virtual time", limit.as_secs());
        ctx.fail(DriverInvariant::Liveness, None, detail);
    }
    ctx.report()
}

/// A ChaCha stream of `seed` that the pure world does not read.
fn own_stream(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(0x6d61_6473_696d_0000 + n);
    rng
}

/// How long `shutdown()` may take, retries and all.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20 * 60);
/// How long after `shutdown()` returned every future must have resolved.
const RESOLVE_LIMIT: Duration = Duration::from_secs(60);
/// How long the liveness phase may take, once faults stopped.
const LIVENESS_LIMIT: Duration = Duration::from_secs(10 * 60);
/// At most this many trace lines are kept.
const TRACE_LINES: usize = 20_000;

#[derive(Debug, Default)]
struct Counters {
    failed_opens: u32,
    disruptions: DisruptionCounts,
    producer_waits: u64,
}

/// What the supervisor hears from the nodes.
#[derive(Debug)]
enum Event {
    /// The workload issued commit `index`.
    Reached(u64),
    /// A node's application ended.
    Done { label: String, incarnation: u32 },
}

/// State shared by the supervisor and every node.
struct Ctx {
    seed: u64,
    knobs: DriverKnobs,
    config: Config,
    store: SimStore,
    open: Opener,
    checker: Mutex<DriverChecker>,
    workload: Mutex<Workload>,
    app_rng: Mutex<ChaCha8Rng>,
    trace: Mutex<Vec<String>>,
    counters: Mutex<Counters>,
    events: mpsc::UnboundedSender<Event>,
    violated: watch::Sender<bool>,
    incarnations: Mutex<Vec<(String, u32)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    fn now(&self) -> Time {
        self.store.now()
    }

    fn note(&self, line: String) {
        let requests = self.store.take_request_log();
        let mut trace = lock(&self.trace);
        for r in requests {
            if trace.len() < TRACE_LINES {
                trace.push(r);
            }
        }
        if trace.len() < TRACE_LINES {
            trace.push(format!("{} {line}", TraceTime(self.now())));
        }
    }

    /// Runs one check with the bucket as it is now; the first violation
    /// ends the run.
    fn check(&self, f: impl FnOnce(&mut DriverChecker, Time, &S3Model) -> Result<(), DriverViolation>) {
        let now = self.now();
        let mut checker = lock(&self.checker);
        let before = checker.violation().is_some();
        let _ = self.store.with_model(|model| f(&mut checker, now, model));
        if !before {
            if let Some(v) = checker.violation().cloned() {
                drop(checker);
                self.note(format!("VIOLATION {v}"));
                self.violated.send_replace(true);
            }
        }
    }

    fn fail(&self, invariant: DriverInvariant, instance: Option<InstanceNo>, detail: String) {
        self.check(|c, at, _| {
            c.fail(invariant, at, instance, detail);
            Ok(())
        });
    }

    fn stopped(&self) -> bool {
        *self.violated.borrow()
    }

    fn coin(&self, p: f64) -> bool {
        p > 0.0 && chance(&mut lock(&self.app_rng), p)
    }

    fn next_incarnation(&self, label: &str) -> u32 {
        let mut all = lock(&self.incarnations);
        match all.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                all.push((label.to_owned(), 1));
                1
            }
        }
    }

    fn phase(&self, change: Option<PhaseChange>) {
        match change {
            Some(PhaseChange::BurstStarted { until }) => {
                self.note(format!("burst: every request fails until {}", TraceTime(until).to_string().trim()));
            }
            Some(PhaseChange::FaultsStopped) => self.note("faults stop".into()),
            None => {}
        }
    }

    fn report(&self) -> DriverReport {
        self.note("end".into());
        let checker = lock(&self.checker);
        let (appended, acked, failed) = checker.totals();
        let counters = lock(&self.counters);
        DriverReport {
            seed: self.seed,
            sim_time: self.now(),
            knobs: self.knobs.summary_lines(),
            faults: self.store.fault_counts(),
            store: self.store.counts(),
            instances: checker.instances(),
            failed_opens: counters.failed_opens,
            disruptions: counters.disruptions,
            producer_waits: counters.producer_waits,
            appended,
            acked,
            failed,
            checks: checker.checks(),
            violation: checker.violation().cloned(),
            trace: lock(&self.trace).clone(),
        }
    }
}

// ---- the supervisor -------------------------------------------------------

/// A writer node as the supervisor keeps it.
struct Node {
    label: String,
    handle: NodeHandle,
    /// The incarnation whose `Done` ends this node's part.
    expected: u32,
    done: bool,
}

/// Something the supervisor will do later.
enum Later {
    Disrupt(Disruption),
    Restart(usize),
    NewNode,
    Resume(usize),
}

async fn supervise(ctx: &Arc<Ctx>, mut events: mpsc::UnboundedReceiver<Event>, mut violated: watch::Receiver<bool>) {
    let handle = Handle::current();
    let mut nodes = vec![writer_node(ctx, &handle, 1)];
    let mut disruptions = ctx.knobs.disruptions.clone().into_iter().peekable();
    let mut rng = own_stream(ctx.seed, 3);
    // Restarts, new nodes and resumes to come; no disruption meanwhile.
    let mut later: Vec<(Instant, Later)> = Vec::new();
    let faults_deadline = Instant::now() + ctx.knobs.faults_deadline;
    loop {
        if ctx.stopped() {
            return;
        }
        if later.is_empty() && nodes.iter().all(|n| n.done) {
            break;
        }
        let faults_at = ctx.store.faults_active().then_some(faults_deadline);
        let wake = later.iter().map(|(at, _)| *at).chain(faults_at).min();
        tokio::select! {
            biased;
            _ = violated.changed() => return,
            () = sleep_until_some(wake) => {
                let now = Instant::now();
                if now >= faults_deadline {
                    ctx.phase(ctx.store.stop_faults());
                }
                let due: Vec<Later> = {
                    let (due, keep): (Vec<_>, Vec<_>) = later.drain(..).partition(|(at, _)| *at <= now);
                    later = keep;
                    due.into_iter().map(|(_, l)| l).collect()
                };
                for item in due {
                    match item {
                        Later::Disrupt(disruption) => disrupt(ctx, &handle, &mut nodes, &mut later, &mut rng, disruption),
                        Later::Restart(i) => {
                            ctx.note(format!("restart {}", nodes[i].label));
                            handle.restart(nodes[i].handle.id());
                            maybe_dual(ctx, &handle, &mut nodes, &mut rng);
                        }
                        Later::NewNode => new_writer(ctx, &handle, &mut nodes, &mut rng),
                        Later::Resume(i) => {
                            ctx.note(format!("resume {}: a zombie now", nodes[i].label));
                            handle.resume(nodes[i].handle.id());
                        }
                    }
                }
            }
            Some(event) = events.recv() => match event {
                Event::Reached(index) => {
                    let due = disruptions.peek().is_some_and(|(at, _)| *at <= index);
                    if due && later.is_empty() {
                        if let Some((_, disruption)) = disruptions.next() {
                            let lag = uniform_duration(&mut rng, Duration::ZERO, ctx.knobs.trigger_delay);
                            later.push((Instant::now() + lag, Later::Disrupt(disruption)));
                        }
                    }
                }
                Event::Done { label, incarnation } => {
                    if let Some(node) = nodes.iter_mut().find(|n| n.label == label && n.expected == incarnation) {
                        node.done = true;
                    }
                }
            },
        }
    }
    ctx.phase(ctx.store.stop_faults());
    liveness_phase(ctx, &handle).await;
    if ctx.stopped() {
        return;
    }
    read_back(ctx).await;
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn writer_node(ctx: &Arc<Ctx>, handle: &Handle, n: u32) -> Node {
    let label = format!("w{n}");
    let (c, l) = (Arc::clone(ctx), label.clone());
    let node = handle
        .create_node()
        .name(label.clone())
        .init(move || {
            // madsim calls this at build() and restart(): count the
            // incarnation now, before the application first runs.
            let incarnation = c.next_incarnation(&l);
            let (ctx, label) = (Arc::clone(&c), l.clone());
            async move { application(ctx, label, incarnation).await }
        })
        .build();
    ctx.note(format!("start node {label}"));
    Node { label, handle: node, expected: 1, done: false }
}

/// A new writer node, and with the run's dual-recovery chance a second
/// one recovering at the same moment.
fn new_writer(ctx: &Arc<Ctx>, handle: &Handle, nodes: &mut Vec<Node>, rng: &mut ChaCha8Rng) {
    let node = writer_node(ctx, handle, nodes.len() as u32 + 1);
    nodes.push(node);
    maybe_dual(ctx, handle, nodes, rng);
}

fn maybe_dual(ctx: &Arc<Ctx>, handle: &Handle, nodes: &mut Vec<Node>, rng: &mut ChaCha8Rng) {
    if chance(rng, ctx.knobs.dual_recovery) {
        lock(&ctx.counters).disruptions.duals += 1;
        ctx.note("dual recovery: a second writer starts at once".into());
        let node = writer_node(ctx, handle, nodes.len() as u32 + 1);
        nodes.push(node);
    }
}

fn disrupt(
    ctx: &Arc<Ctx>,
    handle: &Handle,
    nodes: &mut Vec<Node>,
    later: &mut Vec<(Instant, Later)>,
    rng: &mut ChaCha8Rng,
    disruption: Disruption,
) {
    // The newest node still running is the writer.
    let Some(i) = nodes.iter().rposition(|n| !n.done) else { return };
    let now = Instant::now();
    match disruption {
        Disruption::Crash { down, same_node } => {
            let label = nodes[i].label.clone();
            ctx.note(format!("kill {label} (down {}ms)", down.as_millis()));
            handle.kill(nodes[i].handle.id());
            lock(&ctx.checker).killed(&label);
            let counts = &mut lock(&ctx.counters).disruptions;
            counts.kills += 1;
            counts.restarts += u32::from(same_node);
            if same_node {
                nodes[i].expected += 1;
                later.push((now + down, Later::Restart(i)));
            } else {
                nodes[i].done = true;
                later.push((now + down, Later::NewNode));
            }
        }
        Disruption::Takeover => {
            lock(&ctx.counters).disruptions.takeovers += 1;
            ctx.note(format!("a new node takes over from {}, which keeps running", nodes[i].label));
            let node = writer_node(ctx, handle, nodes.len() as u32 + 1);
            nodes.push(node);
        }
        Disruption::Zombie { paused: pause } => {
            lock(&ctx.counters).disruptions.zombies += 1;
            ctx.note(format!("pause {} for {}ms; a new node takes over", nodes[i].label, pause.as_millis()));
            handle.pause(nodes[i].handle.id());
            later.push((now + pause, Later::Resume(i)));
            new_writer(ctx, handle, nodes, rng);
        }
    }
}

// ---- a writer node's application ------------------------------------------

/// How an instance ended.
enum End {
    /// Shut down cleanly, or failed with the workload done.
    Done,
    /// Failed: open a new one.
    Failed,
    /// Fenced: another instance took over; this node stops.
    Fenced,
}

async fn application(ctx: Arc<Ctx>, label: String, incarnation: u32) {
    let mut failed_opens = 0u32;
    loop {
        if ctx.stopped() {
            break;
        }
        let options = open_options(&ctx);
        let acked_before = lock(&ctx.checker).acked_end();
        let log = match (ctx.open)(ctx.store.clone(), options).await {
            Ok(log) => log,
            Err(e) => {
                ctx.note(format!("{label}: open failed: {e}"));
                lock(&ctx.counters).failed_opens += 1;
                failed_opens += 1;
                sleep(Duration::from_millis(10) * (1 << failed_opens.min(8))).await;
                continue;
            }
        };
        failed_opens = 0;
        match run_instance(&ctx, &label, log, acked_before).await {
            End::Done | End::Fenced => break,
            End::Failed if lock(&ctx.workload).is_exhausted() => break,
            End::Failed => {}
        }
    }
    let _ = ctx.events.send(Event::Done { label, incarnation });
}

fn open_options(ctx: &Ctx) -> OpenOptions {
    OpenOptions {
        config: ctx.config.clone(),
        // madsim's deterministic generator: the same seed, the same identities.
        seed: Some(madsim::rand::random()),
        stream_durable_commits: ctx.knobs.stream,
    }
}

/// Checks every move of the watermark, and the stream if there is one;
/// both end when the driver stops.
fn spawn_observers(ctx: &Arc<Ctx>, log: &Log, no: InstanceNo) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut watermark = log.watch_durable();
    let c = Arc::clone(ctx);
    tasks.push(tokio::spawn(async move {
        while watermark.changed().await.is_ok() {
            let w = *watermark.borrow_and_update();
            c.check(|checker, at, model| checker.watermark(at, no, w, model));
        }
    }));
    if let Some(mut commits) = log.durable_commits() {
        let (c, watermark) = (Arc::clone(ctx), log.watch_durable());
        tasks.push(tokio::spawn(async move {
            while let Some((seq, bytes)) = commits.recv().await {
                let w = *watermark.borrow();
                c.check(|checker, at, _| checker.streamed(at, no, seq, &bytes, w));
            }
        }));
    }
    tasks
}

async fn run_instance(ctx: &Arc<Ctx>, label: &str, log: Log, acked_before: CommitSeq) -> End {
    let first = log.next_seq();
    let mut no = InstanceNo(0);
    ctx.check(|c, at, _| {
        let (opened, checked) = c.opened(at, label, first, acked_before);
        no = opened;
        checked
    });
    ctx.note(format!("{label}: {no} open, {} {}, next {first}", log.leader(), log.epoch()));
    let observers = spawn_observers(ctx, &log, no);
    let waiters: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let producers: Vec<JoinHandle<()>> = lock(&ctx.workload)
        .producers()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|p| tokio::spawn(producer(Arc::clone(ctx), log.clone(), no, p, Arc::clone(&waiters))))
        .collect();
    for p in producers {
        let _ = p.await;
    }
    lock(&ctx.checker).shutdown_called(no);
    let result = match timeout(SHUTDOWN_LIMIT, log.shutdown()).await {
        Ok(result) => result,
        Err(_) => {
            let detail = format!("shutdown() did not return within {}s", SHUTDOWN_LIMIT.as_secs());
            ctx.fail(DriverInvariant::Liveness, Some(no), detail);
            return End::Done;
        }
    };
    let watermark = *log.watch_durable().borrow();
    ctx.note(format!("{label}: {no} shutdown: {result:?}, watermark {watermark}"));
    ctx.check(|c, at, model| c.shutdown_returned(at, no, &result, watermark, model));
    // The last handle: the driver stops, and with it the observers.
    drop(log);
    let waiting: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&waiters));
    await_all(ctx, no, waiting, observers).await;
    match result {
        Ok(()) => End::Done,
        Err(AppendError::Fenced(_)) => End::Fenced,
        Err(_) => End::Failed,
    }
}

/// Every future resolves soon after `shutdown()` returned, and the driver
/// stops once the last handle is gone (its watermark channel closes).
async fn await_all(ctx: &Ctx, no: InstanceNo, waiters: Vec<JoinHandle<()>>, observers: Vec<JoinHandle<()>>) {
    for (tasks, what) in [(waiters, "append futures still unresolved"), (observers, "the driver still running")] {
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if timeout(RESOLVE_LIMIT, all).await.is_err() {
            let detail =
                format!("{what} {}s after shutdown() returned and the log was dropped", RESOLVE_LIMIT.as_secs());
            ctx.fail(DriverInvariant::Liveness, Some(no), detail);
            return;
        }
    }
}

async fn producer(ctx: Arc<Ctx>, log: Log, no: InstanceNo, p: ProducerId, waiters: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    let mut due = Instant::now();
    loop {
        // Gaps below madsim's 1 ms timer resolution add up to a burst.
        due += lock(&ctx.workload).next_gap(p);
        let now = Instant::now();
        if due >= now + Duration::from_millis(1) {
            sleep_until(due).await;
        } else if due + Duration::from_millis(5) < now {
            due = now;
        }
        if log.failure().is_some() || ctx.stopped() {
            return;
        }
        let Some((index, payload)) = lock(&ctx.workload).next_commit(p) else { return };
        ctx.phase(ctx.store.on_commit_issued(index));
        let _ = ctx.events.send(Event::Reached(index));
        let kept = !ctx.coin(ctx.knobs.drop_chance);
        let asked = Instant::now();
        let appended = log.append(payload.clone()).await;
        if asked.elapsed() > Duration::ZERO {
            lock(&ctx.counters).producer_waits += 1;
        }
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => {
                ctx.note(format!("{no}: append refused: {e}"));
                return;
            }
        };
        let (seq, watermark) = (appended.seq, *log.watch_durable().borrow());
        ctx.check(|c, at, _| c.appended(at, no, seq, payload, watermark, kept));
        if kept {
            let (c, watermark) = (Arc::clone(&ctx), log.watch_durable());
            let waiter = tokio::spawn(async move {
                let result = appended.durable().await;
                let w = *watermark.borrow();
                c.check(|checker, at, model| checker.resolved(at, no, seq, result, w, model));
            });
            lock(&waiters).push(waiter);
        }
    }
}

// ---- the end --------------------------------------------------------------

/// Once faults stopped: a new instance opens, acknowledges a few commits
/// and shuts down cleanly, in bounded time.
async fn liveness_phase(ctx: &Arc<Ctx>, handle: &Handle) {
    ctx.note("liveness: a last instance must open, ack and shut down".into());
    let node = handle.create_node().name("last").build();
    let c = Arc::clone(ctx);
    let task = node.spawn(async move { last_instance(c).await });
    if timeout(LIVENESS_LIMIT, task).await.is_err() {
        let detail = format!(
            "after faults stopped, a new instance did not open, acknowledge {} commits and shut down within {}s",
            ctx.knobs.liveness_commits,
            LIVENESS_LIMIT.as_secs()
        );
        ctx.fail(DriverInvariant::Liveness, None, detail);
    }
}

async fn last_instance(ctx: Arc<Ctx>) {
    let acked_before = lock(&ctx.checker).acked_end();
    let log = match (ctx.open)(ctx.store.clone(), open_options(&ctx)).await {
        Ok(log) => log,
        Err(e) => return ctx.fail(DriverInvariant::Liveness, None, format!("after faults stopped, open failed: {e}")),
    };
    let first = log.next_seq();
    let mut no = InstanceNo(0);
    ctx.check(|c, at, _| {
        let (opened, checked) = c.opened(at, "last", first, acked_before);
        no = opened;
        checked
    });
    ctx.note(format!("last: {no} open, {} {}, next {first}", log.leader(), log.epoch()));
    let observers = spawn_observers(&ctx, &log, no);
    let mut appended = Vec::new();
    for i in 0..ctx.knobs.liveness_commits {
        let payload = Bytes::from(format!("liveness commit {i} of seed {}", ctx.seed));
        match log.append(payload.clone()).await {
            Ok(a) => {
                let (seq, w) = (a.seq, *log.watch_durable().borrow());
                ctx.check(|c, at, _| c.appended(at, no, seq, payload, w, true));
                appended.push(a);
            }
            Err(e) => {
                return ctx.fail(
                    DriverInvariant::Liveness,
                    Some(no),
                    format!("after faults stopped, append failed: {e}"),
                )
            }
        }
    }
    for a in appended {
        let seq = a.seq;
        let result = a.durable().await;
        let w = *log.watch_durable().borrow();
        if let Err(e) = &result {
            ctx.fail(DriverInvariant::Liveness, Some(no), format!("after faults stopped, {seq} failed: {e}"));
        }
        ctx.check(|c, at, model| c.resolved(at, no, seq, result, w, model));
    }
    lock(&ctx.checker).shutdown_called(no);
    let result = log.shutdown().await;
    let w = *log.watch_durable().borrow();
    ctx.note(format!("last: {no} shutdown: {result:?}, watermark {w}"));
    if let Err(e) = &result {
        ctx.fail(DriverInvariant::Liveness, Some(no), format!("after faults stopped, shutdown failed: {e}"));
    }
    ctx.check(|c, at, model| c.shutdown_returned(at, no, &result, w, model));
    drop(log);
    await_all(&ctx, no, Vec::new(), observers).await;
}

/// Reads the whole log back with the library's reader and lets the checker
/// judge it.
async fn read_back(ctx: &Arc<Ctx>) {
    let reader = Reader::new(ctx.store.clone());
    let read = async {
        let mut cursor = reader.commits(CommitSeq(0)..CommitSeq(u64::MAX)).await?;
        let mut log = Vec::new();
        while let Some(commit) = cursor.next().await? {
            log.push(commit);
        }
        Ok::<_, ReadError>(log)
    };
    match read.await {
        Ok(log) => {
            ctx.note(format!("read back {} commits", log.len()));
            ctx.check(|c, at, model| c.finish(at, &log, model));
        }
        Err(e) => ctx.fail(DriverInvariant::ValidLog, None, format!("the reader failed: {e}")),
    }
}
