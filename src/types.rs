//! Numbers that must not be mixed up, each with its own type.
//!
//! The log is a sequence of objects at *positions* 0, 1, 2, … Position `p`
//! is stored under *batch number* `u64::MAX - p`, so that S3's ascending
//! LIST shows the newest objects first. Reason in positions; convert to a
//! batch number only to name a key.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// The prefix under which every log object lives.
pub const BATCH_PREFIX: &str = "batches/";

/// Where an object sits in the log, counting from 0 (the oldest).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

impl Position {
    /// The position after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }

    /// How many positions lie in `[earlier, self)`; zero if `earlier` is later.
    pub fn distance_from(self, earlier: Position) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The position `n` places later.
    pub fn plus(self, n: u64) -> Position {
        Position(self.0 + n)
    }

    /// The batch number that names this position's object.
    pub fn batch_number(self) -> BatchNumber {
        BatchNumber(u64::MAX - self.0)
    }

    /// The object key of this position, `batches/{n:020}`.
    pub fn key(self) -> String {
        self.batch_number().key()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// The number in an object's key: counts down from `u64::MAX`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchNumber(pub u64);

impl BatchNumber {
    /// The position this batch number names.
    pub fn position(self) -> Position {
        Position(u64::MAX - self.0)
    }

    /// The object key, `batches/` and 20 zero-padded digits.
    pub fn key(self) -> String {
        format!("{BATCH_PREFIX}{:020}", self.0)
    }

    /// Parses a key written by [`BatchNumber::key`]; anything else is `None`.
    pub fn from_key(key: &str) -> Option<BatchNumber> {
        let digits = key.strip_prefix(BATCH_PREFIX)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(BatchNumber)
    }
}

/// A commit's sequence number: commits are numbered 0, 1, 2, … in the order
/// the application handed them over, across every instance that wrote the log.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitSeq(pub u64);

impl CommitSeq {
    /// The sequence number after this one.
    pub fn next(self) -> CommitSeq {
        CommitSeq(self.0 + 1)
    }

    /// The sequence number `n` later.
    pub fn plus(self, n: u64) -> CommitSeq {
        CommitSeq(self.0 + n)
    }
}

impl fmt::Display for CommitSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A half-open range of commit sequence numbers `[start, end)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommitRange {
    /// The first commit in the range.
    pub start: CommitSeq,
    /// One past the last commit in the range.
    pub end: CommitSeq,
}

impl CommitRange {
    /// The range `[start, end)`.
    pub fn new(start: CommitSeq, end: CommitSeq) -> CommitRange {
        debug_assert!(start <= end, "a commit range runs forward");
        CommitRange { start, end }
    }

    /// How many commits the range holds.
    pub fn len(&self) -> u64 {
        self.end.0 - self.start.0
    }

    /// Whether the range holds no commit.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl fmt::Display for CommitRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start.0, self.end.0)
    }
}

/// Identifies one writer instance; written into every object it puts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderId(pub u64);

impl fmt::Display for LeaderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{:016x}", self.0)
    }
}

/// A writer generation. Later generations compare greater.
///
/// `generation` is the first missing position the instance saw when it
/// recovered: every object below it was written by an earlier generation, so
/// an epoch derived from it is greater than every epoch stored below it.
/// `nonce` (random, from the driver) breaks ties between instances that
/// recovered from the same listing.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch {
    /// The first missing position at recovery.
    pub generation: u64,
    /// A random tie-breaker.
    pub nonce: u64,
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}.{:x}", self.generation, self.nonce)
    }
}

/// Names one request the machine asked the driver to make.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// A point in time, as the driver's clock reads it: nanoseconds since an
/// origin the driver picks. The machine never reads a clock itself.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// The origin of the driver's clock.
    pub const ZERO: Time = Time(0);

    /// A time `nanos` nanoseconds after the origin.
    pub fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// A time `millis` milliseconds after the origin.
    pub fn from_millis(millis: u64) -> Time {
        Time(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero if it is not later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(nanos))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        self.since(earlier)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 / 1_000;
        write!(f, "{}.{:03}ms", micros / 1_000, micros % 1_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_batch_numbers_down() {
        assert_eq!(Position(0).batch_number(), BatchNumber(u64::MAX));
        assert_eq!(Position(1).key(), "batches/18446744073709551614");
        assert!(Position(2).key() < Position(1).key(), "newer sorts first");
    }

    #[test]
    fn keys_round_trip_and_reject_strangers() {
        let p = Position(12345);
        assert_eq!(BatchNumber::from_key(&p.key()).map(BatchNumber::position), Some(p));
        for bad in
            ["batches/1", "batches/abcdefghijklmnopqrst", "other/18446744073709551614", "batches/99999999999999999999"]
        {
            assert_eq!(BatchNumber::from_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn epochs_order_by_generation_then_nonce() {
        let a = Epoch { generation: 5, nonce: 9 };
        let b = Epoch { generation: 6, nonce: 0 };
        assert!(a < b);
        assert!(Epoch { generation: 6, nonce: 1 } > b);
    }
}
