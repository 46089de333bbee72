//! Commit→durable latency against load, under the S3 latency model
//! (`s3wal-sim latency`, `just sim-latency`).
//!
//! One writer, no faults, no takeovers: the question is what batching and
//! the ordered acks cost in latency, not whether they are safe (the world
//! and its checker answer that). This loop drives one [`Persister`] by the
//! protocol's rule (feed one input, drain every action) against the
//! [`LatencyModel`], and keeps no object bodies: near its peak the writer
//! sends about a GB of batches per simulated second, which the checking
//! [`World`](crate::World) would store and re-read for no benefit here.
//!
//! First the writer is saturated (its producers always have a commit ready)
//! to find its peak throughput; then commits arrive open loop, as a Poisson
//! process, at fractions of that peak, so time spent waiting for the byte
//! budget counts in the latency. Time is virtual and every draw comes from
//! the seed's streams: same seed, same figures.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use s3wal::{
    Action, CommitSeq, Config, Epoch, Identity, Input, LeaderId, Persister, Position, PutOutcome, StartPoint, Time,
    ValidConfig,
};

use crate::event_queue::EventQueue;
use crate::latency::{LatencyKnobs, LatencyModel};
use crate::sampling::{exponential, stream, Stream};

/// Most events one measurement may take: every loop here is bounded.
const MAX_EVENTS: u64 = 200_000_000;
/// Loads measured, as fractions of the default config's peak.
pub const FRACTIONS: [f64; 3] = [0.1, 0.5, 0.9];
/// Round trips drawn to estimate the model's percentiles.
const REFERENCE_DRAWS: usize = 20_001;

/// What every measurement of one curve shares.
#[derive(Clone, Debug)]
pub struct CurveSetup {
    /// Seeds the arrivals and the latencies.
    pub seed: u64,
    /// The store's latency.
    pub latency: LatencyKnobs,
    /// Bytes per commit. Latency depends on bytes per second, not on the
    /// commit count; bigger commits only make the run cheaper to simulate.
    pub commit_size: usize,
    /// Simulated time before measuring: the window and the budget fill up.
    pub warmup: Duration,
    /// Simulated time measured.
    pub measure: Duration,
}

/// How commits arrive.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Load {
    /// Producers always have the next commit ready: the writer's peak.
    Saturate,
    /// A Poisson process of this many commits per second, open loop.
    Rate(f64),
}

/// What one measurement found, over its measured span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    /// Commits that became durable per simulated second.
    pub durable_per_sec: f64,
    /// Median commit→durable latency of the commits that arrived.
    pub p50: Duration,
    /// 99th percentile of the same.
    pub p99: Duration,
    /// Batch PUTs sent per simulated second.
    pub puts_per_sec: f64,
    /// Their mean body, bytes.
    pub mean_put_bytes: u64,
    /// Of those PUTs, the share that were a position's second PUT: with no
    /// faults in these runs, hedges.
    pub hedge_share: f64,
}

/// Measures one config under one load.
pub fn measure(setup: &CurveSetup, config: ValidConfig, load: Load) -> anyhow::Result<Measurement> {
    let mut run = OneWriter::new(setup, config, load);
    run.run()?;
    Ok(run.measurement())
}

/// The model's PUT round trip for a `body_len`-byte body: (p50, p99).
pub fn round_trip(knobs: &LatencyKnobs, seed: u64, body_len: usize) -> (Duration, Duration) {
    let model = LatencyModel::new(knobs.clone());
    let mut rng = stream(seed, Stream::Reference);
    let mut trips: Vec<Duration> =
        (0..REFERENCE_DRAWS).map(|_| model.timing(&mut rng, body_len).round_trip()).collect();
    (percentile(&mut trips, 0.50), percentile(&mut trips, 0.99))
}

/// Ordered acks alone, for a config that hedges after `hedge`: PUTs of
/// `body_len` bytes leave every `interval` with no window limit, each
/// answered after a model round trip (or its hedge's, if that is sooner),
/// and a commit is acked once its PUT and every earlier one have answered.
/// The median commit latency, counting half an interval of waiting for the
/// batch: what batching and pipelining cannot go below at that PUT rate.
pub fn ordered_ack_floor(
    knobs: &LatencyKnobs,
    seed: u64,
    body_len: usize,
    interval: Duration,
    hedge: Duration,
) -> Duration {
    let model = LatencyModel::new(knobs.clone());
    let mut rng = stream(seed, Stream::Reference);
    let mut trip = || model.timing(&mut rng, body_len).round_trip();
    let mut acked = Duration::ZERO;
    let mut latencies: Vec<Duration> = (0..REFERENCE_DRAWS as u32)
        .map(|k| {
            let sent = interval * k;
            let first = trip();
            let rtt = if first > hedge { first.min(hedge + trip()) } else { first };
            acked = acked.max(sent + rtt);
            acked - sent + interval / 2
        })
        .collect();
    percentile(&mut latencies, 0.50)
}

/// The nearest-rank percentile `q` of `samples` (zero if there are none).
fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[derive(Debug)]
enum Event {
    /// The next open-loop commit arrives.
    Arrive,
    /// The writer may take commits again.
    Resume,
    /// An answer reaches the writer.
    Answer(Input),
    /// The writer's timer, of this arming.
    Timer(u64),
}

/// One writer and its store, in virtual time.
struct OneWriter<'a> {
    setup: &'a CurveSetup,
    load: Load,
    machine: Persister,
    now: Time,
    queue: EventQueue<Event>,
    model: LatencyModel,
    latency_rng: ChaCha8Rng,
    arrival_rng: ChaCha8Rng,
    payload: Bytes,
    timer: u64,
    must_wait: bool,
    /// Arrival times of commits not yet handed over (the budget is full).
    waiting: VecDeque<Time>,
    /// Arrival times of commits handed over and not yet durable, in order.
    pending: VecDeque<Time>,
    /// The measured span: `[from, to)`.
    from: Time,
    to: Time,
    latencies: Vec<Duration>,
    durable_in_span: u64,
    puts_in_span: u64,
    put_bytes_in_span: u64,
    hedges_in_span: u64,
    /// The position after the highest one PUT so far: a PUT below it is a
    /// second PUT of its position.
    next_new_position: u64,
    events: u64,
}

impl<'a> OneWriter<'a> {
    fn new(setup: &'a CurveSetup, config: ValidConfig, load: Load) -> OneWriter<'a> {
        let identity = Identity { leader: LeaderId(1), nonce: 1, jitter_seed: setup.seed };
        let start = StartPoint { position: Position(0), next_commit: CommitSeq(0), epoch: Epoch::default() };
        let from = Time::ZERO + setup.warmup;
        OneWriter {
            setup,
            load,
            machine: Persister::resume(config, identity, start),
            now: Time::ZERO,
            queue: EventQueue::new(),
            model: LatencyModel::new(setup.latency.clone()),
            latency_rng: stream(setup.seed, Stream::Latency),
            arrival_rng: stream(setup.seed, Stream::Workload),
            payload: Bytes::from(vec![0x5a; setup.commit_size]),
            timer: 0,
            must_wait: false,
            waiting: VecDeque::new(),
            pending: VecDeque::new(),
            from,
            to: from + setup.measure,
            latencies: Vec::new(),
            durable_in_span: 0,
            puts_in_span: 0,
            hedges_in_span: 0,
            next_new_position: 0,
            put_bytes_in_span: 0,
            events: 0,
        }
    }

    fn run(&mut self) -> anyhow::Result<()> {
        self.drain()?;
        if let Load::Rate(_) = self.load {
            self.schedule_arrival();
        }
        while !self.done() {
            if self.load == Load::Saturate {
                self.top_up()?;
            }
            let Some((at, event)) = self.queue.pop() else {
                if self.drained() {
                    break;
                }
                bail!("the writer stalled with commits not durable and nothing left to happen");
            };
            self.now = at;
            self.events += 1;
            if self.events > MAX_EVENTS {
                bail!("more than {MAX_EVENTS} events: the run does not end");
            }
            self.dispatch(event)?;
        }
        Ok(())
    }

    /// Saturated: once the span is over. Open loop: once every commit that
    /// arrived has become durable (arrivals stop at the span's end).
    fn done(&self) -> bool {
        self.now >= self.to && (self.load == Load::Saturate || self.drained())
    }

    /// Every commit that arrived is durable.
    fn drained(&self) -> bool {
        self.waiting.is_empty() && self.pending.is_empty()
    }

    fn dispatch(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Arrive => {
                self.waiting.push_back(self.now);
                self.schedule_arrival();
                self.hand_over()
            }
            Event::Resume => self.hand_over(),
            Event::Answer(input) => self.feed(input),
            Event::Timer(arming) if arming == self.timer => self.feed(Input::TimerFired),
            Event::Timer(_) => Ok(()),
        }
    }

    /// The next open-loop arrival, if it falls inside the span.
    fn schedule_arrival(&mut self) {
        let Load::Rate(rate) = self.load else { return };
        let gap = exponential(&mut self.arrival_rng, Duration::from_secs_f64(1.0 / rate));
        let at = self.now + gap;
        if at < self.to {
            self.queue.push(at, Event::Arrive);
        }
    }

    /// Hands over waiting commits while the writer takes them.
    fn hand_over(&mut self) -> anyhow::Result<()> {
        while !self.must_wait {
            let Some(arrived) = self.waiting.pop_front() else { break };
            self.commit(arrived)?;
        }
        Ok(())
    }

    /// Saturated producers: commits until the byte budget says wait (it
    /// must: every commit costs at least its bookkeeping), during the span only.
    fn top_up(&mut self) -> anyhow::Result<()> {
        while !self.must_wait && self.now < self.to {
            self.commit(self.now)?;
        }
        Ok(())
    }

    fn commit(&mut self, arrived: Time) -> anyhow::Result<()> {
        self.pending.push_back(arrived);
        self.feed(Input::CommitArrived(self.payload.clone()))
    }

    fn feed(&mut self, input: Input) -> anyhow::Result<()> {
        self.machine.handle(self.now, input).map_err(|refused| anyhow!("the writer refused an input: {refused}"))?;
        self.drain()
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        while let Some(action) = self.machine.poll_action() {
            self.execute(action)?;
        }
        Ok(())
    }

    fn in_span(&self, t: Time) -> bool {
        self.from <= t && t < self.to
    }

    fn execute(&mut self, action: Action) -> anyhow::Result<()> {
        let now = self.now;
        match action {
            Action::Put(put) => {
                let timing = self.model.timing(&mut self.latency_rng, put.body.len());
                let second = put.position.0 < self.next_new_position;
                self.next_new_position = self.next_new_position.max(put.position.0 + 1);
                if self.in_span(now) {
                    self.puts_in_span += 1;
                    self.put_bytes_in_span += put.body.len() as u64;
                    self.hedges_in_span += u64::from(second);
                }
                let answer = Input::PutFinished { request: put.request, outcome: PutOutcome::Created };
                self.queue.push(now + timing.round_trip(), Event::Answer(answer));
            }
            Action::Probe { request } => {
                let timing = self.model.timing(&mut self.latency_rng, 0);
                let answer = Input::ProbeFinished { request, outcome: Ok(()) };
                self.queue.push(now + timing.round_trip(), Event::Answer(answer));
            }
            Action::SetTimer { at } => {
                self.timer += 1;
                self.queue.push(at.max(now), Event::Timer(self.timer));
            }
            Action::CancelTimer => self.timer += 1,
            Action::Durable { commits } => self.on_durable(commits.len())?,
            Action::ProducersMustWait => self.must_wait = true,
            Action::ProducersMayContinue => {
                self.must_wait = false;
                self.queue.push(now, Event::Resume);
            }
            Action::Accepted { .. } | Action::Ready { .. } | Action::ShutdownComplete => {}
            Action::Failed { failure, .. } => bail!("the writer failed without any fault: {failure}"),
            Action::Head { .. } | Action::List { .. } => bail!("a resumed writer never reads the store: {action:?}"),
        }
        Ok(())
    }

    fn on_durable(&mut self, count: u64) -> anyhow::Result<()> {
        for _ in 0..count {
            let arrived = self.pending.pop_front().context("more commits durable than handed over")?;
            if self.in_span(arrived) {
                self.latencies.push(self.now - arrived);
            }
        }
        if self.in_span(self.now) {
            self.durable_in_span += count;
        }
        Ok(())
    }

    fn measurement(&mut self) -> Measurement {
        let secs = self.setup.measure.as_secs_f64().max(1e-9);
        Measurement {
            durable_per_sec: self.durable_in_span as f64 / secs,
            p50: percentile(&mut self.latencies, 0.50),
            p99: percentile(&mut self.latencies, 0.99),
            puts_per_sec: self.puts_in_span as f64 / secs,
            mean_put_bytes: self.put_bytes_in_span / self.puts_in_span.max(1),
            hedge_share: self.hedges_in_span as f64 / self.puts_in_span.max(1) as f64,
        }
    }
}

/// A config the curve compares.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// How it differs from the default.
    pub name: String,
    /// The config.
    pub config: ValidConfig,
}

/// The default config and its neighbours: narrower and wider windows, a
/// near-zero batch timeout (`Config::validate` refuses zero) and longer ones,
/// and hedged PUTs.
pub fn candidates() -> anyhow::Result<Vec<Candidate>> {
    let default = Config::default();
    let window = |n: u32| Config { max_in_flight_requests: n, target_pool_size: 2 * n, ..default.clone() };
    let timeout = |d: Duration| Config { batch_timeout: d, ..default.clone() };
    let hedge = |ms: u64| Config { hedge_after: Some(Duration::from_millis(ms)), ..default.clone() };
    let adaptive = |floor_ms: u64| Config { hedge_adaptive: true, ..hedge(floor_ms) };
    let window_hedge = |n: u32, ms: u64| Config { hedge_after: Some(Duration::from_millis(ms)), ..window(n) };
    let variants = [
        ("default (1 ms, 1 MiB, window 50)", default.clone()),
        ("window 20", window(20)),
        ("window 100", window(100)),
        ("batch_timeout 0.1 ms", timeout(Duration::from_micros(100))),
        ("batch_timeout 2 ms", timeout(Duration::from_millis(2))),
        ("batch_timeout 5 ms", timeout(Duration::from_millis(5))),
        ("batch_timeout 10 ms", timeout(Duration::from_millis(10))),
        ("window 100, batch_timeout 5 ms", Config { batch_timeout: Duration::from_millis(5), ..window(100) }),
        ("hedge after 30 ms", hedge(30)),
        ("hedge after 40 ms", hedge(40)),
        ("hedge after 60 ms", hedge(60)),
        ("window 100, hedge after 30 ms", window_hedge(100, 30)),
        ("batch_timeout 5 ms, hedge after 40 ms", Config { batch_timeout: Duration::from_millis(5), ..hedge(40) }),
        ("batch_timeout 10 ms, hedge after 40 ms", Config { batch_timeout: Duration::from_millis(10), ..hedge(40) }),
        ("s3_same_region (5 ms, hedge after 30 ms)", Config::s3_same_region()),
        (
            "batch_timeout 5 ms, hedge adaptive, floor 20 ms",
            Config { batch_timeout: Duration::from_millis(5), ..adaptive(20) },
        ),
        (
            "batch_timeout 5 ms, hedge adaptive, floor 30 ms",
            Config { batch_timeout: Duration::from_millis(5), ..adaptive(30) },
        ),
        ("hedge adaptive, floor 1 ms", adaptive(1)),
        ("hedge adaptive, floor 20 ms", adaptive(20)),
        ("window 100, hedge adaptive, floor 1 ms", Config { hedge_adaptive: true, ..window_hedge(100, 1) }),
    ];
    variants
        .into_iter()
        .map(|(name, config)| {
            let config = config.validate().map_err(|e| anyhow!("{name}: {e}"))?;
            Ok(Candidate { name: name.to_string(), config })
        })
        .collect()
}

/// One config's figures: its own peak, then each load of [`FRACTIONS`].
#[derive(Clone, Debug)]
pub struct CandidateFigures {
    /// Which config.
    pub name: String,
    /// Its batch timeout, for the light-load target.
    pub batch_timeout: Duration,
    /// Its hedge delay, if it hedges after a fixed one.
    pub fixed_hedge: Option<Duration>,
    /// Saturated.
    pub peak: Measurement,
    /// At each fraction of the default's peak.
    pub loads: Vec<Measurement>,
}

/// The whole curve: the model's round trips, then every candidate.
#[derive(Clone, Debug)]
pub struct CurveReport {
    /// What the runs shared.
    pub setup: CurveSetup,
    /// The model's PUT round trip for one commit's body: (p50, p99).
    pub small_put: (Duration, Duration),
    /// The same for a full 1 MiB batch.
    pub full_put: (Duration, Duration),
    /// The default config first.
    pub candidates: Vec<CandidateFigures>,
}

/// Runs the curve: the default's peak sets the loads every candidate sees.
pub fn run_curve(setup: &CurveSetup) -> anyhow::Result<CurveReport> {
    let candidates = candidates()?;
    let default_peak = measure(setup, candidates[0].config.clone(), Load::Saturate)?;
    let mut figures = Vec::new();
    for c in candidates {
        let peak = measure(setup, c.config.clone(), Load::Saturate)?;
        let loads = FRACTIONS
            .iter()
            .map(|f| measure(setup, c.config.clone(), Load::Rate(f * default_peak.durable_per_sec)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let fixed_hedge = c.config.hedge_after.filter(|_| !c.config.hedge_adaptive);
        figures.push(CandidateFigures {
            name: c.name,
            batch_timeout: c.config.batch_timeout,
            fixed_hedge,
            peak,
            loads,
        });
    }
    Ok(CurveReport {
        small_put: round_trip(&setup.latency, setup.seed, setup.commit_size),
        full_put: round_trip(&setup.latency, setup.seed, 1 << 20),
        setup: setup.clone(),
        candidates: figures,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl CurveReport {
    /// The report as printed: the default's curve with its targets, then
    /// every candidate side by side.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_default(&mut out);
        self.render_comparison(&mut out);
        out
    }

    fn render_header(&self, out: &mut String) {
        let s = &self.setup;
        let _ = writeln!(
            out,
            "latency curve, seed {}, {}-byte commits, {:.1} s warmup + {:.1} s measured (simulated), no faults",
            s.seed,
            s.commit_size,
            s.warmup.as_secs_f64(),
            s.measure.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "S3 model (typical_s3): PUT round trip p50 {} p99 {} ({} B body); p50 {} p99 {} (1 MiB body)",
            ms(self.small_put.0),
            ms(self.small_put.1),
            s.commit_size,
            ms(self.full_put.0),
            ms(self.full_put.1)
        );
    }

    /// The default's peak, its curve and the targets of issue 7.
    fn render_default(&self, out: &mut String) {
        let Some(d) = self.candidates.first() else { return };
        let size = self.setup.commit_size as f64;
        let _ = writeln!(
            out,
            "\n{}: peak {:.0} commits/s ({:.0} MB/s, {:.0} PUTs/s of {:.0} KiB)\n",
            d.name,
            d.peak.durable_per_sec,
            d.peak.durable_per_sec * size / 1e6,
            d.peak.puts_per_sec,
            d.peak.mean_put_bytes as f64 / 1024.0
        );
        let _ = writeln!(
            out,
            "{:>5} {:>11} {:>10} {:>10} {:>13} {:>8} {:>9}",
            "load", "commits/s", "p50", "p99", "PUT RTT p50", "PUTs/s", "KiB/PUT"
        );
        for (f, m) in FRACTIONS.iter().zip(&d.loads) {
            let p50 = self.put_p50(m);
            let _ = writeln!(
                out,
                "{:>4.0}% {:>11.0} {:>10} {:>10} {:>13} {:>8.0} {:>9.1}",
                f * 100.0,
                m.durable_per_sec,
                ms(m.p50),
                ms(m.p99),
                ms(p50),
                m.puts_per_sec,
                m.mean_put_bytes as f64 / 1024.0
            );
        }
        let [light, half] = self.targets(d);
        let _ = writeln!(out, "\ntarget: p50 at 10% <= PUT round trip + batch_timeout: {}", light.render());
        let _ = writeln!(out, "target: p99 at 50% <= 2 PUT round trips: {}", half.render());
    }

    /// The model's median round trip for a PUT of the mean body `m` sent.
    fn put_p50(&self, m: &Measurement) -> Duration {
        round_trip(&self.setup.latency, self.setup.seed, m.mean_put_bytes as usize).0
    }

    /// Issue 7's two latency targets for one config, each bound taken from
    /// the round trip of that config's own PUTs at that load (a config that
    /// sends bigger batches pays a longer upload, and a longer batch timeout
    /// is allowed for).
    fn targets(&self, c: &CandidateFigures) -> [Target; 2] {
        let (light, half) = (&c.loads[0], &c.loads[1]);
        [
            Target { measured: light.p50, bound: self.put_p50(light) + c.batch_timeout },
            Target { measured: half.p99, bound: self.put_p50(half) * 2 },
        ]
    }

    /// [`ordered_ack_floor`] at the PUT rate and body size `c` had at 10 %.
    fn floor_at_light_load(&self, c: &CandidateFigures, hedge: Duration) -> Duration {
        let light = &c.loads[0];
        let interval = Duration::from_secs_f64(1.0 / light.puts_per_sec.max(1.0));
        ordered_ack_floor(&self.setup.latency, self.setup.seed, light.mean_put_bytes as usize, interval, hedge)
    }

    /// Every candidate against both targets.
    fn render_targets(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\ntargets per config (bounds from its own PUTs' round trip p50 at that load):\n{:<40} {:<40} {:<40} ordered-ack floor p50@10%",
            "config", "p50@10% <= RTT + batch_timeout", "p99@50% <= 2 RTT"
        );
        for c in &self.candidates {
            let [light, half] = self.targets(c);
            let floor = c.fixed_hedge.map_or_else(|| "-".to_string(), |hedge| ms(self.floor_at_light_load(c, hedge)));
            let _ = writeln!(out, "{:<40} {:<40} {:<40} {floor}", c.name, light.render(), half.render());
        }
    }

    /// Every candidate at the same offered loads, with its own peak.
    fn render_comparison(&self, out: &mut String) {
        let _ =
            write!(out, "\nsame offered loads (fractions of the default's peak):\n{:<33} {:>10}", "config", "peak c/s");
        for f in FRACTIONS {
            let pct = f * 100.0;
            let _ = write!(out, " {:>9} {:>9} {:>7}", format!("p50@{pct:.0}%"), format!("p99@{pct:.0}%"), "PUTs/s");
        }
        let _ = writeln!(out);
        for c in &self.candidates {
            let _ = write!(out, "{:<33} {:>10.0}", c.name, c.peak.durable_per_sec);
            for m in &c.loads {
                let _ = write!(out, " {:>9} {:>9} {:>7.0}", ms(m.p50), ms(m.p99), m.puts_per_sec);
            }
            let _ = writeln!(out);
        }
        self.render_hedge_shares(out);
        self.render_targets(out);
    }

    /// How many of each hedging config's PUTs were hedges, per load.
    fn render_hedge_shares(&self, out: &mut String) {
        for c in self.candidates.iter().filter(|c| c.loads.iter().any(|m| m.hedge_share > 0.0)) {
            let shares: Vec<String> = c.loads.iter().map(|m| format!("{:.1} %", m.hedge_share * 100.0)).collect();
            let _ = writeln!(out, "{}: hedges were {} of PUTs at 10/50/90 %", c.name, shares.join(" / "));
        }
    }
}

/// A latency figure against its bound.
struct Target {
    measured: Duration,
    bound: Duration,
}

impl Target {
    fn render(&self) -> String {
        let met = self.measured <= self.bound;
        format!(
            "{} vs {} ({:.2}x): {}",
            ms(self.measured),
            ms(self.bound),
            ratio(self.measured, self.bound),
            verdict(met)
        )
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> CurveSetup {
        CurveSetup {
            seed: 7,
            latency: LatencyKnobs::typical_s3(),
            commit_size: 64 << 10,
            warmup: Duration::from_millis(200),
            measure: Duration::from_millis(500),
        }
    }

    fn default_config() -> ValidConfig {
        Config::default().validate().expect("valid")
    }

    #[test]
    fn light_load_latency_is_about_one_round_trip_and_every_commit_is_counted() {
        let m = measure(&setup(), default_config(), Load::Rate(200.0)).expect("runs");
        let (rtt, _) = round_trip(&setup().latency, 7, 64 << 10);
        assert!(m.p50 >= rtt / 2 && m.p50 <= rtt * 3, "p50 {:?} vs round trip {rtt:?}", m.p50);
        assert!((100.0..300.0).contains(&m.durable_per_sec), "{}", m.durable_per_sec);
    }

    #[test]
    fn saturated_throughput_is_bounded_by_the_window() {
        let m = measure(&setup(), default_config(), Load::Saturate).expect("runs");
        let (full, _) = round_trip(&setup().latency, 7, 1 << 20);
        let window_bound = 50.0 * (1 << 20) as f64 / full.as_secs_f64() / f64::from(64 << 10);
        assert!(m.durable_per_sec > window_bound / 4.0, "{} vs {window_bound}", m.durable_per_sec);
        assert!(m.durable_per_sec < window_bound * 2.0, "{} vs {window_bound}", m.durable_per_sec);
    }

    #[test]
    fn same_seed_same_figures() {
        let a = measure(&setup(), default_config(), Load::Rate(500.0)).expect("runs");
        let b = measure(&setup(), default_config(), Load::Rate(500.0)).expect("runs");
        assert_eq!(a, b);
    }

    #[test]
    fn the_ordered_ack_floor_is_one_round_trip_when_round_trips_never_vary() {
        let two = Duration::from_millis(2);
        let knobs =
            LatencyKnobs { sigma: 0.0, tail_probability: 0.0, processing: (two, two), ..LatencyKnobs::typical_s3() };
        let rtt = round_trip(&knobs, 1, 1000).0;
        let floor = ordered_ack_floor(&knobs, 1, 1000, two, Duration::from_secs(1));
        assert_eq!(floor, rtt + two / 2, "one round trip and half an interval of waiting");
    }

    #[test]
    fn varying_round_trips_put_the_ordered_ack_floor_above_the_median_round_trip() {
        let knobs = LatencyKnobs::typical_s3();
        let rtt = round_trip(&knobs, 1, 4096).0;
        let floor = ordered_ack_floor(&knobs, 1, 4096, Duration::from_millis(1), Duration::from_millis(40));
        assert!(floor > rtt + Duration::from_millis(3), "floor {floor:?}, median round trip {rtt:?}");
    }

    #[test]
    fn the_s3_preset_cuts_the_tail_the_defaults_leave_with_fewer_puts() {
        let setup = CurveSetup {
            seed: 1,
            latency: LatencyKnobs::typical_s3(),
            commit_size: 4096,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(3),
        };
        // About a tenth of the defaults' peak under this model.
        let load = Load::Rate(15_000.0);
        let default = measure(&setup, default_config(), load).expect("runs");
        let preset = measure(&setup, Config::s3_same_region().validate().expect("valid"), load).expect("runs");
        assert!(preset.p99 * 2 < default.p99, "p99 {:?} vs {:?}", preset.p99, default.p99);
        assert!(preset.p50 < default.p50, "p50 {:?} vs {:?}", preset.p50, default.p50);
        assert!(preset.puts_per_sec < default.puts_per_sec, "{} vs {}", preset.puts_per_sec, default.puts_per_sec);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&mut v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&mut [], 0.5), Duration::ZERO);
    }
}
