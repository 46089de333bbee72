//! What goes wrong between the driver and the store, and how often.
//!
//! Each run draws its own fault rates from the seed (swarm testing: some
//! classes off, others frequent), plus a few bursts in which every request
//! fails, long enough to exhaust retries. After the "faults stop" point no
//! fault is injected any more: the run then checks liveness, as TigerBeetle's
//! VOPR does.
//!
//! The checker never sees this module: it judges only what the machine did
//! and what the store holds.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use s3wal::{Fault, Time};

use crate::latency::Timing;
use crate::sampling::{chance, log_uniform};

/// One class of fault, each counted on its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultClass {
    /// Refused before reaching the store (connection refused, 500 at the
    /// front door): nothing written, answered quickly.
    FailBeforeApply,
    /// Applied, but the answer is lost: the client times out though the
    /// object IS written. Sometimes the request even lands after the client
    /// gave up. The ambiguous case.
    ResponseLost,
    /// Never reaches the store; the client times out.
    TimeoutNotApplied,
    /// The connection is reset; the request may or may not have landed.
    ConnectionReset,
    /// A 5xx; the request may or may not have been applied.
    ServerError,
    /// 503 SlowDown: nothing written.
    Throttled,
    /// 409 injected without a competing writer: nothing written.
    Conflict,
    /// The SDK retried the request on its own: two copies land a few
    /// milliseconds apart and the client hears the second one's answer (a
    /// 409 if the first is still being processed, a 412 for our own write).
    SdkRetry,
    /// 400 BadDigest: the PUT's body no longer matched its checksum when it
    /// reached the store (damaged on the way), so nothing is written.
    BodyDamaged,
    /// Inside a burst window: every request fails, nothing is written.
    Burst,
    /// A writer instance crashed (was dropped); a new one recovers.
    Crash,
    /// A writer instance was paused, a new one took over, then it resumed.
    Zombie,
    /// Two new instances recovered at once, from the same listing.
    DualRecovery,
}

impl FaultClass {
    /// Every class, in a fixed order.
    pub const ALL: [FaultClass; 13] = [
        FaultClass::FailBeforeApply,
        FaultClass::ResponseLost,
        FaultClass::TimeoutNotApplied,
        FaultClass::ConnectionReset,
        FaultClass::ServerError,
        FaultClass::Throttled,
        FaultClass::Conflict,
        FaultClass::SdkRetry,
        FaultClass::BodyDamaged,
        FaultClass::Burst,
        FaultClass::Crash,
        FaultClass::Zombie,
        FaultClass::DualRecovery,
    ];

    /// The classes injected per request at a drawn rate (bursts are windows).
    pub const PER_REQUEST: [FaultClass; PER_REQUEST_CLASSES] = [
        FaultClass::FailBeforeApply,
        FaultClass::ResponseLost,
        FaultClass::TimeoutNotApplied,
        FaultClass::ConnectionReset,
        FaultClass::ServerError,
        FaultClass::Throttled,
        FaultClass::Conflict,
        FaultClass::SdkRetry,
        FaultClass::BodyDamaged,
    ];

    /// A short name for traces and summaries.
    pub fn name(self) -> &'static str {
        match self {
            FaultClass::FailBeforeApply => "fail-before-apply",
            FaultClass::ResponseLost => "response-lost",
            FaultClass::TimeoutNotApplied => "timeout-not-applied",
            FaultClass::ConnectionReset => "connection-reset",
            FaultClass::ServerError => "server-error",
            FaultClass::Throttled => "throttled",
            FaultClass::Conflict => "conflict-409",
            FaultClass::SdkRetry => "sdk-retry",
            FaultClass::BodyDamaged => "body-damaged",
            FaultClass::Burst => "burst",
            FaultClass::Crash => "crash",
            FaultClass::Zombie => "zombie",
            FaultClass::DualRecovery => "dual-recovery",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Where a per-request class's rate sits in [`FaultKnobs::rates`]; none
    /// for the classes that are not drawn per request.
    fn rate_slot(self) -> Option<usize> {
        FaultClass::PER_REQUEST.iter().position(|c| *c == self)
    }
}

/// How many classes strike single requests at a drawn rate.
pub const PER_REQUEST_CLASSES: usize = 9;

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A probability in `[0, 1]`.
#[derive(Copy, Clone, Debug, Default, PartialEq, PartialOrd)]
pub struct Probability(f64);

impl Probability {
    /// Never.
    pub const NEVER: Probability = Probability(0.0);

    /// `p`, clamped into `[0, 1]`.
    pub fn new(p: f64) -> Probability {
        Probability(p.clamp(0.0, 1.0))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A window in which every request fails, starting when a commit arrives.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BurstPlan {
    /// The burst starts when the workload issues this commit (0-based).
    pub at_commit: u64,
    /// How long it lasts.
    pub length: Duration,
}

/// The fault knobs of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultKnobs {
    /// Per-request rate of each class but [`FaultClass::Burst`].
    pub rates: [Probability; PER_REQUEST_CLASSES],
    /// Burst windows, in the order they start.
    pub bursts: Vec<BurstPlan>,
    /// Faults stop when the workload issues this commit (0-based); a run
    /// that never gets there keeps faults on to the end.
    pub stop_at_commit: u64,
}

impl FaultKnobs {
    /// No faults at all.
    pub fn none() -> FaultKnobs {
        FaultKnobs { rates: [Probability::NEVER; PER_REQUEST_CLASSES], bursts: Vec::new(), stop_at_commit: 0 }
    }

    /// Knobs for a run of `commits` commits. One run in ten is calm; in the
    /// others each class is off with probability 0.4, otherwise its rate is
    /// log-uniform in 0.1%–5%. Damaged bodies, the class added last, draw
    /// from `body_damage_rng`, so that every other draw of a seed stayed
    /// what it was.
    pub fn draw(rng: &mut ChaCha8Rng, body_damage_rng: &mut ChaCha8Rng, commits: u64) -> FaultKnobs {
        if chance(rng, 0.1) {
            return FaultKnobs::none();
        }
        let draw_rate = |rng: &mut ChaCha8Rng| {
            if chance(rng, 0.4) {
                Probability::NEVER
            } else {
                Probability::new(log_uniform(rng, 0.001, 0.05))
            }
        };
        let mut rates = [Probability::NEVER; PER_REQUEST_CLASSES];
        for (class, rate) in FaultClass::PER_REQUEST.iter().zip(&mut rates) {
            let from = if *class == FaultClass::BodyDamaged { &mut *body_damage_rng } else { &mut *rng };
            *rate = draw_rate(from);
        }
        let stop_at_commit = rng.random_range(commits / 4..=commits);
        let burst_count = [0, 0, 0, 1, 1, 2][rng.random_range(0..6)];
        let mut bursts: Vec<BurstPlan> = (0..burst_count)
            .map(|_| BurstPlan {
                at_commit: rng.random_range(0..stop_at_commit.max(1)),
                length: Duration::from_secs_f64(log_uniform(rng, 0.02, 3.0)),
            })
            .collect();
        bursts.sort_by_key(|b| b.at_commit);
        FaultKnobs { rates, bursts, stop_at_commit }
    }

    /// The rate of a per-request class (bursts have none).
    pub fn rate(&self, class: FaultClass) -> Probability {
        class.rate_slot().map_or(Probability::NEVER, |i| self.rates[i])
    }

    /// These knobs with the per-request `class` striking at `rate`.
    ///
    /// # Panics
    /// If `class` is not drawn per request (see [`FaultClass::PER_REQUEST`]).
    pub fn with_rate(mut self, class: FaultClass, rate: Probability) -> FaultKnobs {
        self.rates[class.rate_slot().expect("a per-request class")] = rate;
        self
    }

    /// One line for a trace header.
    pub fn summary(&self) -> String {
        let rates: Vec<String> = FaultClass::PER_REQUEST
            .iter()
            .zip(self.rates)
            .filter(|(_, p)| p.get() > 0.0)
            .map(|(c, p)| format!("{c}={:.2}%", p.get() * 100.0))
            .collect();
        let bursts: Vec<String> =
            self.bursts.iter().map(|b| format!("@{}+{}ms", b.at_commit, b.length.as_millis())).collect();
        format!("rates [{}] bursts [{}] stop@{}", rates.join(" "), bursts.join(" "), self.stop_at_commit)
    }
}

/// Which kind of request a fault hits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A conditional PUT.
    Put,
    /// A HEAD.
    Head,
    /// A LIST.
    List,
}

/// Whether, and when, a faulted request reaches the store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// It never does.
    Never,
    /// At its usual time.
    OnTime,
    /// Only after the client has given up on it.
    AfterTimeout,
    /// Twice: on time, and again this much later.
    Twice(Duration),
}

/// When the client hears of a faulted request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnswerAt {
    /// After one network leg.
    Quickly,
    /// When a good answer would have come.
    AsUsual,
    /// When its request timeout expires.
    AtTimeout,
}

/// What one injected fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEffect {
    /// Its class.
    pub class: FaultClass,
    /// Whether the request lands in the store anyway.
    pub reach: Reach,
    /// When the client hears back.
    pub answer_at: AnswerAt,
    /// What the client hears instead of the store's answer, if anything.
    pub fault: Option<Fault>,
}

/// When a request lands (possibly twice, possibly never) and when its
/// client hears back, counted from when it was sent. Both worlds, the pure
/// one and the madsim store, follow these rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPlan {
    /// When it is applied in the store, each time it is.
    pub arrivals: Vec<Duration>,
    /// When the client hears (the answer, or `fault`).
    pub answer_after: Duration,
    /// What the client hears instead of the store's answer, if anything.
    pub fault: Option<Fault>,
    /// The fault injected, if any.
    pub class: Option<FaultClass>,
    /// No fault, but the latency drawn outlasts the request timeout.
    pub slow_timeout: bool,
}

impl RequestPlan {
    /// The plan of a request whose latency is `timing` and whose fault, if
    /// any, is `effect`; the client gives up after `timeout`.
    pub fn new(timing: Timing, effect: Option<FaultEffect>, timeout: Duration) -> RequestPlan {
        let arrival = timing.to_store;
        let usual = timing.round_trip();
        let Some(effect) = effect else {
            let slow = usual > timeout;
            return RequestPlan {
                arrivals: vec![arrival],
                answer_after: if slow { timeout } else { usual },
                fault: slow.then_some(Fault::TimedOut),
                class: None,
                slow_timeout: slow,
            };
        };
        let (arrivals, usual) = match effect.reach {
            Reach::Never => (vec![], usual),
            Reach::OnTime => (vec![arrival], usual),
            Reach::AfterTimeout => (vec![timeout + timing.to_store], usual),
            Reach::Twice(gap) => (vec![arrival, arrival + gap], usual + gap),
        };
        let answer_after = match effect.answer_at {
            AnswerAt::Quickly => arrival,
            AnswerAt::AsUsual => usual,
            AnswerAt::AtTimeout => timeout,
        };
        RequestPlan { arrivals, answer_after, fault: effect.fault, class: Some(effect.class), slow_timeout: false }
    }
}

/// How many faults of each class a run injected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts([u64; FaultClass::ALL.len()]);

impl FaultCounts {
    /// The count of one class.
    pub fn get(&self, class: FaultClass) -> u64 {
        self.0[class.index()]
    }

    /// Counts one more of `class`.
    pub fn add(&mut self, class: FaultClass) {
        self.0[class.index()] += 1;
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: &FaultCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Every class with its count, in [`FaultClass::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FaultClass, u64)> + '_ {
        FaultClass::ALL.into_iter().map(|c| (c, self.get(c)))
    }

    /// All faults together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// A change of fault phase, for the trace.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PhaseChange {
    /// A burst began; it lasts until then.
    BurstStarted {
        /// When it ends.
        until: Time,
    },
    /// No more faults from now on.
    FaultsStopped,
}

/// Decides, request by request, whether a fault strikes.
#[derive(Clone, Debug)]
pub struct FaultInjector {
    knobs: FaultKnobs,
    counts: FaultCounts,
    active: bool,
    burst_until: Option<Time>,
    next_burst: usize,
}

impl FaultInjector {
    /// An injector for these knobs, with faults on.
    pub fn new(knobs: FaultKnobs) -> FaultInjector {
        let active = knobs != FaultKnobs::none();
        FaultInjector { knobs, counts: FaultCounts::default(), active, burst_until: None, next_burst: 0 }
    }

    /// Faults injected so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    /// Counts a fault the world injected itself (a crash, a zombie, …).
    pub fn count(&mut self, class: FaultClass) {
        self.counts.add(class);
    }

    /// Whether faults are still being injected.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The workload issued commit `index`: bursts may start, faults may stop.
    pub fn on_commit_issued(&mut self, index: u64, now: Time) -> Option<PhaseChange> {
        if !self.active {
            return None;
        }
        if index >= self.knobs.stop_at_commit {
            self.active = false;
            self.burst_until = None;
            return Some(PhaseChange::FaultsStopped);
        }
        let burst = self.knobs.bursts.get(self.next_burst).copied()?;
        if burst.at_commit > index {
            return None;
        }
        self.next_burst += 1;
        let until = now + burst.length;
        self.burst_until = Some(until);
        Some(PhaseChange::BurstStarted { until })
    }

    /// Ends the fault phase (the workload is over).
    pub fn stop(&mut self) -> Option<PhaseChange> {
        let was = std::mem::replace(&mut self.active, false);
        self.burst_until = None;
        was.then_some(PhaseChange::FaultsStopped)
    }

    /// Whether a fault strikes a request of `kind` sent at `now`, and what it
    /// does. An SDK retry only doubles PUTs (a doubled read is harmless);
    /// only a PUT has a body to damage.
    pub fn inject(&mut self, now: Time, kind: RequestKind, rng: &mut ChaCha8Rng) -> Option<FaultEffect> {
        if !self.active {
            return None;
        }
        let class =
            if self.burst_until.is_some_and(|until| now < until) { FaultClass::Burst } else { self.draw_class(rng)? };
        if matches!(class, FaultClass::Conflict | FaultClass::SdkRetry | FaultClass::BodyDamaged)
            && kind != RequestKind::Put
        {
            return None;
        }
        self.counts.add(class);
        Some(effect(class, rng))
    }

    fn draw_class(&self, rng: &mut ChaCha8Rng) -> Option<FaultClass> {
        let mut u: f64 = rng.random();
        for (class, rate) in FaultClass::PER_REQUEST.iter().zip(self.knobs.rates) {
            if u < rate.get() {
                return Some(*class);
            }
            u -= rate.get();
        }
        None
    }
}

fn effect(class: FaultClass, rng: &mut ChaCha8Rng) -> FaultEffect {
    let coin = |rng: &mut ChaCha8Rng| chance(rng, 0.5);
    let (reach, answer_at, fault) = match class {
        FaultClass::FailBeforeApply => {
            let fault = if coin(rng) { Fault::ConnectionFailed } else { Fault::ServerError { status: 500 } };
            (Reach::Never, AnswerAt::Quickly, fault)
        }
        FaultClass::ResponseLost => {
            let reach = if chance(rng, 0.25) { Reach::AfterTimeout } else { Reach::OnTime };
            (reach, AnswerAt::AtTimeout, Fault::TimedOut)
        }
        FaultClass::TimeoutNotApplied => (Reach::Never, AnswerAt::AtTimeout, Fault::TimedOut),
        FaultClass::ConnectionReset => {
            let reach = if coin(rng) { Reach::OnTime } else { Reach::Never };
            (reach, AnswerAt::AsUsual, Fault::ConnectionFailed)
        }
        FaultClass::ServerError => {
            let reach = if coin(rng) { Reach::OnTime } else { Reach::Never };
            let status = [500, 502, 504][rng.random_range(0..3)];
            (reach, AnswerAt::AsUsual, Fault::ServerError { status })
        }
        FaultClass::Throttled => (Reach::Never, AnswerAt::AsUsual, Fault::Throttled),
        FaultClass::Conflict => (Reach::Never, AnswerAt::AsUsual, Fault::Conflict),
        FaultClass::BodyDamaged => (Reach::Never, AnswerAt::AsUsual, Fault::BodyDamaged),
        FaultClass::SdkRetry => {
            let gap = Duration::from_micros(rng.random_range(0..=10_000));
            return FaultEffect { class, reach: Reach::Twice(gap), answer_at: AnswerAt::AsUsual, fault: None };
        }
        FaultClass::Crash | FaultClass::Zombie | FaultClass::DualRecovery => {
            unreachable!("{class} is not a per-request fault")
        }
        FaultClass::Burst => {
            let fault = match rng.random_range(0..3) {
                0 => Fault::ConnectionFailed,
                1 => Fault::Throttled,
                _ => Fault::ServerError { status: 500 },
            };
            (Reach::Never, AnswerAt::Quickly, fault)
        }
    };
    FaultEffect { class, reach, answer_at, fault: Some(fault) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{stream, Stream};

    fn knobs(rate: f64) -> FaultKnobs {
        FaultKnobs {
            rates: [Probability::new(rate); PER_REQUEST_CLASSES],
            bursts: vec![BurstPlan { at_commit: 5, length: Duration::from_millis(100) }],
            stop_at_commit: 10,
        }
    }

    #[test]
    fn faults_strike_at_about_their_rate_and_are_counted() {
        let mut inj = FaultInjector::new(knobs(0.01));
        let mut rng = stream(1, Stream::Faults);
        let hits = (0..100_000).filter(|_| inj.inject(Time::ZERO, RequestKind::Put, &mut rng).is_some()).count() as u64;
        // Every per-request class can strike a PUT, each at 1 %.
        assert!((8_300..9_700).contains(&hits), "9% expected, got {hits}");
        assert_eq!(inj.counts().total(), hits);
        assert_eq!(inj.counts().get(FaultClass::Burst), 0);
    }

    #[test]
    fn a_burst_fails_everything_until_it_ends() {
        let mut inj = FaultInjector::new(FaultKnobs { rates: [Probability::NEVER; PER_REQUEST_CLASSES], ..knobs(0.0) });
        let mut rng = stream(1, Stream::Faults);
        assert_eq!(inj.on_commit_issued(4, Time::ZERO), None);
        let start = Time::from_millis(7);
        assert_eq!(inj.on_commit_issued(5, start), Some(PhaseChange::BurstStarted { until: Time::from_millis(107) }));
        for ms in [7, 50, 106] {
            let e = inj.inject(Time::from_millis(ms), RequestKind::Head, &mut rng);
            assert_eq!(e.map(|e| (e.class, e.reach)), Some((FaultClass::Burst, Reach::Never)));
        }
        assert!(inj.inject(Time::from_millis(107), RequestKind::Put, &mut rng).is_none());
    }

    #[test]
    fn nothing_is_injected_once_faults_stop() {
        let mut inj = FaultInjector::new(knobs(0.14));
        let mut rng = stream(2, Stream::Faults);
        assert_eq!(inj.on_commit_issued(10, Time::ZERO), Some(PhaseChange::FaultsStopped));
        assert!(!inj.is_active());
        assert!((0..10_000).all(|_| inj.inject(Time::ZERO, RequestKind::Put, &mut rng).is_none()));
        assert_eq!(inj.stop(), None, "already stopped");
    }

    #[test]
    fn counts_are_kept_in_the_order_of_all() {
        for (i, class) in FaultClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i, "{class}");
        }
        assert!(FaultClass::PER_REQUEST.iter().all(|c| c.rate_slot().is_some()));
        assert_eq!(FaultClass::Burst.rate_slot(), None);
    }

    #[test]
    fn reads_never_get_a_409() {
        let only_conflicts = knobs(0.0).with_rate(FaultClass::Conflict, Probability::new(1.0));
        let mut inj = FaultInjector::new(only_conflicts);
        let mut rng = stream(3, Stream::Faults);
        assert!(inj.inject(Time::ZERO, RequestKind::Head, &mut rng).is_none());
        let put = inj.inject(Time::ZERO, RequestKind::Put, &mut rng);
        assert_eq!(put.map(|e| e.fault), Some(Some(Fault::Conflict)));
    }

    #[test]
    fn only_puts_have_a_body_to_damage() {
        let mut inj = FaultInjector::new(knobs(0.0).with_rate(FaultClass::BodyDamaged, Probability::new(1.0)));
        let mut rng = stream(5, Stream::Faults);
        assert!(inj.inject(Time::ZERO, RequestKind::Head, &mut rng).is_none());
        assert!(inj.inject(Time::ZERO, RequestKind::List, &mut rng).is_none());
        let put = inj.inject(Time::ZERO, RequestKind::Put, &mut rng).expect("a PUT is damaged");
        assert_eq!((put.reach, put.answer_at, put.fault), (Reach::Never, AnswerAt::AsUsual, Some(Fault::BodyDamaged)));
        assert_eq!(inj.counts().get(FaultClass::BodyDamaged), 1);
    }

    #[test]
    fn response_lost_may_write_and_times_out() {
        let mut rng = stream(4, Stream::Faults);
        for _ in 0..100 {
            let e = effect(FaultClass::ResponseLost, &mut rng);
            assert_ne!(e.reach, Reach::Never);
            assert_eq!((e.answer_at, e.fault), (AnswerAt::AtTimeout, Some(Fault::TimedOut)));
        }
    }
}
