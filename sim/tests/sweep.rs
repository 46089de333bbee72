//! A sweep of seeds that must all pass, and that must have exercised what
//! it claims to: every fault class, failures, full runs, own-write 412s.

use std::time::Duration;

use s3wal_sim::faults::FaultClass;
use s3wal_sim::{run_seed, RunOptions, StartMode, SweepSummary};

const SEEDS: std::ops::Range<u64> = 0..200;

#[test]
fn two_hundred_seeds_pass() {
    let options = RunOptions::default();
    let mut summary = SweepSummary::default();
    for seed in SEEDS {
        let report = run_seed(seed, &options);
        let takeovers: u64 = [FaultClass::Crash, FaultClass::Zombie].iter().map(|c| report.faults.get(*c)).sum();
        if report.instance_failure.is_none() && takeovers == 0 && report.outcome.passed() {
            assert_eq!(
                report.commits_acked, report.commits_issued,
                "seed {seed}: a run without failure acks every commit"
            );
        }
        summary.add(&report, Duration::ZERO);
    }
    let failures: Vec<String> = summary.failures.iter().map(|(seed, what)| format!("seed {seed}: {what}")).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    assert_eq!(summary.runs, SEEDS.end - SEEDS.start);
    for class in FaultClass::ALL {
        assert!(summary.faults.get(class) > 0, "no {class} fault in {} seeds", summary.runs);
    }
    let failed: u64 = summary.instance_failures.values().sum();
    assert!(failed > 0, "some instances give up under faults");
    assert!(failed < summary.runs / 2, "most instances finish: {failed} failed");
    assert!(summary.store.already_exists > 0, "ambiguous writes come back as 412");
    assert!(summary.store.heads > 0, "412s are resolved by HEAD");
    assert!(summary.checks > summary.runs * 1000, "checks run after every step");
}

#[test]
fn seeds_that_start_by_recovering_pass() {
    let options = RunOptions { commits: 300, start: StartMode::Recover, ..RunOptions::default() };
    let mut summary = SweepSummary::default();
    for seed in 0..60 {
        summary.add(&run_seed(seed, &options), Duration::ZERO);
    }
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert!(summary.store.lists >= summary.runs, "every run recovers with a LIST (retried if it fails)");
    assert!(summary.commits_acked > 0);
}
