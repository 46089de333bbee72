//! A compact, deterministic text trace: one line per event.
//!
//! ```text
//!     12.345 L1 put p3 r7 [120,180) 6.1KiB
//!     40.002 L1 ack [0,180)
//! ```
//!
//! Times are virtual milliseconds with three decimals; the second column
//! names the actor (an instance, `S3` for the store, `W` for the world).
//! Nothing in a line depends on anything but the seed, so the same seed gives
//! a byte-identical trace. A disabled trace formats nothing.

use std::fmt::{self, Write as _};

use s3wal::{CommitRange, Time};

/// The lines of one run, or nothing when disabled.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    enabled: bool,
    lines: Vec<String>,
}

impl Trace {
    /// A trace that records lines only when `enabled`.
    pub fn new(enabled: bool) -> Trace {
        Trace { enabled, lines: Vec::new() }
    }

    /// Whether lines are being recorded.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Records `what`, done by `who` at `at`. `what` is only called when the
    /// trace is enabled.
    pub fn line(&mut self, at: Time, who: impl fmt::Display, what: impl FnOnce() -> String) {
        if self.enabled {
            self.lines.push(format!("{} {who} {}", TraceTime(at), what()));
        }
    }

    /// Records a line without a time (the run's header).
    pub fn note(&mut self, what: impl FnOnce() -> String) {
        if self.enabled {
            self.lines.push(format!("# {}", what()));
        }
    }

    /// Lines recorded so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The lines, if the trace was enabled.
    pub fn into_lines(self) -> Option<Vec<String>> {
        self.enabled.then_some(self.lines)
    }

    /// How many lines were recorded.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The whole trace, one line each, newline-terminated.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum());
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// A time as the trace prints it: milliseconds, right-aligned, 3 decimals.
#[derive(Copy, Clone, Debug)]
pub struct TraceTime(pub Time);

impl fmt::Display for TraceTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_nanos() / 1_000;
        write!(f, "{:>6}.{:03}", micros / 1_000, micros % 1_000)
    }
}

/// A commit range as `[120,180)`.
#[derive(Copy, Clone, Debug)]
pub struct Range(pub CommitRange);

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{})", self.0.start.0, self.0.end.0)
    }
}

/// A size as `312B`, `6.1KiB` or `1.0MiB`.
#[derive(Copy, Clone, Debug)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n < 1024 {
            write!(f, "{n}B")
        } else if n < 1024 * 1024 {
            write!(f, "{:.1}KiB", n as f64 / 1024.0)
        } else {
            write!(f, "{:.1}MiB", n as f64 / (1024.0 * 1024.0))
        }
    }
}

/// The trace lines around line number `at` (1-based): `context` lines
/// before and after it, each prefixed by its number, `at` marked with `>`.
pub fn excerpt(lines: &[String], at: usize, context: usize) -> String {
    let start = at.saturating_sub(1).saturating_sub(context);
    let end = at.saturating_add(context).min(lines.len());
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        let mark = if i + 1 == at { ">" } else { " " };
        let _ = writeln!(out, "{mark}{:>6} {line}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3wal::CommitSeq;

    #[test]
    fn lines_read_as_documented() {
        let mut t = Trace::new(true);
        let range = CommitRange::new(CommitSeq(120), CommitSeq(180));
        t.line(Time::from_nanos(12_345_678), "L1", || format!("put p3 r7 {} {}", Range(range), Size(6_246)));
        t.line(Time::from_nanos(40_002_000), "L1", || "ack [0,180)".into());
        assert_eq!(t.lines()[0], "    12.345 L1 put p3 r7 [120,180) 6.1KiB");
        assert_eq!(t.lines()[1], "    40.002 L1 ack [0,180)");
        assert_eq!(t.text().lines().count(), 2);
    }

    #[test]
    fn a_disabled_trace_formats_nothing() {
        let mut t = Trace::new(false);
        t.line(Time::ZERO, "L1", || unreachable!("not formatted"));
        assert!(t.is_empty());
    }

    #[test]
    fn sizes_pick_their_unit() {
        assert_eq!(Size(312).to_string(), "312B");
        assert_eq!(Size(1 << 20).to_string(), "1.0MiB");
    }

    #[test]
    fn excerpt_marks_the_line_it_is_about() {
        let lines: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
        let text = excerpt(&lines, 5, 1);
        assert_eq!(text, "      4 line 4\n>     5 line 5\n      6 line 6\n");
    }
}
