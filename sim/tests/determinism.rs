//! Same seed, same run: the trace is byte-identical.

use s3wal_sim::{run_seed, RunOptions, RunReport};

fn traced() -> RunOptions {
    RunOptions { trace: true, ..RunOptions::default() }
}

fn text(r: &RunReport) -> String {
    r.trace.as_deref().unwrap_or_default().join("\n")
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for seed in [0, 1, 7, 42, 1234, 99_999] {
        let (a, b) = (run_seed(seed, &traced()), run_seed(seed, &traced()));
        let (ta, tb) = (text(&a), text(&b));
        assert!(ta.lines().count() > 50, "seed {seed}: a real trace, not an empty one");
        assert!(ta == tb, "seed {seed}: traces differ");
        assert_eq!((a.sim_time, a.events, a.checks), (b.sim_time, b.events, b.checks));
        assert_eq!(a.faults, b.faults);
        assert_eq!(a.outcome, b.outcome);
    }
}

#[test]
fn different_seeds_make_different_runs() {
    let (a, b) = (run_seed(3, &traced()), run_seed(4, &traced()));
    assert_ne!(text(&a), text(&b));
}

#[test]
fn keeping_a_trace_does_not_change_the_run() {
    for seed in [5, 6, 8] {
        let quiet = run_seed(seed, &RunOptions::default());
        let traced = run_seed(seed, &traced());
        assert!(quiet.trace.is_none());
        assert_eq!(
            (quiet.sim_time, quiet.events, quiet.checks, quiet.commits_acked),
            (traced.sim_time, traced.events, traced.checks, traced.commits_acked),
            "seed {seed}"
        );
        assert_eq!(quiet.faults, traced.faults);
    }
}

#[test]
fn seeds_with_crashes_and_zombies_replay_byte_for_byte() {
    use s3wal_sim::faults::FaultClass;
    let options = RunOptions { commits: 200, trace: true, ..RunOptions::default() };
    let mut seen = [false; 3];
    for seed in 0..60 {
        let a = run_seed(seed, &options);
        let classes = [FaultClass::Crash, FaultClass::Zombie, FaultClass::DualRecovery];
        let hit: Vec<bool> = classes.iter().map(|c| a.faults.get(*c) > 0).collect();
        if !hit.iter().any(|h| *h) {
            continue;
        }
        let b = run_seed(seed, &options);
        assert!(text(&a) == text(&b), "seed {seed}: traces differ");
        for (s, h) in seen.iter_mut().zip(hit) {
            *s |= h;
        }
    }
    assert_eq!(seen, [true; 3], "crash, zombie and dual recovery were all replayed");
}
