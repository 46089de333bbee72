//! The application: producers that hand over commits, when and how big.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use crate::sampling::{chance, exponential, log_uniform, log_uniform_u64, uniform_duration};

/// One producer of commits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerId(pub u32);

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.0)
    }
}

/// How each producer spaces its commits.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Arrival {
    /// Memoryless arrivals with this mean gap.
    Steady {
        /// The mean gap between two commits of one producer.
        mean_gap: Duration,
    },
    /// Runs of commits in quick succession, then a pause.
    Bursty {
        /// Commits per run (at most).
        run: u32,
        /// Gap inside a run.
        within: Duration,
        /// Mean pause between runs.
        pause: Duration,
    },
    /// Steady, but now and then the producer goes quiet for a while: the
    /// machine's idle fast path and batch timeouts get exercised.
    IdleGaps {
        /// The mean gap between two commits of one producer.
        mean_gap: Duration,
        /// How often a gap is an idle one.
        idle_chance: f64,
        /// The longest idle gap.
        idle_max: Duration,
    },
}

/// How big commits are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CommitSizes {
    /// 0–64 bytes (empty commits included).
    Tiny,
    /// 16 B–1 KiB, log-uniform.
    Small,
    /// 1 B–64 KiB, log-uniform.
    Mixed,
    /// Mostly small, one in twenty 64–512 KiB.
    Large,
}

impl CommitSizes {
    /// The largest commit this distribution makes.
    pub fn max(self) -> usize {
        match self {
            CommitSizes::Tiny => 64,
            CommitSizes::Small => 1 << 10,
            CommitSizes::Mixed => 64 << 10,
            CommitSizes::Large => 512 << 10,
        }
    }

    fn sample(self, rng: &mut ChaCha8Rng) -> usize {
        let n = match self {
            CommitSizes::Tiny => rng.random_range(0..=64),
            CommitSizes::Small => log_uniform_u64(rng, 16, 1 << 10),
            CommitSizes::Mixed => log_uniform_u64(rng, 1, 64 << 10),
            CommitSizes::Large if chance(rng, 0.05) => log_uniform_u64(rng, 64 << 10, 512 << 10),
            CommitSizes::Large => log_uniform_u64(rng, 16, 4 << 10),
        };
        n as usize
    }
}

/// The workload of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadKnobs {
    /// Commits the producers issue in all.
    pub commits: u64,
    /// How many producers issue them.
    pub producers: u32,
    /// How each producer spaces its commits.
    pub arrival: Arrival,
    /// How big they are.
    pub sizes: CommitSizes,
}

impl WorkloadKnobs {
    /// Knobs for a run of `commits` commits.
    pub fn draw(rng: &mut ChaCha8Rng, commits: u64) -> WorkloadKnobs {
        let producers = [1, 1, 2, 3, 4, 8][rng.random_range(0..6)];
        let mean_gap = Duration::from_secs_f64(log_uniform(rng, 0.000_05, 0.02));
        let arrival = match rng.random_range(0..3) {
            0 => Arrival::Steady { mean_gap },
            1 => Arrival::Bursty {
                run: rng.random_range(2..=200),
                within: Duration::from_micros(rng.random_range(1..=200)),
                pause: Duration::from_secs_f64(log_uniform(rng, 0.005, 0.5)),
            },
            _ => Arrival::IdleGaps {
                mean_gap,
                idle_chance: log_uniform(rng, 0.005, 0.05),
                idle_max: Duration::from_secs_f64(log_uniform(rng, 0.05, 3.0)),
            },
        };
        let sizes = [CommitSizes::Tiny, CommitSizes::Small, CommitSizes::Small, CommitSizes::Mixed, CommitSizes::Large]
            [rng.random_range(0..5)];
        WorkloadKnobs { commits, producers, arrival, sizes }
    }

    /// One line for a trace header.
    pub fn summary(&self) -> String {
        format!("{} commits, {} producers, {:?}, {:?} sizes", self.commits, self.producers, self.arrival, self.sizes)
    }
}

/// Issues commits: when each producer's next one comes, and its bytes.
#[derive(Debug)]
pub struct Workload {
    knobs: WorkloadKnobs,
    rng: ChaCha8Rng,
    issued: u64,
    /// Per producer, commits left in its current run ([`Arrival::Bursty`]).
    run_left: Vec<u32>,
}

impl Workload {
    /// A workload drawing from `rng`.
    pub fn new(knobs: WorkloadKnobs, rng: ChaCha8Rng) -> Workload {
        let run_left = vec![0; knobs.producers as usize];
        Workload { knobs, rng, issued: 0, run_left }
    }

    /// The knobs.
    pub fn knobs(&self) -> &WorkloadKnobs {
        &self.knobs
    }

    /// Every producer.
    pub fn producers(&self) -> impl Iterator<Item = ProducerId> {
        (0..self.knobs.producers).map(ProducerId)
    }

    /// Commits issued so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Whether every commit has been issued.
    pub fn is_exhausted(&self) -> bool {
        self.issued >= self.knobs.commits
    }

    /// The next commit, with its 0-based index among all issued; `None` once
    /// the workload is exhausted. The payload starts with the index, so two
    /// commits never share their bytes.
    pub fn next_commit(&mut self, producer: ProducerId) -> Option<(u64, Bytes)> {
        if self.is_exhausted() {
            return None;
        }
        let index = self.issued;
        self.issued += 1;
        let len = self.knobs.sizes.sample(&mut self.rng);
        let mut payload = vec![0u8; len];
        fill_repeating(&mut payload, &self.rng.next_u64().to_le_bytes());
        let tag = [index.to_le_bytes(), u64::from(producer.0).to_le_bytes()].concat();
        let head = tag.len().min(len);
        payload[..head].copy_from_slice(&tag[..head]);
        Some((index, Bytes::from(payload)))
    }

    /// How long after its previous commit `producer` issues the next one.
    pub fn next_gap(&mut self, producer: ProducerId) -> Duration {
        let rng = &mut self.rng;
        match self.knobs.arrival {
            Arrival::Steady { mean_gap } => exponential(rng, mean_gap),
            Arrival::Bursty { run, within, pause } => {
                let left = &mut self.run_left[producer.0 as usize];
                if *left == 0 {
                    *left = rng.random_range(1..=run);
                    exponential(rng, pause)
                } else {
                    *left -= 1;
                    within
                }
            }
            Arrival::IdleGaps { mean_gap, idle_chance, idle_max } => {
                if chance(rng, idle_chance) {
                    uniform_duration(rng, idle_max / 4, idle_max)
                } else {
                    exponential(rng, mean_gap)
                }
            }
        }
    }
}

/// Fills `out` with `pattern` over and over, by doubling copies: cheap even
/// unoptimised, which keeps debug-build test sweeps fast.
fn fill_repeating(out: &mut [u8], pattern: &[u8]) {
    let first = pattern.len().min(out.len());
    out[..first].copy_from_slice(&pattern[..first]);
    let mut filled = first;
    while filled > 0 && filled < out.len() {
        let n = filled.min(out.len() - filled);
        out.copy_within(..n, filled);
        filled += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{stream, Stream};

    fn workload(commits: u64, sizes: CommitSizes) -> Workload {
        let knobs = WorkloadKnobs {
            commits,
            producers: 2,
            arrival: Arrival::Bursty { run: 3, within: Duration::from_micros(5), pause: Duration::from_millis(10) },
            sizes,
        };
        Workload::new(knobs, stream(9, Stream::Workload))
    }

    #[test]
    fn issues_exactly_the_commits_asked_for_each_unique() {
        let mut w = workload(50, CommitSizes::Small);
        let mut seen = std::collections::BTreeSet::new();
        while let Some((index, payload)) = w.next_commit(ProducerId(index_producer(seen.len()))) {
            assert_eq!(index, seen.len() as u64);
            assert!(payload.len() <= CommitSizes::Small.max());
            assert!(seen.insert(payload));
        }
        assert!(w.is_exhausted());
        assert_eq!(seen.len(), 50);
    }

    fn index_producer(i: usize) -> u32 {
        (i % 2) as u32
    }

    #[test]
    fn repeating_fill_covers_every_byte() {
        for len in [0, 1, 7, 8, 9, 100] {
            let mut out = vec![0u8; len];
            fill_repeating(&mut out, &[1, 2, 3]);
            assert!(out.iter().enumerate().all(|(i, b)| *b == [1, 2, 3][i % 3]), "{len}");
        }
    }

    #[test]
    fn tiny_commits_may_be_empty_and_stay_small() {
        let mut w = workload(500, CommitSizes::Tiny);
        let lens: Vec<usize> = std::iter::from_fn(|| w.next_commit(ProducerId(0))).map(|(_, p)| p.len()).collect();
        assert!(lens.contains(&0));
        assert!(lens.iter().all(|l| *l <= 64));
    }

    #[test]
    fn bursty_producers_alternate_runs_and_pauses() {
        let mut w = workload(10, CommitSizes::Tiny);
        let gaps: Vec<Duration> = (0..40).map(|_| w.next_gap(ProducerId(1))).collect();
        let within = gaps.iter().filter(|g| **g == Duration::from_micros(5)).count();
        assert!(within > 5 && within < 35, "{within} of 40 inside runs");
    }
}
