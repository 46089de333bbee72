//! The s3wal simulator: a seeded, single-threaded, virtual-time world that
//! drives the sans-IO [`s3wal::Persister`] against a model of S3, injects
//! faults, and checks the invariants of DESIGN.md after every step.
//!
//! The world ([`world`], [`s3_model`], [`faults`], [`latency`], [`workload`])
//! and the [`checker`] are kept apart: the checker knows nothing of faults.
//! Same seed, same run, byte for byte: see [`run_seed`].
//!
//! The madsim level runs the library's real tokio driver instead, under
//! `RUSTFLAGS="--cfg madsim"`: [`sim_store`] puts the same S3 model, faults
//! and latency behind the library's `ObjectStore` trait, `driver_world`
//! (madsim only) crashes, restarts and pauses the writer's nodes, and
//! [`driver_checker`] judges the driver's API against the store
//! (`sim/tests/madsim_driver.rs`, `just madsim`).

pub mod checker;
pub mod driver_checker;
#[cfg(madsim)]
pub mod driver_world;
pub mod event_queue;
pub mod faults;
pub mod instance;
pub mod knobs;
pub mod latency;
pub mod latency_curve;
pub mod log_prefix;
pub mod reader_read;
pub mod report;
pub mod s3_model;
pub mod sampling;
pub mod scenario;
pub mod sim_store;
pub mod trace;
pub mod workload;
pub mod world;
pub mod written_log;

#[cfg(test)]
mod test_objects;

use std::panic::{self, AssertUnwindSafe};

pub use checker::{Invariant, Violation};
pub use knobs::RunKnobs;
pub use report::{End, InstanceReport, Outcome, RunReport, SweepSummary};
pub use world::{PlantedBug, RunOptions, StartMode, World};

/// Runs one seed to the end and reports. A panic inside the run (a
/// `debug_assert!` of the machine, say) is caught and reported as the run's
/// outcome, with the trace up to that point.
pub fn run_seed(seed: u64, options: &RunOptions) -> RunReport {
    let knobs = RunKnobs::draw(seed, options.commits);
    let mut world = World::new(seed, knobs, options);
    let ran = panic::catch_unwind(AssertUnwindSafe(|| world.run()));
    if let Err(payload) = ran {
        world.record_panic(panic_message(payload.as_ref()));
    }
    world.into_report()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}
