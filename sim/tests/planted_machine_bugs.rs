//! The simulator catches the library's deliberate bugs (s3wal's
//! `planted-bugs` feature, enabled for this crate's tests only): for each bug
//! a single writer can show, some seed in a short sweep fails, and it fails
//! on the invariant the bug breaks.

use s3wal::machine::PlantedBug;
use s3wal::Persister;
use s3wal_sim::{run_seed, Invariant, Outcome, RunOptions};

/// Seeds tried per bug before giving up.
const SEEDS: u64 = 300;

/// The first seed whose run breaks an invariant, with that invariant.
fn first_failure(prepare: fn(&mut Persister)) -> Option<(u64, Option<Invariant>, String)> {
    let options = RunOptions { commits: 300, prepare_machine: Some(prepare), ..RunOptions::default() };
    (0..SEEDS).find_map(|seed| match run_seed(seed, &options).outcome {
        Outcome::Passed => None,
        Outcome::Violated { violation, .. } => Some((seed, Some(violation.invariant), violation.to_string())),
        Outcome::Panicked { message, .. } => Some((seed, None, message)),
    })
}

fn expect_caught(bug: PlantedBug, prepare: fn(&mut Persister), invariant: Invariant) {
    expect_caught_as(bug, prepare, &[invariant]);
}

/// Like [`expect_caught`], for a bug that may break one of several invariants first.
fn expect_caught_as(bug: PlantedBug, prepare: fn(&mut Persister), invariants: &[Invariant]) {
    let Some((seed, found, what)) = first_failure(prepare) else {
        panic!("{bug:?} escaped {SEEDS} seeds");
    };
    // In a debug build the machine's own debug_assert! may fire first: that
    // is a catch too, reported as a panic.
    let acceptable = found.is_some_and(|f| invariants.contains(&f)) || (found.is_none() && cfg!(debug_assertions));
    assert!(acceptable, "{bug:?}: seed {seed} failed otherwise: {what}");
    eprintln!("{bug:?} caught by seed {seed}: {what}");
}

#[test]
fn acking_on_completion_breaks_invariant_1() {
    expect_caught(PlantedBug::AckOnCompletion, |p| p.plant(PlantedBug::AckOnCompletion), Invariant::AckOrder);
}

#[test]
fn acking_past_a_hole_breaks_invariant_1() {
    // Dropping an in-flight position from the window also frees its place
    // while its request is still out: invariant 5 may be the first to go.
    expect_caught_as(
        PlantedBug::AckBeforeEarlierDurable,
        |p| p.plant(PlantedBug::AckBeforeEarlierDurable),
        &[Invariant::AckOrder, Invariant::Window],
    );
}

#[test]
fn a_window_of_requests_only_breaks_invariant_5() {
    expect_caught(
        PlantedBug::WindowCountsOutstandingOnly,
        |p| p.plant(PlantedBug::WindowCountsOutstandingOnly),
        Invariant::Window,
    );
}

#[test]
fn forgetting_a_hedges_slower_twin_breaks_invariant_5() {
    expect_caught(PlantedBug::ForgetOrphans, |p| p.plant(PlantedBug::ForgetOrphans), Invariant::Window);
}

#[test]
fn dropping_the_open_batch_on_shutdown_breaks_invariant_7() {
    expect_caught(
        PlantedBug::DropOpenBatchOnShutdown,
        |p| p.plant(PlantedBug::DropOpenBatchOnShutdown),
        Invariant::Liveness,
    );
}
