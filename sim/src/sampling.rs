//! Seeded random streams and the few distributions the world draws from.
//!
//! Every run is a function of one `u64` seed. Each concern (knobs, workload,
//! latency, faults) reads its own ChaCha8 stream of that seed, so adding a
//! draw to one concern does not shift the numbers every other concern sees.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One independent stream of a run's randomness.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The run's parameters: config, workload shape, fault rates.
    Knobs = 1,
    /// Commit arrivals and payloads.
    Workload = 2,
    /// Request latencies.
    Latency = 3,
    /// Which requests fail, and how.
    Faults = 4,
    /// When instances crash or pause, and how long they stay paused.
    Takeovers = 5,
    /// New instances' identities, crash and restart delays.
    Instances = 6,
    /// Draws that describe a model instead of driving a run: the latency
    /// curve's reference PUT round trip.
    Reference = 7,
    /// Whether and when slow PUTs are hedged (a stream of its own, so that
    /// adding the knob left every other draw of a seed unchanged).
    Hedging = 8,
    /// How often PUT bodies arrive damaged (its own stream, for the same reason).
    BodyDamage = 9,
}

/// The generator for `stream` of `seed`.
pub fn stream(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

/// A uniform draw in `(0, 1]`: safe to take the logarithm of.
pub fn open_unit(rng: &mut ChaCha8Rng) -> f64 {
    1.0 - rng.random::<f64>()
}

/// Whether an event of probability `p` happens.
pub fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// A standard normal draw (Box–Muller).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let radius = (-2.0 * open_unit(rng).ln()).sqrt();
    let angle = std::f64::consts::TAU * rng.random::<f64>();
    radius * angle.cos()
}

/// A draw whose logarithm is uniform in `[ln lo, ln hi]`: as likely to
/// land in 1..10 as in 100..1000.
pub fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    debug_assert!(0.0 < lo && lo <= hi);
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// [`log_uniform`] over whole numbers in `[lo, hi]`.
pub fn log_uniform_u64(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    let x = log_uniform(rng, lo as f64, hi as f64 + 1.0).floor() as u64;
    x.clamp(lo, hi)
}

/// A duration uniform in `[lo, hi]`, to the nanosecond.
pub fn uniform_duration(rng: &mut ChaCha8Rng, lo: Duration, hi: Duration) -> Duration {
    let (lo, hi) = (nanos(lo), nanos(hi));
    Duration::from_nanos(rng.random_range(lo..=hi.max(lo)))
}

/// An exponential draw with the given mean: the gap between events of a
/// memoryless process.
pub fn exponential(rng: &mut ChaCha8Rng, mean: Duration) -> Duration {
    mean.mul_f64(-open_unit(rng).ln())
}

/// Whole nanoseconds of `d`, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..4).map(|_| stream(7, Stream::Latency).random()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same seed, same stream");
        let x: u64 = stream(7, Stream::Latency).random();
        let y: u64 = stream(7, Stream::Faults).random();
        assert_ne!(x, y);
    }

    #[test]
    fn normal_draws_have_unit_spread() {
        let mut rng = stream(1, Stream::Latency);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn log_uniform_stays_in_range() {
        let mut rng = stream(2, Stream::Knobs);
        for _ in 0..10_000 {
            let x = log_uniform_u64(&mut rng, 200, 1 << 20);
            assert!((200..=1 << 20).contains(&x), "{x}");
        }
    }
}
