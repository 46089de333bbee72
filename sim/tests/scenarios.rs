//! Every scenario in `scenarios/` runs, passes its invariants, asserts what
//! it is about, and matches its trace snapshot (`snapshots/`; regenerate
//! with `INSTA_UPDATE=always cargo test -p s3wal-sim --test scenarios`).

use std::path::{Path, PathBuf};

use s3wal::Failure;
use s3wal_sim::faults::FaultClass;
use s3wal_sim::scenario::Scenario;
use s3wal_sim::{End, InstanceReport, RunReport};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn run(name: &str) -> RunReport {
    let path = scenarios_dir().join(format!("{name}.toml"));
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let report = scenario.run(true).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert!(report.outcome.passed(), "{name}: {:?}", report.outcome.describe());
    let trace = report.trace.as_deref().unwrap_or_default().join("\n");
    insta::assert_snapshot!(name, trace);
    report
}

fn ended_clean(i: &InstanceReport) -> bool {
    i.end == End::ShutDown
}

fn fenced(i: &InstanceReport) -> bool {
    matches!(i.end, End::Failed(Failure::Fenced { .. }) | End::Failed(Failure::TakeoverLost { .. }))
}

/// The last instance ran to a clean shutdown and every commit handed to it was acked.
fn last_writer_finished(r: &RunReport) -> &InstanceReport {
    let last = r.instances.last().expect("an instance");
    assert!(ended_clean(last), "{:?}", last.end);
    last
}

#[test]
fn steady_load() {
    let r = run("steady-load");
    assert_eq!(r.faults.total(), 0);
    assert_eq!((r.commits_acked, r.instances.len()), (r.commits_issued, 1));
    last_writer_finished(&r);
}

#[test]
fn slow_put_hedged() {
    let r = run("slow-put-hedged");
    assert_eq!(r.faults.total(), 0);
    assert_eq!((r.commits_acked, r.instances.len()), (r.commits_issued, 1));
    let writer = last_writer_finished(&r);
    assert!(writer.hedges > 0, "no PUT was hedged");
    assert!(r.store.already_exists + r.store.conflicts > 0, "no hedge pair collided: {:?}", r.store);
}

#[test]
fn bursty_load() {
    let r = run("bursty-load");
    assert_eq!(r.commits_acked, r.commits_issued);
    last_writer_finished(&r);
}

#[test]
fn crash_mid_window() {
    let r = run("crash-mid-window");
    assert_eq!(r.faults.get(FaultClass::Crash), 1);
    assert_eq!(r.instances[0].end, End::Crashed);
    let new = last_writer_finished(&r);
    // The new writer continues the valid log where the crashed one left it.
    assert!(new.acked.start >= r.instances[0].acked.end, "{new:?}");
    assert!(!new.acked.is_empty());
}

#[test]
fn exactly_1000_window() {
    let r = run("exactly-1000-window");
    assert!(r.knobs[0].contains("window 1000"), "{}", r.knobs[0]);
    assert_eq!(r.faults.get(FaultClass::Crash), 1);
    // Every recovery (checked by invariant 4) made exactly one successful LIST.
    assert_eq!(r.store.lists, 2, "one LIST per recovery, no retries");
    last_writer_finished(&r);
}

#[test]
fn zombie_wins_the_gap() {
    let r = run("zombie-wins-the-gap");
    let zombie = &r.instances[0];
    assert!(zombie.zombie && fenced(zombie), "{zombie:?}");
    let new = last_writer_finished(&r);
    assert!(zombie.acked.end <= new.acked.start, "the zombie acked nothing past the new writer's fence");
}

#[test]
fn zombie_keeps_writing() {
    let r = run("zombie-keeps-writing");
    let zombie = &r.instances[0];
    assert!(zombie.zombie);
    assert!(matches!(zombie.end, End::Failed(Failure::Fenced { .. })), "{:?}", zombie.end);
    let new = last_writer_finished(&r);
    assert!(zombie.acked.end <= new.acked.start, "no ack after the takeover past the fence");
    // On waking it may still ack what it wrote before the new writer's gap,
    // and learns it is deposed at its next write.
    let trace = r.trace.as_deref().unwrap_or_default();
    let resumed = trace.iter().position(|l| l.contains("W resume L1")).expect("resumed");
    assert!(trace[resumed..].iter().any(|l| l.contains("L1 FAILED") && l.contains("fenced")));
}

#[test]
fn ambiguous_write_then_412() {
    let r = run("ambiguous-write-then-412");
    assert!(r.store.already_exists > 0, "an own write came back as 412");
    assert_eq!(r.commits_acked, r.commits_issued, "a 412 on our own write is success");
    last_writer_finished(&r);
}

#[test]
fn throttling_storm() {
    let r = run("throttling-storm");
    assert!(r.faults.get(FaultClass::Throttled) >= 3, "{:?}", r.faults);
    assert_eq!(r.commits_acked, r.commits_issued);
    last_writer_finished(&r);
}

#[test]
fn retries_exhausted() {
    let r = run("retries-exhausted");
    let writer = &r.instances[0];
    assert!(matches!(writer.end, End::Failed(Failure::RetriesExhausted { .. })), "{:?}", writer.end);
    // Invariant 7 checked that `Failed` listed every waiting commit; here
    // the trace says so too.
    let trace = r.trace.as_deref().unwrap_or_default();
    let failed = trace.iter().find(|l| l.contains("FAILED leaving")).expect("a failure line");
    assert!(failed.contains(&format!("leaving [{},", writer.acked.end.0)), "{failed}");
    assert!(r.commits_acked < r.commits_issued);
}

#[test]
fn three_leader_generations() {
    let r = run("three-leader-generations");
    assert_eq!(r.faults.get(FaultClass::Crash), 2);
    assert_eq!(r.instances.len(), 3);
    let epochs: Vec<_> = r.instances.iter().map(|i| i.epoch).collect();
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "epochs grow: {epochs:?}");
    last_writer_finished(&r);
}

#[test]
fn clean_shutdown_and_reopen() {
    let r = run("clean-shutdown-and-reopen");
    let first = &r.instances[0];
    assert!(ended_clean(first), "{:?}", first.end);
    assert_eq!(r.commits_acked, r.commits_issued);
    assert_eq!(r.store.lists, 1, "the writer opened with one LIST");
}

#[test]
fn two_leaders_one_listing() {
    let r = run("two-leaders-one-listing");
    assert_eq!(r.faults.get(FaultClass::DualRecovery), 1);
    let (a, b) = (&r.instances[1], &r.instances[2]);
    assert!(fenced(a) ^ fenced(b), "exactly one loses: {:?} / {:?}", a.end, b.end);
    let winner = if fenced(a) { b } else { a };
    assert!(ended_clean(winner));
    let loser = if fenced(a) { a } else { b };
    assert!(loser.acked.is_empty(), "the loser acked nothing");
}

#[test]
fn recoveries_race_three_times() {
    let r = run("recoveries-race-three-times");
    assert_eq!((r.faults.get(FaultClass::Crash), r.faults.get(FaultClass::DualRecovery)), (3, 3));
    assert_eq!(r.instances.len(), 7, "the first writer, then three pairs");
    for pair in r.instances[1..].chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(fenced(a) ^ fenced(b), "one of each pair stands down: {:?} / {:?}", a.end, b.end);
        let loser = if fenced(a) { a } else { b };
        assert!(loser.acked.is_empty(), "the loser acked nothing");
    }
    assert!(r.instances.iter().any(ended_clean), "a winner ran to a clean shutdown");
}

#[test]
fn every_scenario_file_has_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".toml").map(str::to_owned))
        .collect();
    names.sort();
    let tested = [
        "ambiguous-write-then-412",
        "bursty-load",
        "clean-shutdown-and-reopen",
        "crash-mid-window",
        "exactly-1000-window",
        "recoveries-race-three-times",
        "retries-exhausted",
        "slow-put-hedged",
        "steady-load",
        "three-leader-generations",
        "throttling-storm",
        "two-leaders-one-listing",
        "zombie-keeps-writing",
        "zombie-wins-the-gap",
    ];
    assert_eq!(names, tested);
}
