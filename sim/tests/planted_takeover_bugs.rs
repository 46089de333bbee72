//! With crashes, zombies and concurrent recoveries in the world, the
//! library's takeover bugs are caught too: a missing fence by a named
//! scenario, the others by the default sweep, whose first failing seed for
//! each is printed (`--nocapture` shows it).

use s3wal::machine::PlantedBug;
use s3wal::Persister;
use std::path::Path;

use s3wal_sim::scenario::Scenario;
use s3wal_sim::{run_seed, Invariant, Outcome, RunOptions};

/// Seeds tried per bug before giving up.
const SEEDS: u64 = 400;
/// Commits per run: small, to stay fast in a debug build.
const COMMITS: u64 = 200;

fn prepare(bug: PlantedBug) -> fn(&mut Persister) {
    match bug {
        PlantedBug::AckOnCompletion => |p| p.plant(PlantedBug::AckOnCompletion),
        PlantedBug::AckBeforeEarlierDurable => |p| p.plant(PlantedBug::AckBeforeEarlierDurable),
        PlantedBug::WindowCountsOutstandingOnly => |p| p.plant(PlantedBug::WindowCountsOutstandingOnly),
        PlantedBug::SkipFence => |p| p.plant(PlantedBug::SkipFence),
        PlantedBug::Trust412 => |p| p.plant(PlantedBug::Trust412),
        PlantedBug::DropOpenBatchOnShutdown => |p| p.plant(PlantedBug::DropOpenBatchOnShutdown),
        PlantedBug::ForgetOrphans => |p| p.plant(PlantedBug::ForgetOrphans),
    }
}

/// The first seed of the default sweep whose run fails with `bug` planted.
fn first_failure(bug: PlantedBug) -> Option<(u64, String)> {
    let options = RunOptions { commits: COMMITS, prepare_machine: Some(prepare(bug)), ..RunOptions::default() };
    (0..SEEDS).find_map(|seed| match run_seed(seed, &options).outcome {
        Outcome::Passed => None,
        Outcome::Violated { violation, .. } => Some((seed, violation.to_string())),
        Outcome::Panicked { message, .. } => Some((seed, format!("panic: {message}"))),
    })
}

fn expect_caught(bug: PlantedBug) {
    let Some((seed, what)) = first_failure(bug) else {
        panic!("{bug:?} escaped {SEEDS} seeds");
    };
    eprintln!("{bug:?}: first failing seed {seed} ({} seeds): {what}", seed + 1);
}

/// The default sweep rarely shows a missing fence: it takes two recoveries
/// writing batches over each other and a later recovery acking past their
/// fork. At 200 commits 7 seeds of 3,000 did, the first being seed 347, and
/// a change to an unrelated knob once moved that to 1,432. The named
/// scenario stages exactly that, three times.
#[test]
fn skipping_the_fence_is_caught_by_racing_recoveries() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/recoveries-race-three-times.toml");
    let scenario = Scenario::load(&path).expect("the scenario loads");
    let mut options = scenario.options(false).expect("its options");
    assert!(scenario.run_with(&options).expect("it runs").outcome.passed(), "it passes with the fence");
    options.prepare_machine = Some(prepare(PlantedBug::SkipFence));
    let outcome = scenario.run_with(&options).expect("it runs").outcome;
    // The scenario is fixed, so the catch is too: the checker's invariant 1,
    // in debug and release builds alike (no debug_assert! fires first).
    let caught = matches!(&outcome, Outcome::Violated { violation, .. } if violation.invariant == Invariant::AckOrder);
    assert!(caught, "SkipFence: {:?}", outcome.describe());
    eprintln!("SkipFence caught by the scenario: {:?}", outcome.describe());
}

#[test]
fn trusting_a_412_is_caught_once_takeovers_exist() {
    expect_caught(PlantedBug::Trust412);
}

/// Prints, for every planted bug, how many seeds the default sweep took
/// (but the missing fence, which needs more seeds than a test can spend:
/// see above).
#[test]
fn seeds_to_first_failure_for_every_planted_bug() {
    for bug in PlantedBug::ALL.into_iter().filter(|bug| *bug != PlantedBug::SkipFence) {
        match first_failure(bug) {
            Some((seed, what)) => eprintln!("{bug:?}: caught after {} seeds (seed {seed}): {what}", seed + 1),
            None => panic!("{bug:?}: not caught in {SEEDS} seeds"),
        }
    }
}
