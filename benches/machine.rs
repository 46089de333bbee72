//! Throughput of the sans-IO [`Persister`] and of the object format, each
//! next to the cheapest thing that could do the same job.
//!
//! One run measures, with criterion groups and then again with its own
//! `Instant`-based timing (median of a few repetitions) for a summary table:
//!
//! 1. the state machine alone: `N` commits of 100 bytes (and of 4 KiB) fed
//!    through `Persister::commit` in bursts of [`COMMIT_BURST`] (as the tokio
//!    driver feeds them), every PUT completed at once, in batches of
//!    [`PUTS_PER_COMPLETION`] and in reverse order;
//! 2. a baseline: the same `N` payloads appended to a `Vec<u8>` that was
//!    reserved once for all of them and is cleared and reused between runs
//!    (so neither reallocation nor first-touch page faults are counted);
//! 3. `format::encode_batch`, `BatchBuilder` push + seal and `format::decode`
//!    (with one visit to every commit) of a ~1 MiB batch, next to a
//!    `copy_from_slice` of as many bytes; and encoding's two parts apart,
//!    the builder's pushes and the checksum, with the share of memcpy they
//!    reach one after the other.
//!
//! `cargo bench --bench machine` runs everything; with `S3WAL_BENCH_QUICK=1`
//! the counts and sample sizes shrink so the whole run takes seconds.
//! Under `cargo test --benches` criterion runs every benchmark once and the
//! summary runs with tiny counts, as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use s3wal::format::{self, BatchBuilder, Header, COMMIT_OVERHEAD};
use s3wal::{
    Action, CommitSeq, Config, Epoch, Identity, Input, LeaderId, Persister, Position, PutOutcome, RequestId,
    StartPoint, Time, ValidConfig,
};

static PAYLOAD_100: [u8; 100] = [0x5a; 100];
static PAYLOAD_4K: [u8; 4096] = [0xa5; 4096];

/// The machine seals a batch once its commits reach this many bytes.
const BATCH_THRESHOLD: u64 = 1 << 20;
/// The format benchmarks encode batches of about this many payload bytes.
const FORMAT_BATCH_BYTES: usize = 1 << 20;
/// Outstanding PUTs are completed (newest first) once this many are pending.
const PUTS_PER_COMPLETION: usize = 4;
/// Simulated nanoseconds between two commits.
const TICK_NANOS: u64 = 1;
/// Commits fed between two drains: the most the tokio driver takes off its
/// queue at once.
const COMMIT_BURST: u64 = 256;

/// How big and how long this run is.
#[derive(Clone, Copy, Debug)]
struct Settings {
    label: &'static str,
    /// 100-byte commits fed to the machine per run.
    n_small: u64,
    /// 4 KiB commits fed to the machine per run.
    n_large: u64,
    /// Repetitions of each summary measurement (the median is reported).
    reps: usize,
    /// Wall time each summary repetition of a format measurement runs for.
    format_rep_time: Duration,
    machine_samples: usize,
    machine_warm_up: Duration,
    machine_measure: Duration,
    format_samples: usize,
    format_warm_up: Duration,
    format_measure: Duration,
}

impl Settings {
    fn full() -> Settings {
        Settings {
            label: "full",
            n_small: 2_000_000,
            n_large: 250_000,
            reps: 7,
            format_rep_time: Duration::from_millis(200),
            machine_samples: 10,
            machine_warm_up: Duration::from_secs(1),
            machine_measure: Duration::from_secs(3),
            format_samples: 50,
            format_warm_up: Duration::from_secs(1),
            format_measure: Duration::from_secs(2),
        }
    }

    fn quick() -> Settings {
        Settings {
            label: "quick (S3WAL_BENCH_QUICK=1)",
            n_small: 200_000,
            n_large: 20_000,
            reps: 3,
            format_rep_time: Duration::from_millis(30),
            machine_samples: 10,
            machine_warm_up: Duration::from_millis(100),
            machine_measure: Duration::from_millis(300),
            format_samples: 10,
            format_warm_up: Duration::from_millis(100),
            format_measure: Duration::from_millis(200),
        }
    }

    /// `cargo test --benches`: criterion runs each benchmark once; keep the
    /// summary a correctness check.
    fn smoke() -> Settings {
        Settings {
            label: "smoke test (criterion test mode)",
            n_small: 20_000,
            n_large: 2_000,
            reps: 1,
            format_rep_time: Duration::from_millis(1),
            ..Settings::quick()
        }
    }
}

// ---------------------------------------------------------------------------
// Driving the machine
// ---------------------------------------------------------------------------

fn bench_config() -> ValidConfig {
    Config { batch_size_threshold: BATCH_THRESHOLD, ..Config::default() }
        .validate()
        .expect("the bench configuration is valid")
}

fn start_point() -> StartPoint {
    StartPoint { position: Position(0), next_commit: CommitSeq(0), epoch: Epoch::default() }
}

fn identity() -> Identity {
    Identity { leader: LeaderId(1), nonce: 0x5eed, jitter_seed: 42 }
}

/// What one run of the machine did, checked so the bench cannot silently
/// measure nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RunReport {
    /// Commits reported durable (the sum of every `Durable` range).
    durable: u64,
    /// Commits reported accepted (packed into a batch and sent).
    accepted: u64,
    puts: u64,
    batches: u64,
    /// Batches that held a single commit (sent by the idle fast path).
    single_commit_batches: u64,
    /// Payload bytes of every PUT body, header and checksum included.
    body_bytes: u64,
}

/// A driver that does no I/O: every PUT succeeds as soon as a few are pending.
struct Driver {
    machine: Persister,
    now: u64,
    /// Requests issued and not yet completed, oldest first.
    pending: Vec<RequestId>,
    /// The batch of requests being completed (kept to reuse its allocation).
    completing: Vec<RequestId>,
    timer: Option<Time>,
    producers_wait: bool,
    ready: bool,
    shut_down: bool,
    report: RunReport,
}

impl Driver {
    fn new(config: ValidConfig) -> Driver {
        let mut driver = Driver {
            machine: Persister::resume(config, identity(), start_point()),
            now: 0,
            pending: Vec::with_capacity(64),
            completing: Vec::with_capacity(64),
            timer: None,
            producers_wait: false,
            ready: false,
            shut_down: false,
            report: RunReport::default(),
        };
        driver.drain();
        assert!(driver.ready, "resume reports Ready");
        driver
    }

    /// Step 2 of the driving rule: carry out every action.
    fn drain(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Put(put) => {
                    self.report.puts += 1;
                    self.report.body_bytes += put.body.len() as u64;
                    self.pending.push(put.request);
                }
                Action::Accepted { commits } => {
                    self.report.accepted += commits.len();
                    self.report.batches += 1;
                    if commits.len() == 1 {
                        self.report.single_commit_batches += 1;
                    }
                }
                Action::Durable { commits } => {
                    assert_eq!(commits.start.0, self.report.durable, "durable in order");
                    self.report.durable = commits.end.0;
                }
                Action::SetTimer { at } => self.timer = Some(at),
                Action::CancelTimer => self.timer = None,
                Action::ProducersMustWait => self.producers_wait = true,
                Action::ProducersMayContinue => self.producers_wait = false,
                Action::Ready { .. } => self.ready = true,
                Action::ShutdownComplete => self.shut_down = true,
                other @ (Action::Head { .. } | Action::List { .. } | Action::Probe { .. } | Action::Failed { .. }) => {
                    panic!("unexpected action in a fault-free run: {other:?}")
                }
            }
        }
    }

    /// Steps 1 and 2 of the driving rule, then step 3 (the timer).
    fn feed(&mut self, input: Input) {
        self.machine.handle(Time(self.now), input).expect("the machine accepts every input of a fault-free run");
        self.drain();
        self.fire_due_timer();
    }

    /// Step 3 of the driving rule: the timer.
    fn fire_due_timer(&mut self) {
        if let Some(at) = self.timer {
            if at.as_nanos() <= self.now {
                self.timer = None;
                self.machine.handle(Time(self.now), Input::TimerFired).expect("a timer is never refused");
                self.drain();
            }
        }
    }

    /// Completes every pending PUT, newest first.
    fn complete_pending(&mut self) {
        std::mem::swap(&mut self.pending, &mut self.completing);
        while let Some(request) = self.completing.pop() {
            self.feed(Input::PutFinished { request, outcome: PutOutcome::Created });
        }
    }

    /// A burst of `n` commits that arrived together, as the tokio driver
    /// feeds them: one after another at the same time, then one drain.
    fn commit_burst(&mut self, payload: &[u8], n: u64) {
        let now = Time(self.now);
        for _ in 0..n {
            self.machine.commit(now, payload).expect("the machine accepts every commit of a fault-free run");
        }
        self.now += n * TICK_NANOS;
        self.drain();
        self.fire_due_timer();
        if self.pending.len() >= PUTS_PER_COMPLETION || self.producers_wait {
            self.complete_pending();
        }
    }

    /// Seals what is collecting and completes PUTs until the machine is done.
    fn shut_down(mut self) -> RunReport {
        self.feed(Input::ShutdownRequested);
        while !self.shut_down {
            assert!(!self.pending.is_empty(), "shutdown stalled with no PUT outstanding");
            self.complete_pending();
        }
        self.report
    }
}

/// Feeds `n` copies of `payload` through the machine, in bursts of
/// [`COMMIT_BURST`], and shuts it down.
fn run_machine(config: &ValidConfig, n: u64, payload: &[u8]) -> RunReport {
    let mut driver = Driver::new(config.clone());
    let mut left = n;
    while left > 0 {
        let burst = left.min(COMMIT_BURST);
        driver.commit_burst(payload, burst);
        left -= burst;
    }
    let report = driver.shut_down();
    assert_eq!(report.durable, n, "every commit must be reported durable");
    assert_eq!(report.accepted, n, "every commit must be accepted once");
    report
}

/// The baseline: append `n` copies of `payload` to `out` (already reserved).
fn append_to_vec(out: &mut Vec<u8>, n: u64, payload: &[u8]) {
    out.clear();
    for _ in 0..n {
        out.extend_from_slice(payload);
    }
}

/// A second, cache-friendly baseline: the same appends into one buffer of
/// about a batch's size, cleared whenever it reaches the batch threshold
/// (what the machine's batch buffers do, without the machine).
fn append_in_chunks(out: &mut Vec<u8>, n: u64, payload: &[u8]) {
    out.clear();
    for _ in 0..n {
        if out.len() >= BATCH_THRESHOLD as usize {
            out.clear();
        }
        out.extend_from_slice(payload);
    }
}

/// Room for a threshold's worth of payloads and the one that crosses it.
fn chunk_capacity(payload: &[u8]) -> usize {
    BATCH_THRESHOLD as usize + payload.len()
}

// ---------------------------------------------------------------------------
// The format
// ---------------------------------------------------------------------------

fn format_header() -> Header {
    // Taken from an object the machine itself built, so that the bench names
    // no field of `Header` and the header is the one the machine writes.
    let mut machine = Persister::resume(bench_config(), identity(), start_point());
    machine.handle(Time(1), Input::CommitArrived(Bytes::from_static(b"x"))).expect("accepted");
    let body = std::iter::from_fn(|| machine.poll_action())
        .find_map(|action| match action {
            Action::Put(put) => Some(put.body),
            _ => None,
        })
        .expect("an idle machine sends its first commit at once");
    let header = format::decode(&body).expect("the machine's object decodes").header;
    Header { count: 0, ..header }
}

/// The commits of a ~1 MiB batch of `payload`-sized commits.
fn batch_commits(payload: &'static [u8]) -> Vec<Bytes> {
    let count = FORMAT_BATCH_BYTES.div_ceil(payload.len());
    vec![Bytes::from_static(payload); count]
}

fn encode_with_builder(header: Header, payload: &[u8], count: usize) -> Bytes {
    pushed(payload, count).seal(header).0
}

/// A builder that `count` copies of `payload` were pushed into.
fn pushed(payload: &[u8], count: usize) -> BatchBuilder {
    let mut builder = BatchBuilder::with_capacity(count * (payload.len() + COMMIT_OVERHEAD));
    for _ in 0..count {
        builder.push(payload);
    }
    builder
}

/// Everything the format measurements of one commit size need.
struct FormatCase {
    name: &'static str,
    header: Header,
    payload: &'static [u8],
    commits: Vec<Bytes>,
    object: Bytes,
}

impl FormatCase {
    fn new(name: &'static str, payload: &'static [u8]) -> FormatCase {
        let header = format_header();
        let commits = batch_commits(payload);
        let (object, _) = format::encode_batch(header, &commits);
        let decoded = format::decode(&object).expect("own encoding decodes");
        assert_eq!(decoded.commits.to_vec(), commits);
        assert_eq!(encode_with_builder(header, payload, commits.len()), object);
        FormatCase { name, header, payload, commits, object }
    }

    fn encode(&self) -> Bytes {
        format::encode_batch(self.header, black_box(&self.commits)).0
    }

    fn build(&self) -> Bytes {
        encode_with_builder(self.header, black_box(self.payload), self.commits.len())
    }

    /// The builder's pushes without the seal: the copying half of encoding.
    fn push_only(&self) -> BatchBuilder {
        pushed(black_box(self.payload), self.commits.len())
    }

    fn decode(&self) -> format::Object {
        format::decode(black_box(&self.object)).expect("valid object")
    }

    /// Decodes and then visits every commit once, as a reader does: `decode`
    /// checks every length but makes nothing per commit.
    fn decode_and_visit(&self) -> usize {
        self.decode().commits.iter().map(|commit| black_box(commit).len()).sum()
    }

    fn checksum(&self) -> u32 {
        format::checksum(black_box(&self.object))
    }

    /// The `crc32c` crate, which `format::checksum` replaces on CPUs with
    /// VPCLMULQDQ: the reason it does is printed next to it.
    fn crc32c_crate(&self) -> u32 {
        crc32c::crc32c(black_box(&self.object))
    }

    /// Copies the object into `dst`, which is as long.
    fn memcpy(&self, dst: &mut [u8]) {
        black_box(dst).copy_from_slice(black_box(&self.object[..]));
    }
}

// ---------------------------------------------------------------------------
// Criterion groups
// ---------------------------------------------------------------------------

fn machine_group(c: &mut Criterion, s: &Settings, name: &str, payload: &'static [u8], n: u64) {
    let config = bench_config();
    let mut group = c.benchmark_group(name);
    group
        .sample_size(s.machine_samples)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(s.machine_warm_up)
        .measurement_time(s.machine_measure)
        .throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new("persister", n), |b| {
        b.iter(|| run_machine(&config, black_box(n), black_box(payload)))
    });
    let mut reserved = Vec::with_capacity(n as usize * payload.len());
    group.bench_function(BenchmarkId::new("vec_reserved", n), |b| {
        b.iter(|| {
            append_to_vec(&mut reserved, black_box(n), black_box(payload));
            black_box(reserved.len())
        })
    });
    drop(reserved);
    let mut chunk = Vec::with_capacity(chunk_capacity(payload));
    group.bench_function(BenchmarkId::new("vec_1mib_chunks", n), |b| {
        b.iter(|| {
            append_in_chunks(&mut chunk, black_box(n), black_box(payload));
            black_box(chunk.len())
        })
    });
    group.finish();
}

fn format_group(c: &mut Criterion, s: &Settings, case: &FormatCase) {
    let mut group = c.benchmark_group(format!("format_{}", case.name));
    group
        .sample_size(s.format_samples)
        .warm_up_time(s.format_warm_up)
        .measurement_time(s.format_measure)
        .throughput(Throughput::Bytes(case.object.len() as u64));
    bench_format(&mut group, case);
    group.finish();
}

fn bench_format(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, case: &FormatCase) {
    let mut dst = vec![0u8; case.object.len()];
    for mut op in format_ops(case, &mut dst) {
        group.bench_function(op.what.replace([' ', '+'], "_"), |b| b.iter(&mut op.run));
    }
}

/// One operation on a batch, timed by criterion and by the summary alike.
struct FormatOpToTime<'a> {
    what: &'static str,
    /// Whether issue 7's ">= 50 % of memcpy" applies to it.
    has_target: bool,
    /// Runs it once, its result kept from the optimiser.
    run: Box<dyn FnMut() + 'a>,
}

/// The operation that is the builder's pushes alone, without the seal.
const PUSH_ONLY: &str = "builder push only";
/// The operation that is the checksum alone.
const CHECKSUM: &str = "checksum";

/// Every operation the format benchmarks time, memcpy (into `dst`) last.
fn format_ops<'a>(case: &'a FormatCase, dst: &'a mut [u8]) -> Vec<FormatOpToTime<'a>> {
    fn op<'a, T>(what: &'static str, has_target: bool, mut f: impl FnMut() -> T + 'a) -> FormatOpToTime<'a> {
        FormatOpToTime { what, has_target, run: Box::new(move || drop(black_box(f()))) }
    }
    vec![
        op("encode", true, || case.encode()),
        op("builder push+seal", true, || case.build()),
        op(PUSH_ONLY, false, || case.push_only()),
        op("decode", true, || case.decode()),
        op("decode+visit", false, || case.decode_and_visit()),
        op(CHECKSUM, false, || case.checksum()),
        op("crc32c crate", false, || case.crc32c_crate()),
        op("memcpy", false, move || case.memcpy(dst)),
    ]
}

// ---------------------------------------------------------------------------
// The summary, timed with Instant in this process
// ---------------------------------------------------------------------------

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// Seconds per call of `f`: the median over `reps` repetitions, each running
/// `f` often enough to last about `rep_time` (at least once), after one
/// untimed warm-up call.
fn seconds_per_call(reps: usize, rep_time: Duration, mut f: impl FnMut()) -> f64 {
    let calls = calls_per_rep(rep_time, &mut f);
    median((0..reps).map(|_| seconds_per_call_of(calls, &mut f)).collect())
}

/// How many calls of `f` take about `rep_time` (at least one).
fn calls_per_rep(rep_time: Duration, f: &mut dyn FnMut()) -> u64 {
    let started = Instant::now();
    f();
    let one = started.elapsed().as_secs_f64().max(1e-9);
    ((rep_time.as_secs_f64() / one) as u64).max(1)
}

/// Seconds per call over `calls` calls of `f`.
fn seconds_per_call_of(calls: u64, f: &mut dyn FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        f();
    }
    started.elapsed().as_secs_f64() / calls as f64
}

/// Seconds per call of `a` and of `b`, one call each in turn, `reps` times,
/// after one untimed call of each.
fn alternating(reps: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Vec<f64>, Vec<f64>) {
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64()
    };
    a();
    b();
    (0..reps).map(|_| (time(&mut a), time(&mut b))).unzip()
}

struct MachineRow {
    name: &'static str,
    n: u64,
    machine_secs: f64,
    vec_secs: f64,
    /// Median over the repetitions of machine time / Vec time, each pair
    /// measured back to back (the machine's drift cancels out).
    ratio: f64,
    chunk_secs: f64,
    report: RunReport,
    /// Minor page faults of one (untimed) machine run, if the OS tells.
    faults: Option<u64>,
}

impl MachineRow {
    fn machine_rate(&self) -> f64 {
        self.n as f64 / self.machine_secs
    }

    fn vec_rate(&self) -> f64 {
        self.n as f64 / self.vec_secs
    }

    fn ratio(&self) -> f64 {
        self.ratio
    }

    fn chunk_rate(&self) -> f64 {
        self.n as f64 / self.chunk_secs
    }

    fn chunk_ratio(&self) -> f64 {
        self.machine_secs / self.chunk_secs
    }
}

fn measure_machine(s: &Settings, name: &'static str, payload: &'static [u8], n: u64) -> MachineRow {
    let config = bench_config();
    let mut report = RunReport::default();
    let mut out = Vec::with_capacity(n as usize * payload.len());
    let (machine, vec) = alternating(
        s.reps,
        || report = run_machine(&config, black_box(n), black_box(payload)),
        || {
            append_to_vec(&mut out, black_box(n), black_box(payload));
            black_box(out.len());
        },
    );
    assert_eq!(out.len() as u64, n * payload.len() as u64);
    let ratio = median(machine.iter().zip(&vec).map(|(m, v)| m / v).collect());
    let (machine_secs, vec_secs) = (median(machine), median(vec));
    drop(out);
    let before = minor_faults();
    run_machine(&config, n, payload);
    let faults = before.zip(minor_faults()).map(|(a, b)| b - a);
    let mut chunk = Vec::with_capacity(chunk_capacity(payload));
    let chunk_secs = seconds_per_call(s.reps, Duration::ZERO, || {
        append_in_chunks(&mut chunk, black_box(n), black_box(payload));
        black_box(chunk.len());
    });
    MachineRow { name, n, machine_secs, vec_secs, ratio, chunk_secs, report, faults }
}

/// Minor page faults of this process so far (Linux `/proc/self/stat`).
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the parenthesised command name: state, ppid, pgrp, session,
    // tty_nr, tpgid, flags, minflt.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(7)?.parse().ok()
}

struct FormatRow {
    name: &'static str,
    commits: usize,
    bytes: usize,
    /// Each operation on the batch and its seconds per call, memcpy's last.
    ops: Vec<FormatOp>,
}

struct FormatOp {
    what: &'static str,
    /// The median seconds per call.
    secs: f64,
    /// The median over repetitions of memcpy's time over this operation's,
    /// both timed in the same repetition.
    share_of_memcpy: f64,
    /// Whether issue 7's ">= 50 % of memcpy" applies to it.
    has_target: bool,
}

impl FormatRow {
    fn gbps(&self, secs: f64) -> f64 {
        self.bytes as f64 / secs / 1e9
    }

    fn memcpy_gbps(&self) -> f64 {
        self.gbps(self.ops.last().expect("memcpy is measured").secs)
    }

    fn share_of_memcpy(&self, what: &str) -> f64 {
        self.ops.iter().find(|op| op.what == what).expect("the operation is measured").share_of_memcpy
    }

    /// The share of memcpy that pushing and then checksumming come to, from
    /// the two measured apart, if their times add up (encode's estimate).
    fn push_then_checksum_share(&self) -> f64 {
        1.0 / (1.0 / self.share_of_memcpy(PUSH_ONLY) + 1.0 / self.share_of_memcpy(CHECKSUM))
    }
}

/// Times every operation once per repetition, in turn, so that a machine
/// that slows down for a while (this one is shared) slows all of them: the
/// share of memcpy is taken within each repetition, then the median.
fn measure_format(s: &Settings, case: &FormatCase) -> FormatRow {
    let mut dst = vec![0u8; case.object.len()];
    let mut ops = format_ops(case, &mut dst);
    let calls: Vec<u64> = ops.iter_mut().map(|op| calls_per_rep(s.format_rep_time, &mut op.run)).collect();
    let mut secs = vec![Vec::with_capacity(s.reps); ops.len()];
    for _ in 0..s.reps {
        for (op, (calls, secs)) in ops.iter_mut().zip(calls.iter().zip(&mut secs)) {
            secs.push(seconds_per_call_of(*calls, &mut op.run));
        }
    }
    let memcpy = secs.last().expect("memcpy is measured").clone();
    let ops = ops
        .iter()
        .zip(secs)
        .map(|(op, secs)| FormatOp {
            what: op.what,
            share_of_memcpy: median(memcpy.iter().zip(&secs).map(|(m, op)| m / op).collect()),
            secs: median(secs),
            has_target: op.has_target,
        })
        .collect();
    FormatRow { name: case.name, commits: case.commits.len(), bytes: case.object.len(), ops }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn print_summary(s: &Settings, machines: &[MachineRow], formats: &[FormatRow]) {
    println!();
    println!(
        "==== s3wal bench summary: {} mode; own timing (std::time::Instant), median of {} reps ====",
        s.label, s.reps
    );
    println!(
        "machine: {} MiB size threshold, commits fed by Persister::commit in bursts of {} (then one drain), \
         PUTs completed {} at a time newest first, +{} ns per commit",
        BATCH_THRESHOLD >> 20,
        COMMIT_BURST,
        PUTS_PER_COMPLETION,
        TICK_NANOS
    );
    println!("Vec baseline: extend_from_slice into a Vec reserved once for all N payloads, cleared and reused");
    println!("machine/Vec time: the median of per-rep ratios, each rep timing one machine run and then one Vec run");
    println!("Vec 1MiB (extra, cache-friendly): one Vec of 1 MiB + 1 payload, cleared whenever it reaches 1 MiB");
    println!();
    let header = [
        ("commits", ""),
        ("N", ""),
        ("PUTs", ""),
        ("1-commit", "batches"),
        ("page", "faults/PUT"),
        ("machine", "ms/run"),
        ("machine", "M/s"),
        ("Vec", "M/s"),
        ("machine/", "Vec time"),
        ("Vec 1MiB", "M/s"),
        ("machine/", "1MiB time"),
    ];
    for line in [0, 1] {
        let cells: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let text = if line == 0 { h.0 } else { h.1 };
                if i == 0 {
                    format!("{text:<8}")
                } else {
                    format!("{text:>10}")
                }
            })
            .collect();
        println!("{}", cells.join(" "));
    }
    for m in machines {
        let faults = match m.faults {
            Some(f) => format!("{:.1}", f as f64 / m.report.puts.max(1) as f64),
            None => "n/a".to_string(),
        };
        println!(
            "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10.2} {:>10.2} {:>10.2} {:>9.2}x {:>10.2} {:>9.2}x",
            m.name,
            m.n,
            m.report.puts,
            m.report.single_commit_batches,
            faults,
            m.machine_secs * 1e3,
            m.machine_rate() / 1e6,
            m.vec_rate() / 1e6,
            m.ratio(),
            m.chunk_rate() / 1e6,
            m.chunk_ratio()
        );
    }
    println!(
        "page faults/PUT: minor faults of one untimed machine run per PUT; about 256 means each 1 MiB batch \
         buffer was fresh memory from the OS (the allocator gave the last one back), which then dominates"
    );
    println!();
    println!("checksum: {}", format::checksum_kernel());
    println!("{:<10} {:>8} {:>10}  {:<18} {:>8} {:>8}", "batch of", "commits", "bytes", "operation", "GB/s", "/memcpy");
    for f in formats {
        for op in &f.ops {
            let gbps = f.gbps(op.secs);
            let pct = 100.0 * op.share_of_memcpy;
            println!("{:<10} {:>8} {:>10}  {:<18} {gbps:>8.2} {pct:>7.1}%", f.name, f.commits, f.bytes, op.what);
        }
    }
    println!();
    println!("ratios (GB = 1e9 bytes; targets are context, not assertions):");
    for m in machines {
        let target = if m.name.starts_with("100") {
            let ok = m.machine_rate() >= 20e6 && m.ratio() <= 2.0;
            format!("   [target >= 20 M commits/s and <= 2 x: {}]", verdict(ok))
        } else {
            String::new()
        };
        println!(
            "machine {}: {:.2} M commits/s; Vec baseline: {:.2} M commits/s; ratio machine/baseline time: {:.2} x{}",
            m.name,
            m.machine_rate() / 1e6,
            m.vec_rate() / 1e6,
            m.ratio(),
            target
        );
        println!(
            "  (vs Vec 1MiB baseline: {:.2} M commits/s; ratio machine/baseline time: {:.2} x)",
            m.chunk_rate() / 1e6,
            m.chunk_ratio()
        );
    }
    for f in formats {
        let memcpy = f.memcpy_gbps();
        for op in f.ops.iter().filter(|op| op.has_target) {
            let gbps = f.gbps(op.secs);
            let pct = 100.0 * op.share_of_memcpy;
            println!(
                "{} {}-commit batch: {gbps:.2} GB/s; memcpy: {memcpy:.2} GB/s; A/B = {pct:.1} %   [target >= 50 %: {}]",
                op.what,
                f.name,
                verdict(pct >= 50.0)
            );
        }
        println!(
            "  {}-commit encode's parts: builder push only {:.1} % and checksum {:.1} % of memcpy; \
             one after the other they take the sum of their times, {:.1} % of memcpy",
            f.name,
            100.0 * f.share_of_memcpy(PUSH_ONLY),
            100.0 * f.share_of_memcpy(CHECKSUM),
            100.0 * f.push_then_checksum_share()
        );
    }
}

// ---------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // As criterion decides: without `--bench` (cargo test) it only tests.
    let test_mode = has("--test") || !has("--bench");
    let quick = std::env::var("S3WAL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let settings = if test_mode {
        Settings::smoke()
    } else if quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let s = &settings;
    let started = Instant::now();

    let mut c = Criterion::default().configure_from_args();
    let small = FormatCase::new("100B", &PAYLOAD_100);
    let large = FormatCase::new("4KiB", &PAYLOAD_4K);
    machine_group(&mut c, s, "machine_100B", &PAYLOAD_100, s.n_small);
    machine_group(&mut c, s, "machine_4KiB", &PAYLOAD_4K, s.n_large);
    format_group(&mut c, s, &small);
    format_group(&mut c, s, &large);
    c.final_summary();

    // `--list` only names the benchmarks; `--profile-time` profiles one.
    if has("--list") || has("--profile-time") {
        return;
    }
    let machines =
        [measure_machine(s, "100B", &PAYLOAD_100, s.n_small), measure_machine(s, "4KiB", &PAYLOAD_4K, s.n_large)];
    let formats = [measure_format(s, &small), measure_format(s, &large)];
    print_summary(s, &machines, &formats);
    println!();
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
