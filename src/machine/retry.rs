//! The retry schedule: exponential backoff, capped, with deterministic jitter.

use std::time::Duration;

use crate::types::Position;

/// How long to wait before retry number `retry` (1 for the first retry) of
/// the request for `position`: `base × 2^(retry-1)`, capped at `max`, then
/// scaled into `[½, 1]` of itself by jitter drawn from `seed`, so that
/// batches failing together do not retry in lock step.
pub(crate) fn backoff(base: Duration, max: Duration, retry: u32, seed: u64, position: Position) -> Duration {
    let exp = retry.saturating_sub(1).min(32);
    let full = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let unit = unit_interval(mix(seed ^ position.0.rotate_left(17) ^ u64::from(retry)));
    full.mul_f64(0.5 + 0.5 * unit)
}

/// splitmix64's finaliser: a pure function that scatters its input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn doubles_within_jitter_bounds() {
        for retry in 1..=6u32 {
            let full = BASE * (1 << (retry - 1));
            for seed in 0..50 {
                let d = backoff(BASE, MAX, retry, seed, Position(3));
                assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?} not in [{:?}, {full:?}]", full / 2);
            }
        }
    }

    #[test]
    fn is_capped() {
        assert!(backoff(BASE, MAX, 30, 1, Position(0)) <= MAX);
        assert!(backoff(BASE, MAX, u32::MAX, 1, Position(0)) <= MAX);
    }

    #[test]
    fn is_deterministic_and_jittered() {
        assert_eq!(backoff(BASE, MAX, 2, 9, Position(4)), backoff(BASE, MAX, 2, 9, Position(4)));
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).map(|p| backoff(BASE, MAX, 2, 9, Position(p))).collect();
        assert!(spread.len() > 10, "positions retry at different times");
    }
}
