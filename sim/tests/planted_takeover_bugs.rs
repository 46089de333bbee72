//! With crashes, zombies and concurrent recoveries in the world, the
//! library's takeover bugs are caught too; and for every planted bug the
//! default sweep's first failing seed is printed (`--nocapture` shows it).

use s3wal::machine::PlantedBug;
use s3wal::Persister;
use s3wal_sim::{run_seed, Outcome, RunOptions};

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

#[test]
fn skipping_the_fence_is_caught_once_takeovers_exist() {
    expect_caught(PlantedBug::SkipFence);
}

#[test]
fn trusting_a_412_is_caught_once_takeovers_exist() {
    expect_caught(PlantedBug::Trust412);
}

/// Prints, for every planted bug, how many seeds the default sweep took.
#[test]
fn seeds_to_first_failure_for_every_planted_bug() {
    for bug in PlantedBug::ALL {
        match first_failure(bug) {
            Some((seed, what)) => eprintln!("{bug:?}: caught after {} seeds (seed {seed}): {what}", seed + 1),
            None => panic!("{bug:?}: not caught in {SEEDS} seeds"),
        }
    }
}
