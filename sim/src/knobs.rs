//! Everything a seed decides before the run starts: the writer's config, its
//! identity, the workload, the latency and the fault rates.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use s3wal::{Config, Identity, LeaderId, ValidConfig};

use crate::faults::FaultKnobs;
use crate::latency::LatencyKnobs;
use crate::sampling::{chance, log_uniform, log_uniform_u64, stream, uniform_duration, Stream};
use crate::workload::WorkloadKnobs;

/// The parameters of one run.
#[derive(Clone, Debug)]
pub struct RunKnobs {
    /// The writer's configuration, validated.
    pub config: ValidConfig,
    /// The first instance's identity.
    pub identity: Identity,
    /// What the application does.
    pub workload: WorkloadKnobs,
    /// How slow the store is.
    pub latency: LatencyKnobs,
    /// What goes wrong.
    pub faults: FaultKnobs,
    /// How long the driver waits for an answer before reporting a timeout.
    /// Longer than any round trip the latency model makes.
    pub request_timeout: Duration,
    /// How long after the last commit the application asks for a shutdown.
    pub shutdown_delay: Duration,
    /// Crashes, zombies and concurrent recoveries.
    pub takeovers: TakeoverKnobs,
}

/// An instance paused while a new one takes over, then resumed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ZombiePlan {
    /// The leader is paused when the workload issues this commit (0-based).
    pub at_commit: u64,
    /// How long it stays paused.
    pub pause: Duration,
}

/// The takeovers of one run: each drawn from the seed (its own stream, so
/// the other knobs stay what they were) and counted as a fault class.
#[derive(Clone, Debug, PartialEq)]
pub struct TakeoverKnobs {
    /// The leader crashes when the workload issues each of these commits.
    pub crashes: Vec<u64>,
    /// Leaders paused and resumed.
    pub zombies: Vec<ZombiePlan>,
    /// The chance a new leader comes as two instances recovering at once.
    pub dual_recovery: f64,
    /// The most a crash or pause lags behind the commit that triggers it.
    pub trigger_delay: Duration,
    /// How long after a crash or pause the new instance starts.
    pub restart_delay: Duration,
}

impl TakeoverKnobs {
    /// No takeover at all.
    pub fn none() -> TakeoverKnobs {
        TakeoverKnobs {
            crashes: Vec::new(),
            zombies: Vec::new(),
            dual_recovery: 0.0,
            trigger_delay: Duration::from_millis(20),
            restart_delay: Duration::ZERO,
        }
    }

    /// Knobs for a run of `commits` commits: half the runs have none.
    pub fn draw(rng: &mut ChaCha8Rng, commits: u64) -> TakeoverKnobs {
        let mut k = TakeoverKnobs::none();
        k.trigger_delay = uniform_duration(rng, Duration::ZERO, Duration::from_millis(50));
        k.restart_delay = uniform_duration(rng, Duration::ZERO, Duration::from_millis(200));
        if chance(rng, 0.5) || commits == 0 {
            return k;
        }
        let crashes = [0, 1, 1, 2][rng.random_range(0..4)];
        k.crashes = (0..crashes).map(|_| rng.random_range(0..commits)).collect();
        k.crashes.sort_unstable();
        if chance(rng, 0.5) {
            let pause = Duration::from_secs_f64(log_uniform(rng, 0.02, 5.0));
            k.zombies.push(ZombiePlan { at_commit: rng.random_range(0..commits), pause });
        }
        if chance(rng, 0.5) {
            k.dual_recovery = 0.5;
        }
        k
    }

    /// One line for a trace header.
    pub fn summary(&self) -> String {
        let zombies: Vec<String> =
            self.zombies.iter().map(|z| format!("@{}+{}ms", z.at_commit, z.pause.as_millis())).collect();
        format!(
            "crashes {:?} zombies [{}] dual {:.0}% restart {}ms",
            self.crashes,
            zombies.join(" "),
            self.dual_recovery * 100.0,
            self.restart_delay.as_millis()
        )
    }
}

impl RunKnobs {
    /// The knobs `seed` gives a run of `commits` commits.
    pub fn draw(seed: u64, commits: u64) -> RunKnobs {
        let mut rng = stream(seed, Stream::Knobs);
        let workload = WorkloadKnobs::draw(&mut rng, commits);
        let config = with_hedging(draw_config(&mut rng, workload.sizes.max()), &mut stream(seed, Stream::Hedging));
        let identity = Identity { leader: LeaderId(rng.random()), nonce: rng.random(), jitter_seed: rng.random() };
        RunKnobs {
            config,
            identity,
            workload,
            latency: LatencyKnobs::draw(&mut rng),
            faults: FaultKnobs::draw(&mut rng, &mut stream(seed, Stream::BodyDamage), commits),
            request_timeout: uniform_duration(&mut rng, Duration::from_secs(7), Duration::from_secs(15)),
            shutdown_delay: uniform_duration(&mut rng, Duration::ZERO, Duration::from_millis(100)),
            takeovers: TakeoverKnobs::draw(&mut stream(seed, Stream::Takeovers), commits),
        }
    }

    /// The knobs, one line each: config, workload, faults.
    pub fn summary_lines(&self) -> Vec<String> {
        vec![
            format!("config {}", self.config_summary()),
            format!("workload {}", self.workload.summary()),
            format!("faults {}", self.faults.summary()),
            format!("takeovers {}", self.takeovers.summary()),
        ]
    }

    /// The config in one line, for a trace header.
    pub fn config_summary(&self) -> String {
        let c = self.config.get();
        format!(
            "window {} batch {}B/{}us retries {} base {}us max {}ms budget {}B hedge {}",
            c.max_in_flight_requests,
            c.batch_size_threshold,
            c.batch_timeout.as_micros(),
            c.max_retry_attempts,
            c.retry_base_delay.as_micros(),
            c.retry_max_delay.as_millis(),
            c.byte_budget,
            hedge_summary(c)
        )
    }
}

/// `off`, the delay, or the adaptive delay's floor.
fn hedge_summary(c: &Config) -> String {
    match c.hedge_after {
        None => "off".to_string(),
        Some(d) if c.hedge_adaptive => format!("adaptive from {}us", d.as_micros()),
        Some(d) => format!("{}us", d.as_micros()),
    }
}

/// A config inside the ranges the simulator explores, valid by construction
/// (and checked by [`Config::validate`] all the same).
fn draw_config(rng: &mut ChaCha8Rng, max_commit: usize) -> ValidConfig {
    let max_in_flight_requests = if chance(rng, 0.9) { rng.random_range(1..=64) } else { rng.random_range(65..=1000) };
    let batch_size_threshold = log_uniform_u64(rng, 200, 1 << 20);
    let retry_base_delay = Duration::from_secs_f64(log_uniform(rng, 0.001, 0.2));
    let retry_max_delay =
        (retry_base_delay * (1 << rng.random_range(0..=8))).clamp(retry_base_delay, Duration::from_secs(30));
    // A commit must fit the budget, and a budget under a few commits would
    // serialize everything: keep room for about two of the largest. (With
    // the threshold at 200 or more, the largest always fits with its
    // 64 bytes of bookkeeping.)
    let budget_floor = batch_size_threshold.max(2 * max_commit as u64);
    let byte_budget = log_uniform_u64(rng, budget_floor, budget_floor.max(128 << 20));
    valid(Config {
        batch_timeout: uniform_duration(rng, Duration::from_millis(1), Duration::from_millis(20)),
        batch_size_threshold,
        max_in_flight_requests,
        target_pool_size: max_in_flight_requests,
        max_retry_attempts: rng.random_range(0..=6),
        retry_base_delay,
        retry_max_delay,
        byte_budget,
        health_probe_interval: Duration::from_secs_f64(log_uniform(rng, 0.05, 10.0)),
        hedge_after: None,
        hedge_adaptive: false,
    })
}

/// Half the runs hedge slow PUTs, after 2 to 200 ms: from far below the
/// drawn round trips (hedging almost every PUT, so the two PUTs of a pair
/// race and collide) to far above them. Half of those learn the delay from
/// the round trips, with the drawn one as its floor.
fn with_hedging(config: ValidConfig, rng: &mut ChaCha8Rng) -> ValidConfig {
    let hedge_after = chance(rng, 0.5).then(|| Duration::from_secs_f64(log_uniform(rng, 0.002, 0.2)));
    let hedge_adaptive = hedge_after.is_some() && chance(rng, 0.5);
    valid(Config { hedge_after, hedge_adaptive, ..config.get().clone() })
}

fn valid(config: Config) -> ValidConfig {
    match config.clone().validate() {
        Ok(valid) => valid,
        Err(errors) => unreachable!("the simulator drew an invalid config {config:?}: {errors}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_draws_a_valid_config_in_range() {
        let mut big_windows = 0;
        for seed in 0..2000 {
            let k = RunKnobs::draw(seed, 1000);
            let c = k.config.get();
            assert!((1..=1000).contains(&c.max_in_flight_requests));
            big_windows += u32::from(c.max_in_flight_requests > 64);
            assert!((200..=1 << 20).contains(&c.batch_size_threshold));
            assert!(c.max_retry_attempts <= 6);
            assert!(k.config.max_commit_len() >= k.workload.sizes.max());
            assert!(k.request_timeout > 2 * k.latency.cap + k.latency.processing.1 + Duration::from_millis(500));
        }
        assert!((100..300).contains(&big_windows), "about 10% big windows: {big_windows}");
    }

    #[test]
    fn a_seed_always_draws_the_same_knobs() {
        let (a, b) = (RunKnobs::draw(42, 1000), RunKnobs::draw(42, 1000));
        assert_eq!(a.config, b.config);
        assert_eq!(a.faults, b.faults);
        assert_eq!(a.workload, b.workload);
    }
}
