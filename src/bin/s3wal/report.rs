//! Throughput and latency figures, printed the same way by every command.

use std::time::Duration;

/// Latencies of one run; percentiles by sorting (runs are bounded).
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// p50, p90, p99 and max, in that order.
    pub fn percentiles(&mut self) -> [Duration; 4] {
        self.0.sort_unstable();
        let at = |q: f64| -> Duration {
            if self.0.is_empty() {
                return Duration::ZERO;
            }
            let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
            self.0[i]
        };
        [at(0.50), at(0.90), at(0.99), at(1.0)]
    }

    pub fn summary(&mut self) -> String {
        let [p50, p90, p99, max] = self.percentiles();
        format!("ack latency p50 {} p90 {} p99 {} max {}", ms(p50), ms(p90), ms(p99), ms(max))
    }
}

/// PUTs that carried batches: every PUT but the opening's fences (what a
/// steady writer costs, apart from the one-off cost of opening the log).
pub fn batch_puts(stats: &s3wal::Stats) -> u64 {
    stats.puts - stats.recovery.puts
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

pub fn throughput(commits: u64, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{commits} commits in {:.2}s: {:.0} commits/s, {:.2} MB/s",
        secs,
        commits as f64 / secs,
        bytes as f64 / secs / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_ranks() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.push(Duration::from_millis(i));
        }
        let [p50, p90, p99, max] = l.percentiles();
        assert_eq!(
            (p50, p90, p99, max),
            (
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99),
                Duration::from_millis(100)
            )
        );
    }
}
