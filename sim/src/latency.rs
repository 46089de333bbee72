//! How long a request takes: a log-normal body with a rare Pareto tail.
//!
//! Object stores answer most requests in tens of milliseconds and a few in
//! seconds. A heavy tail is what reorders completions: a PUT sent later often
//! finishes first, which is exactly what the window and the ordered acks must
//! cope with. Every draw comes from the run's seeded latency stream.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use crate::sampling::{chance, log_uniform, open_unit, standard_normal, uniform_duration};

/// The shape of the latency distribution of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyKnobs {
    /// Median of the log-normal body (one way).
    pub median: Duration,
    /// Spread of the log-normal body: the standard deviation of `ln latency`.
    pub sigma: f64,
    /// How often a leg falls into the Pareto tail instead.
    pub tail_probability: f64,
    /// Where the tail starts.
    pub tail_floor: Duration,
    /// Pareto shape: smaller is heavier.
    pub tail_alpha: f64,
    /// No leg takes longer than this. Kept below the client's request
    /// timeout, so that only injected faults time out.
    pub cap: Duration,
    /// Upload speed: a 1 MiB body takes `1 MiB / bytes_per_ms` ms more.
    pub bytes_per_ms: u64,
    /// Server-side processing of a conditional PUT, shortest and longest.
    pub processing: (Duration, Duration),
}

impl LatencyKnobs {
    /// Knobs for one run: a median of 5–25 ms per leg (≈ 10–50 ms round trip).
    pub fn draw(rng: &mut ChaCha8Rng) -> LatencyKnobs {
        LatencyKnobs {
            median: Duration::from_secs_f64(log_uniform(rng, 0.005, 0.025)),
            sigma: log_uniform(rng, 0.2, 0.8),
            tail_probability: log_uniform(rng, 0.0005, 0.02),
            tail_floor: Duration::from_millis(150),
            tail_alpha: log_uniform(rng, 1.1, 2.5),
            cap: Duration::from_secs(3),
            bytes_per_ms: log_uniform(rng, 20_000.0, 200_000.0) as u64,
            processing: (Duration::from_micros(200), Duration::from_millis(8)),
        }
    }

    /// One fixed, realistic S3 (same region, from EC2), for measuring latency
    /// rather than hunting bugs: a small PUT's round trip is about 25 ms at
    /// the median (two 10 ms legs and a few ms of processing), about one PUT
    /// in a hundred has a leg in a Pareto tail from 80 ms (median ≈ 130 ms,
    /// capped at 2 s), and one connection uploads about 80 MB/s. These are
    /// the orders of magnitude AWS documents ("100–200 ms" for the slow
    /// requests worth retrying) and single-stream PUT throughput measured
    /// in-region; [`LatencyKnobs::draw`] spans far wider on purpose.
    pub fn typical_s3() -> LatencyKnobs {
        LatencyKnobs {
            median: Duration::from_millis(10),
            sigma: 0.3,
            tail_probability: 0.005,
            tail_floor: Duration::from_millis(80),
            tail_alpha: 1.5,
            cap: Duration::from_secs(2),
            bytes_per_ms: 80_000,
            processing: (Duration::from_millis(1), Duration::from_millis(6)),
        }
    }
}

/// The timeline of one request that reaches the store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// From sending until the store applies it.
    pub to_store: Duration,
    /// How long the store keeps processing it (the 409 window).
    pub processing: Duration,
    /// From the end of processing until the answer is back.
    pub to_client: Duration,
}

impl Timing {
    /// From sending until the answer is back.
    pub fn round_trip(&self) -> Duration {
        self.to_store + self.processing + self.to_client
    }
}

/// Draws latencies from the run's knobs.
#[derive(Clone, Debug)]
pub struct LatencyModel {
    knobs: LatencyKnobs,
}

impl LatencyModel {
    /// A model with these knobs.
    pub fn new(knobs: LatencyKnobs) -> LatencyModel {
        LatencyModel { knobs }
    }

    /// The knobs.
    pub fn knobs(&self) -> &LatencyKnobs {
        &self.knobs
    }

    /// The timeline of a request carrying `body_len` bytes.
    pub fn timing(&self, rng: &mut ChaCha8Rng, body_len: usize) -> Timing {
        let upload = Duration::from_secs_f64(body_len as f64 / self.knobs.bytes_per_ms as f64 / 1e3);
        let (lo, hi) = self.knobs.processing;
        Timing { to_store: self.leg(rng) + upload, processing: uniform_duration(rng, lo, hi), to_client: self.leg(rng) }
    }

    /// One network leg.
    pub fn leg(&self, rng: &mut ChaCha8Rng) -> Duration {
        let k = &self.knobs;
        let secs = if chance(rng, k.tail_probability) {
            k.tail_floor.as_secs_f64() / open_unit(rng).powf(1.0 / k.tail_alpha)
        } else {
            k.median.as_secs_f64() * (k.sigma * standard_normal(rng)).exp()
        };
        Duration::from_secs_f64(secs.min(k.cap.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{stream, Stream};

    fn knobs() -> LatencyKnobs {
        LatencyKnobs {
            median: Duration::from_millis(12),
            sigma: 0.5,
            tail_probability: 0.01,
            tail_floor: Duration::from_millis(150),
            tail_alpha: 1.5,
            cap: Duration::from_secs(3),
            bytes_per_ms: 100_000,
            processing: (Duration::from_micros(200), Duration::from_millis(8)),
        }
    }

    #[test]
    fn median_is_near_the_knob_and_the_tail_is_heavy_but_capped() {
        let model = LatencyModel::new(knobs());
        let mut rng = stream(3, Stream::Latency);
        let mut legs: Vec<Duration> = (0..20_000).map(|_| model.leg(&mut rng)).collect();
        legs.sort();
        let median = legs[legs.len() / 2];
        assert!((Duration::from_millis(11)..Duration::from_millis(13)).contains(&median), "{median:?}");
        let slow = legs.iter().filter(|d| **d >= Duration::from_millis(150)).count();
        assert!((100..400).contains(&slow), "about 1% in the tail, got {slow}");
        assert!(legs.iter().all(|d| *d <= Duration::from_secs(3)));
        assert!(legs[legs.len() - 1] > Duration::from_millis(800), "the tail reaches far");
    }

    #[test]
    fn typical_s3_has_a_round_trip_of_tens_of_ms_and_a_long_tail() {
        let model = LatencyModel::new(LatencyKnobs::typical_s3());
        let mut rng = stream(3, Stream::Latency);
        let mut trips: Vec<Duration> = (0..20_000).map(|_| model.timing(&mut rng, 4096).round_trip()).collect();
        trips.sort();
        let (p50, p99) = (trips[trips.len() / 2], trips[trips.len() * 99 / 100]);
        assert!((Duration::from_millis(20)..Duration::from_millis(30)).contains(&p50), "{p50:?}");
        assert!(p99 > Duration::from_millis(60), "a long tail: p99 {p99:?}");
    }

    #[test]
    fn bigger_bodies_take_longer_to_upload() {
        let model = LatencyModel::new(LatencyKnobs { sigma: 0.0, tail_probability: 0.0, ..knobs() });
        let mut rng = stream(3, Stream::Latency);
        let small = model.timing(&mut rng, 0).to_store;
        let big = model.timing(&mut rng, 1 << 20).to_store;
        assert_eq!(small, Duration::from_millis(12));
        assert!(big > small + Duration::from_millis(10), "{big:?}");
    }
}
