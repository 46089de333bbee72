//! The writer's configuration, validated up front.
//!
//! [`Config::validate`] checks every constraint of the specification and
//! returns one [`ConfigError`] per violated field, so a user fixes them all
//! in one go. Only a [`ValidConfig`] reaches the state machine.

use std::fmt;
use std::time::Duration;

/// The most positions a writer may claim beyond its durable prefix, whatever
/// its configuration: recovery's single LIST returns at most this many keys.
pub const MAX_WINDOW: u32 = 1000;

/// What each commit takes of [`Config::byte_budget`] besides its own bytes:
/// about what the writer keeps for a commit that is not durable yet. While
/// it waits to be copied, its 40-byte entry in the driver's inbox; once in
/// a batch, its 4-byte length prefix and its 24-byte waiter, with that
/// queue's slack. Without it a producer of tiny or empty commits was held
/// back by nothing: 1-byte commits under a 32 MiB budget reached a peak
/// RSS of 1.3 GiB (`scripts/rss.sh`). With many small commits a batch may
/// then not reach `batch_size_threshold` before the budget is full; it
/// goes out on `batch_timeout` instead.
pub const COMMIT_BOOKKEEPING_BYTES: u64 = 64;

/// What `commits` commits of `payload_bytes` bytes in all take of the byte budget.
pub const fn budget_cost(commits: u64, payload_bytes: u64) -> u64 {
    payload_bytes + commits * COMMIT_BOOKKEEPING_BYTES
}

/// How the writer batches, pipelines and retries. Fields are public so a
/// struct literal with `..Config::default()` reads well; call
/// [`Config::validate`] to use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Longest a batch collects commits, measured from its first commit.
    pub batch_timeout: Duration,
    /// A batch is sealed once its commits reach this many bytes (the last
    /// commit may take it past).
    pub batch_size_threshold: u64,
    /// Most requests outstanding at once, and most positions claimed beyond
    /// the durable prefix (the window). At most [`MAX_WINDOW`].
    pub max_in_flight_requests: u32,
    /// Connections the driver keeps open to the store.
    pub target_pool_size: u32,
    /// Retries of one request before the writer gives up and fails.
    pub max_retry_attempts: u32,
    /// First retry delay; each further retry doubles it.
    pub retry_base_delay: Duration,
    /// The longest a single retry delay may grow.
    pub retry_max_delay: Duration,
    /// Most commit bytes accepted but not yet durable (or, for a log that
    /// streams its durable commits, not yet read from the stream), each
    /// commit counted with [`COMMIT_BOOKKEEPING_BYTES`] more; producers
    /// wait beyond it.
    pub byte_budget: u64,
    /// How long the writer may sit idle before it probes the store, so a
    /// dead endpoint is found before a batch is sent to it.
    pub health_probe_interval: Duration,
    /// A batch's PUT still unanswered after this long is sent once more, the
    /// same bytes to the same key (a hedge), if the window has room; the
    /// first answer that settles the position wins. Acks are ordered, so one
    /// slow PUT delays every commit behind it: a hedge trades a few extra
    /// PUTs for a shorter tail. `None` never hedges.
    pub hedge_after: Option<Duration>,
    /// With `hedge_after` set, hedge after this store's smoothed PUT round
    /// trip plus four mean deviations, learnt from every PUT answer (TCP's
    /// retransmission-timeout rule), and never sooner than `hedge_after`:
    /// one setting then fits a store near and far.
    pub hedge_adaptive: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_timeout: Duration::from_millis(1),
            batch_size_threshold: 1 << 20,
            max_in_flight_requests: 50,
            target_pool_size: 100,
            max_retry_attempts: 3,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(10),
            byte_budget: 128 << 20,
            health_probe_interval: Duration::from_secs(5),
            hedge_after: None,
            hedge_adaptive: false,
        }
    }
}

impl Config {
    /// Settings for S3 in the writer's own region, where a PUT takes tens of
    /// milliseconds and about one in a hundred takes over 80 ms: batches
    /// collect for up to 5 ms (fewer, bigger PUTs) and a PUT unanswered
    /// after 30 ms is sent again (a hedge), so one slow PUT no longer holds
    /// up every commit behind it. Under the simulator's S3 latency model this
    /// keeps the median at light load within one round trip plus the batch
    /// timeout, and the p99 at half load within two round trips, where the
    /// defaults are 2.8x and 11x over, with about half their PUTs at light
    /// load (BENCHMARKS.md, "Latency under the S3 latency model").
    ///
    /// The defaults suit the local directory and servers that answer in a
    /// few milliseconds, where a 5 ms wait only adds latency. For a store
    /// whose round trips may exceed 30 ms (another region), add
    /// `hedge_adaptive`, or every PUT is hedged.
    pub fn s3_same_region() -> Config {
        Config {
            batch_timeout: Duration::from_millis(5),
            hedge_after: Some(Duration::from_millis(30)),
            ..Config::default()
        }
    }
}

/// One field outside its allowed range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("config field `{field}` = {value} is invalid: {allowed}")]
pub struct ConfigError {
    /// The field's name, as in [`Config`].
    pub field: &'static str,
    /// The value given, printed.
    pub value: String,
    /// The rule it broke, stated as the allowed range.
    pub allowed: String,
}

/// Every violated constraint of one configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl ConfigErrors {
    /// The error about `field`, if there is one.
    pub fn for_field(&self, field: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.field == field)
    }
}

/// A setting that is allowed but not advised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The field's name, as in [`Config`].
    pub field: &'static str,
    /// Why it is not advised.
    pub advice: String,
}

/// A configuration that passed [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidConfig {
    config: Config,
    warnings: Vec<ConfigWarning>,
}

impl ValidConfig {
    /// The settings.
    pub fn get(&self) -> &Config {
        &self.config
    }

    /// The longest commit accepted: its cost must fit the byte budget (a
    /// producer waiting for more budget than exists would wait forever)
    /// and its length the format's 32-bit length field.
    pub fn max_commit_len(&self) -> usize {
        let len = self.byte_budget.min(u64::from(u32::MAX)) - COMMIT_BOOKKEEPING_BYTES;
        usize::try_from(len).unwrap_or(usize::MAX)
    }

    /// Settings that are allowed but not advised.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }
}

impl std::ops::Deref for ValidConfig {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

impl Config {
    /// Checks every constraint; returns all violations at once.
    pub fn validate(self) -> Result<ValidConfig, ConfigErrors> {
        let errors: Vec<ConfigError> = self.violations().collect();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let warnings = self.warnings();
        Ok(ValidConfig { config: self, warnings })
    }

    fn violations(&self) -> impl Iterator<Item = ConfigError> + '_ {
        let retries_enabled = self.max_retry_attempts > 0;
        [
            check("batch_timeout", ms(self.batch_timeout), !self.batch_timeout.is_zero(), "must be > 0"),
            check(
                "batch_size_threshold",
                self.batch_size_threshold,
                self.batch_size_threshold > 0,
                "must be > 0 bytes",
            ),
            check(
                "max_in_flight_requests",
                self.max_in_flight_requests,
                (1..=MAX_WINDOW).contains(&self.max_in_flight_requests),
                format!("must be in 1..={MAX_WINDOW} (one LIST of {MAX_WINDOW} keys must find the end of the log)"),
            ),
            check(
                "target_pool_size",
                self.target_pool_size,
                self.target_pool_size >= self.max_in_flight_requests,
                format!("must be >= max_in_flight_requests ({})", self.max_in_flight_requests),
            ),
            check(
                "retry_base_delay",
                ms(self.retry_base_delay),
                !retries_enabled || !self.retry_base_delay.is_zero(),
                "must be > 0 when max_retry_attempts > 0",
            ),
            check(
                "retry_max_delay",
                ms(self.retry_max_delay),
                self.retry_max_delay >= self.retry_base_delay,
                format!("must be >= retry_base_delay ({})", ms(self.retry_base_delay)),
            ),
            check(
                "health_probe_interval",
                ms(self.health_probe_interval),
                !self.health_probe_interval.is_zero(),
                "must be > 0",
            ),
            check(
                "hedge_after",
                self.hedge_after.map_or_else(|| "none".into(), ms),
                self.hedge_after.is_none_or(|d| !d.is_zero()),
                "must be > 0 when set",
            ),
            check(
                "hedge_adaptive",
                self.hedge_adaptive,
                !self.hedge_adaptive || self.hedge_after.is_some(),
                "needs hedge_after (the shortest delay it may choose)",
            ),
            check(
                "byte_budget",
                self.byte_budget,
                self.byte_budget >= self.batch_size_threshold && self.byte_budget > COMMIT_BOOKKEEPING_BYTES,
                format!(
                    "must be > {COMMIT_BOOKKEEPING_BYTES} (what one commit's bookkeeping takes) and >= batch_size_threshold ({})",
                    self.batch_size_threshold
                ),
            ),
        ]
        .into_iter()
        .flatten()
    }

    fn warnings(&self) -> Vec<ConfigWarning> {
        let advised_pool = u64::from(self.max_in_flight_requests) * 2;
        if u64::from(self.target_pool_size) > advised_pool {
            vec![ConfigWarning {
                field: "target_pool_size",
                advice: format!(
                    "{} is more than 2 x max_in_flight_requests ({advised_pool}); the extra connections only idle",
                    self.target_pool_size
                ),
            }]
        } else {
            Vec::new()
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_secs_f64() * 1000.0)
}

fn check(field: &'static str, value: impl ToString, ok: bool, allowed: impl Into<String>) -> Option<ConfigError> {
    (!ok).then(|| ConfigError { field, value: value.to_string(), allowed: allowed.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(config: Config, field: &str) -> ConfigError {
        let errors = config.validate().expect_err("must be rejected");
        let error = errors.for_field(field).cloned().unwrap_or_else(|| panic!("no error for {field}: {errors}"));
        assert!(error.to_string().contains(field), "error names the field: {error}");
        error
    }

    #[test]
    fn defaults_are_the_specs_and_valid() {
        let c = Config::default();
        assert_eq!(c.batch_timeout, Duration::from_millis(1));
        assert_eq!(c.batch_size_threshold, 1 << 20);
        assert_eq!(c.max_in_flight_requests, 50);
        assert_eq!(c.target_pool_size, 100);
        assert_eq!(c.max_retry_attempts, 3);
        assert_eq!(c.retry_base_delay, Duration::from_millis(100));
        assert_eq!(c.byte_budget, 128 << 20);
        let valid = c.validate().expect("defaults are valid");
        assert!(valid.warnings().is_empty());
    }

    #[test]
    fn batch_size_threshold_must_be_positive() {
        let e = rejects(Config { batch_size_threshold: 0, ..Config::default() }, "batch_size_threshold");
        assert_eq!(e.value, "0");
    }

    #[test]
    fn hedge_adaptive_needs_hedge_after() {
        let e = rejects(Config { hedge_adaptive: true, ..Config::default() }, "hedge_adaptive");
        assert!(e.allowed.contains("hedge_after"), "{e}");
        let floor = Some(Duration::from_millis(5));
        assert!(Config { hedge_adaptive: true, hedge_after: floor, ..Config::default() }.validate().is_ok());
    }

    #[test]
    fn hedge_after_must_be_positive_when_set() {
        let e = rejects(Config { hedge_after: Some(Duration::ZERO), ..Config::default() }, "hedge_after");
        assert_eq!(e.value, "0ms");
        assert!(Config { hedge_after: Some(Duration::from_millis(40)), ..Config::default() }.validate().is_ok());
    }

    #[test]
    fn max_in_flight_must_be_positive() {
        rejects(Config { max_in_flight_requests: 0, ..Config::default() }, "max_in_flight_requests");
    }

    #[test]
    fn max_in_flight_is_at_most_1000() {
        let e = rejects(
            Config { max_in_flight_requests: 1001, target_pool_size: 2002, ..Config::default() },
            "max_in_flight_requests",
        );
        assert!(e.allowed.contains("1..=1000"), "{e}");
        let ok = Config { max_in_flight_requests: 1000, target_pool_size: 2000, ..Config::default() };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn pool_must_hold_every_request() {
        let e = rejects(Config { target_pool_size: 49, ..Config::default() }, "target_pool_size");
        assert!(e.allowed.contains("50"), "{e}");
    }

    #[test]
    fn batch_timeout_must_be_positive() {
        rejects(Config { batch_timeout: Duration::ZERO, ..Config::default() }, "batch_timeout");
    }

    #[test]
    fn zero_retries_are_allowed_and_need_no_delay() {
        let c = Config { max_retry_attempts: 0, retry_base_delay: Duration::ZERO, ..Config::default() };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn retry_delay_must_be_positive_when_retrying() {
        rejects(Config { retry_base_delay: Duration::ZERO, ..Config::default() }, "retry_base_delay");
    }

    #[test]
    fn retry_cap_must_not_undercut_the_base() {
        rejects(Config { retry_max_delay: Duration::from_millis(50), ..Config::default() }, "retry_max_delay");
    }

    #[test]
    fn health_probe_interval_must_be_positive() {
        rejects(Config { health_probe_interval: Duration::ZERO, ..Config::default() }, "health_probe_interval");
    }

    #[test]
    fn byte_budget_must_hold_a_batch() {
        rejects(Config { byte_budget: 1000, ..Config::default() }, "byte_budget");
    }

    #[test]
    fn byte_budget_must_hold_one_commits_bookkeeping() {
        let tiny = |byte_budget| Config { byte_budget, batch_size_threshold: 1, ..Config::default() };
        rejects(tiny(COMMIT_BOOKKEEPING_BYTES), "byte_budget");
        let valid = tiny(COMMIT_BOOKKEEPING_BYTES + 1).validate().expect("room for an empty commit");
        assert_eq!(valid.max_commit_len(), 1);
    }

    #[test]
    fn the_longest_commit_fits_the_budget_and_the_length_field() {
        let valid = Config::default().validate().expect("defaults are valid");
        assert_eq!(budget_cost(1, valid.max_commit_len() as u64), valid.byte_budget);
        let huge = Config { byte_budget: 1 << 40, ..Config::default() }.validate().expect("valid");
        assert_eq!(budget_cost(1, huge.max_commit_len() as u64), u64::from(u32::MAX), "its cost is a u32");
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let c = Config {
            batch_size_threshold: 0,
            max_in_flight_requests: 0,
            batch_timeout: Duration::ZERO,
            ..Config::default()
        };
        let errors = c.validate().unwrap_err();
        assert_eq!(errors.0.len(), 3, "{errors}");
    }

    #[test]
    fn oversized_pool_is_a_warning_not_an_error() {
        let valid = Config { target_pool_size: 101, ..Config::default() }.validate().expect("allowed");
        assert_eq!(valid.warnings().len(), 1);
        assert_eq!(valid.warnings()[0].field, "target_pool_size");
    }
}
