//! The `s3wal` binary as a user runs it.

use std::process::Command;

fn s3wal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_s3wal"))
}

#[test]
fn demo_runs_and_verifies() {
    let out = s3wal().args(["demo", "--commits", "600", "--producers", "8"]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("verified: all"), "{stdout}");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let out = s3wal().args(["load", "--s3", "http://not-s3"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not an s3:// URL"), "{stderr}");
    let out = s3wal().args(["load", "--commits"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

#[test]
fn bad_config_exits_2_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("s3wal-cli-{}", std::process::id()));
    let out = s3wal()
        .args(["load", "--dir", dir.to_str().unwrap(), "--max-in-flight", "5000", "--commits", "1"])
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_in_flight_requests"), "{stderr}");
}

#[test]
fn load_ack_log_and_replay_agree() {
    let dir = std::env::temp_dir().join(format!("s3wal-cli-load-{}", std::process::id()));
    let acks = dir.with_extension("acks");
    let d = dir.to_str().unwrap();
    let out = s3wal()
        .args(["load", "--dir", d, "--commits", "300", "--commit-size", "64", "--ack-log", acks.to_str().unwrap()])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s3wal().args(["replay", "--dir", d]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed = String::from_utf8_lossy(&out.stdout).to_string();
    let acked = std::fs::read_to_string(&acks).expect("ack log");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&acks);
    assert_eq!(acked.lines().count(), 300);
    assert_eq!(replayed, acked, "every acked commit, in order, and nothing else");
}

/// `s3wal bench` prints lines that scripts read (`scripts/bench.sh`, and the
/// issue's "ratio vs naive at 64 producers: <N>x"): their shape is checked
/// here, on a local directory, in a run too short to mean anything.
#[test]
fn bench_prints_the_lines_scripts_read() {
    let dir = std::env::temp_dir().join(format!("s3wal-cli-bench-{}", std::process::id()));
    let out = s3wal()
        .args(["bench", "--dir", dir.to_str().unwrap(), "--producers", "64", "--rounds", "1"])
        .args(["--seconds", "0.1", "--w2-seconds", "0.1", "--w2-max-mib", "1"])
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    let number_before = |line: &str, prefix: &str, suffix: &str| -> f64 {
        let rest = line.strip_prefix(prefix).unwrap_or_else(|| panic!("{line:?} starts with {prefix:?}"));
        let n = rest.split(suffix).next().expect("a number");
        n.trim().parse().unwrap_or_else(|e| panic!("{n:?} in {line:?}: {e}"))
    };
    let ratio: Vec<f64> = stdout
        .lines()
        .filter(|l| l.starts_with("ratio vs naive at 64 producers:"))
        .map(|l| number_before(l, "ratio vs naive at 64 producers:", "x"))
        .collect();
    assert_eq!(ratio.len(), 1, "one ratio line:\n{stdout}");
    assert!(ratio[0].is_finite() && ratio[0] > 0.0, "{stdout}");
    for size in ["100B", "4096B"] {
        let prefix = format!("W2 {size} share of raw:");
        let shares: Vec<f64> =
            stdout.lines().filter(|l| l.starts_with(&prefix)).map(|l| number_before(l, &prefix, "%")).collect();
        assert_eq!(shares.len(), 1, "one share line for {size}:\n{stdout}");
        assert!(shares[0].is_finite() && shares[0] > 0.0, "{stdout}");
    }
    let raw_runs = stdout.lines().filter(|l| l.starts_with("raw 1MiB PUT")).count();
    assert_eq!(raw_runs, 3, "a raw run before, between and after the W2 runs:\n{stdout}");
}
