//! The checker can fail: a store that answers `Created` for a PUT it did not
//! apply must be caught as a broken invariant 1 or 2.

use s3wal_sim::{run_seed, Invariant, Outcome, PlantedBug, RunOptions};

#[test]
fn created_without_writing_is_caught() {
    let options = RunOptions { planted_bug: Some(PlantedBug::CreatedWithoutWriting), ..RunOptions::default() };
    let seeds = 0..50u64;
    let mut caught = Vec::new();
    for seed in seeds.clone() {
        match run_seed(seed, &options).outcome {
            Outcome::Violated { violation, .. } => {
                assert!(
                    matches!(violation.invariant, Invariant::AckOrder | Invariant::AckedInLog),
                    "seed {seed}: caught as the wrong invariant: {violation}"
                );
                caught.push(seed);
            }
            Outcome::Panicked { message, .. } => panic!("seed {seed} panicked: {message}"),
            Outcome::Passed => {}
        }
    }
    // A run can escape only if its instance fails (or crashes, or is
    // deposed) before acking the lost position, or if the PUT was hedged and
    // its twin really wrote the object (half the runs hedge); most cannot.
    assert!(
        caught.len() * 10 >= seeds.clone().count() * 6,
        "only {} of {} seeds caught the planted bug: {caught:?}",
        caught.len(),
        seeds.count()
    );
}

#[test]
fn the_same_seeds_pass_without_the_bug() {
    for seed in 0..10 {
        let report = run_seed(seed, &RunOptions::default());
        assert!(report.outcome.passed(), "seed {seed}: {:?}", report.outcome);
    }
}
