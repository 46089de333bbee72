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
