//! Named scenarios (`scenarios/*.toml`): a seed for everything left
//! unsaid, plus a workload, a config, a fault schedule and takeovers that
//! override what the seed drew. Faults and takeovers not listed are off.
//!
//! ```toml
//! seed = 7
//! commits = 60
//! start = "recover"                    # or "resume" (default)
//! [config]                             # any of these
//! max_in_flight_requests = 8
//! max_retry_attempts = 3
//! batch_size_threshold = 4096
//! batch_timeout_ms = 5.0
//! hedge_after_ms = 30.0                # hedging is off unless set
//! hedge_adaptive = true                # learn the delay, hedge_after_ms its floor
//! [workload]
//! producers = 2
//! arrival = "steady"                   # or "bursty"
//! mean_gap_ms = 2.0                    # steady
//! run = 20                             # bursty: commits per run,
//! within_us = 50                       #   gap inside a run,
//! pause_ms = 100.0                     #   mean pause between runs
//! sizes = "small"                      # tiny, small, mixed, large
//! [faults]
//! rates = { response-lost = 0.05 }     # per request, by class name
//! bursts = [{ at_commit = 20, length_ms = 500.0 }]
//! stop_at_commit = 50
//! [takeovers]
//! crashes = [25]                       # the leader crashes at these commits
//! zombies = [{ at_commit = 30, pause_ms = 2000.0 }]
//! dual_recovery = 1.0                  # chance a new leader comes as two
//! restart_ms = 10.0
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::faults::{BurstPlan, FaultClass, FaultKnobs, Probability};
use crate::knobs::{RunKnobs, TakeoverKnobs, ZombiePlan};
use crate::workload::{Arrival, CommitSizes};
use crate::world::{RunOptions, StartMode, World};
use crate::RunReport;

/// A scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The seed for everything the file leaves unsaid.
    pub seed: u64,
    /// Commits the workload issues.
    pub commits: u64,
    /// `resume` (default) or `recover`.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    config: ConfigOverrides,
    #[serde(default)]
    workload: WorkloadOverrides,
    #[serde(default)]
    faults: FaultSchedule,
    #[serde(default)]
    takeovers: Takeovers,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigOverrides {
    max_in_flight_requests: Option<u32>,
    max_retry_attempts: Option<u32>,
    batch_size_threshold: Option<u64>,
    batch_timeout_ms: Option<f64>,
    hedge_after_ms: Option<f64>,
    hedge_adaptive: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadOverrides {
    producers: Option<u32>,
    arrival: Option<String>,
    mean_gap_ms: Option<f64>,
    run: Option<u32>,
    within_us: Option<u64>,
    pause_ms: Option<f64>,
    sizes: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSchedule {
    #[serde(default)]
    rates: BTreeMap<String, f64>,
    #[serde(default)]
    bursts: Vec<Burst>,
    stop_at_commit: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Burst {
    at_commit: u64,
    length_ms: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Takeovers {
    #[serde(default)]
    crashes: Vec<u64>,
    #[serde(default)]
    zombies: Vec<Zombie>,
    #[serde(default)]
    dual_recovery: f64,
    restart_ms: Option<f64>,
    trigger_ms: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Zombie {
    at_commit: u64,
    pause_ms: f64,
}

fn ms(x: f64) -> Duration {
    Duration::from_secs_f64(x.max(0.0) / 1000.0)
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// How the run starts.
    pub fn options(&self, trace: bool) -> anyhow::Result<RunOptions> {
        let start = match self.start.as_deref() {
            None | Some("resume") => StartMode::Resume,
            Some("recover") => StartMode::Recover,
            Some(other) => bail!("start = {other:?}: expected \"resume\" or \"recover\""),
        };
        Ok(RunOptions { commits: self.commits, trace, start, compact_fences: true, ..RunOptions::default() })
    }

    /// The seed's knobs with the scenario's overrides.
    pub fn knobs(&self) -> anyhow::Result<RunKnobs> {
        let mut k = RunKnobs::draw(self.seed, self.commits);
        let mut c = k.config.get().clone();
        let o = &self.config;
        if let Some(n) = o.max_in_flight_requests {
            c.max_in_flight_requests = n;
            c.target_pool_size = n;
        }
        c.max_retry_attempts = o.max_retry_attempts.unwrap_or(c.max_retry_attempts);
        c.batch_size_threshold = o.batch_size_threshold.unwrap_or(c.batch_size_threshold);
        c.batch_timeout = o.batch_timeout_ms.map_or(c.batch_timeout, ms);
        c.hedge_after = o.hedge_after_ms.map(ms);
        c.hedge_adaptive = o.hedge_adaptive.unwrap_or(false);
        let w = &self.workload;
        if let Some(s) = &w.sizes {
            k.workload.sizes = match s.as_str() {
                "tiny" => CommitSizes::Tiny,
                "small" => CommitSizes::Small,
                "mixed" => CommitSizes::Mixed,
                "large" => CommitSizes::Large,
                other => bail!("sizes = {other:?}: expected tiny, small, mixed or large"),
            };
        }
        c.byte_budget = c.byte_budget.max(2 * k.workload.sizes.max() as u64).max(c.batch_size_threshold);
        k.config = c.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
        k.workload.producers = w.producers.unwrap_or(k.workload.producers);
        k.workload.arrival = match w.arrival.as_deref() {
            None => k.workload.arrival,
            Some("steady") => Arrival::Steady { mean_gap: ms(w.mean_gap_ms.unwrap_or(2.0)) },
            Some("bursty") => Arrival::Bursty {
                run: w.run.unwrap_or(20),
                within: Duration::from_micros(w.within_us.unwrap_or(50)),
                pause: ms(w.pause_ms.unwrap_or(100.0)),
            },
            Some(other) => bail!("arrival = {other:?}: expected steady or bursty"),
        };
        let f = &self.faults;
        let mut faults = FaultKnobs::none();
        for (name, rate) in &f.rates {
            let Some(class) = FaultClass::PER_REQUEST.into_iter().find(|c| c.name() == name) else {
                bail!("faults.rates: no per-request fault class {name:?}");
            };
            faults = faults.with_rate(class, Probability::new(*rate));
        }
        faults.bursts =
            f.bursts.iter().map(|b| BurstPlan { at_commit: b.at_commit, length: ms(b.length_ms) }).collect();
        faults.stop_at_commit = f.stop_at_commit.unwrap_or(self.commits);
        k.faults = faults;
        let t = &self.takeovers;
        k.takeovers = TakeoverKnobs {
            crashes: t.crashes.clone(),
            zombies: t.zombies.iter().map(|z| ZombiePlan { at_commit: z.at_commit, pause: ms(z.pause_ms) }).collect(),
            dual_recovery: t.dual_recovery,
            trigger_delay: t.trigger_ms.map_or(Duration::ZERO, ms),
            restart_delay: t.restart_ms.map_or(Duration::from_millis(10), ms),
        };
        Ok(k)
    }

    /// Runs the scenario.
    pub fn run(&self, trace: bool) -> anyhow::Result<RunReport> {
        self.run_with(&self.options(trace)?)
    }

    /// Runs the scenario with options of the caller's (a planted bug, say).
    pub fn run_with(&self, options: &RunOptions) -> anyhow::Result<RunReport> {
        let mut world = World::new(self.seed, self.knobs()?, options);
        world.run();
        Ok(world.into_report())
    }
}
