//! The real driver under madsim: `s3wal::driver::Log` on madsim nodes
//! against the simulator's S3 model (`SimStore`), with crashes, restarts,
//! zombies and the pure world's faults. See `s3wal_sim::driver_world`.
//!
//! ```sh
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
//!   MADSIM_TEST_SEED=0 MADSIM_TEST_NUM=200 MADSIM_TEST_JOBS=2 \
//!   cargo test -p s3wal-sim --test madsim_driver driver_sweep
//! ```
//!
//! Never `--workspace` under madsim: the library's other tests need real I/O.
#![cfg(madsim)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use s3wal::driver::{AppendError, DriverBug, Log, OpenOptions};
use s3wal::machine::PlantedBug;
use s3wal::store::{GetOutcome, ObjectStore};
use s3wal::{CommitSeq, Config, Fault, PutOutcome};
use s3wal_sim::driver_checker::DriverInvariant;
use s3wal_sim::driver_world::{run_driver_seed, DriverReport, DriverRunOptions, Opener};
use s3wal_sim::faults::{BurstPlan, FaultClass, FaultKnobs, Probability};
use s3wal_sim::latency::LatencyKnobs;
use s3wal_sim::sim_store::{SimStore, SimStoreKnobs};
use s3wal_sim::written_log::write_log;

/// The sweep: one seed per run, `MADSIM_TEST_SEED` / `MADSIM_TEST_NUM` pick
/// them, `MADSIM_TEST_CHECK_DETERMINISM=1` runs a seed twice and compares.
#[madsim::test]
async fn driver_sweep() {
    let seed = madsim::runtime::Handle::current().seed();
    let log_requests = std::env::var_os("S3WAL_MADSIM_REQUESTS").is_some();
    let report = run_driver_seed(seed, &DriverRunOptions { log_requests, ..DriverRunOptions::default() }).await;
    if std::env::var_os("S3WAL_MADSIM_TRACE").is_some() || log_requests {
        eprintln!("{}", report.render());
    } else {
        eprintln!("{}", report.summary());
    }
    assert!(report.passed(), "{}", report.render());
}

/// Runs `seed` in a runtime of its own (as `#[madsim::test]` does) and
/// returns its report, or the panic's message.
fn run_seed(seed: u64, options: DriverRunOptions) -> Result<DriverReport, String> {
    std::thread::spawn(move || {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(async move { run_driver_seed(seed, &options).await })
    })
    .join()
    .map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// A sweep that goes on past failures and sums up what it injected:
/// `S3WAL_MADSIM_SEEDS=0..200 cargo test … sweep_summary -- --ignored --nocapture`.
/// `S3WAL_MADSIM_PLANT=<DriverBug, as Debug>` plants a bug in every seed.
#[test]
#[ignore = "a report, not a check: run it by hand"]
fn sweep_summary() {
    let range = std::env::var("S3WAL_MADSIM_SEEDS").unwrap_or_else(|_| "0..100".into());
    let (a, b) = range.split_once("..").expect("S3WAL_MADSIM_SEEDS=a..b");
    let (a, b): (u64, u64) = (a.parse().expect("a number"), b.parse().expect("a number"));
    let plant = std::env::var("S3WAL_MADSIM_PLANT").ok().map(|name| {
        let all = DriverBug::DRIVER.into_iter().chain(PlantedBug::ALL.map(DriverBug::Machine));
        all.into_iter().find(|b| format!("{b:?}") == name).unwrap_or_else(|| panic!("no planted bug {name}"))
    });
    let options = plant.map_or_else(DriverRunOptions::default, planted);
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut faults = s3wal_sim::faults::FaultCounts::default();
    let (mut instances, mut appended, mut acked, mut failed_opens, mut waits) = (0, 0, 0, 0, 0);
    let mut disruptions = s3wal_sim::driver_world::DisruptionCounts::default();
    for seed in a..b {
        match run_seed(seed, options.clone()) {
            Ok(report) => {
                eprintln!("{}", report.summary());
                faults.merge(&report.faults);
                instances += report.instances;
                disruptions.merge(&report.disruptions);
                failed_opens += report.failed_opens;
                appended += report.appended;
                acked += report.acked;
                waits += report.producer_waits;
                if !report.passed() {
                    failed.push(seed);
                }
            }
            Err(panic) => {
                eprintln!("seed {seed}: PANICKED: {panic}");
                failed.push(seed);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = b - a;
    eprintln!("{n} seeds in {secs:.1}s ({:.1} seeds/s); failed: {failed:?}", n as f64 / secs);
    eprintln!(
        "{instances} instances, {failed_opens} failed opens, {disruptions}, {appended} appended ({waits} waited for budget), {acked} acked"
    );
    let classes: Vec<String> = faults.iter().map(|(c, k)| format!("{c}={k}")).collect();
    eprintln!("faults: {}", classes.join(" "));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [3, 4] {
        let a = run_seed(seed, DriverRunOptions::default()).expect("no panic");
        let b = run_seed(seed, DriverRunOptions::default()).expect("no panic");
        assert!(a.trace.len() > 5, "a trace to compare");
        assert_eq!(a.render(), b.render(), "seed {seed} ran differently");
    }
}

// ---- planted driver bugs --------------------------------------------------

/// Seeds tried per planted bug before it counts as escaped.
const PLANTED_SEEDS: u64 = 60;

fn planted(bug: DriverBug) -> DriverRunOptions {
    let open: Opener = Arc::new(move |store, options| Box::pin(Log::open_planted(store, options, bug)));
    DriverRunOptions { open, ..DriverRunOptions::default() }
}

/// The first seed of the default sweep that fails with `bug` planted.
fn expect_caught(bug: DriverBug, invariants: &[DriverInvariant]) {
    for seed in 0..PLANTED_SEEDS {
        match run_seed(seed, planted(bug)) {
            Ok(report) if report.passed() => continue,
            Ok(report) => {
                let v = report.violation.clone().expect("failed");
                assert!(invariants.contains(&v.invariant), "{bug:?}: seed {seed} failed otherwise: {v}");
                eprintln!("{bug:?} caught by seed {seed} (of {PLANTED_SEEDS}): {v}");
                return;
            }
            // A debug_assert! of the driver or the machine is a catch too.
            Err(panic) if cfg!(debug_assertions) => {
                eprintln!("{bug:?} caught by seed {seed} (of {PLANTED_SEEDS}) as a panic: {panic}");
                return;
            }
            Err(panic) => panic!("{bug:?}: seed {seed} panicked: {panic}"),
        }
    }
    panic!("{bug:?} escaped {PLANTED_SEEDS} seeds of the default madsim sweep");
}

#[test]
fn acking_when_the_put_returns_is_caught() {
    expect_caught(DriverBug::AckOnPutReturn, &[DriverInvariant::AckDurable]);
}

#[test]
fn leaking_budget_on_ack_waves_is_caught() {
    expect_caught(DriverBug::LeakBudgetOnAckWaves, &[DriverInvariant::Liveness]);
}

#[test]
fn leaving_waiters_on_failure_is_caught() {
    expect_caught(DriverBug::AbandonWaitersOnFailure, &[DriverInvariant::Liveness]);
}

#[test]
fn dropping_the_open_batch_on_shutdown_is_caught() {
    // Caught as a clean shutdown that left commits behind, or as their
    // futures resolving `Closed` when the driver stops: whichever comes first.
    expect_caught(
        DriverBug::Machine(PlantedBug::DropOpenBatchOnShutdown),
        &[DriverInvariant::Drain, DriverInvariant::Liveness],
    );
}

// ---- the store itself -----------------------------------------------------

/// 10 ms median requests, no slow tail.
fn ten_ms_no_tail() -> LatencyKnobs {
    LatencyKnobs {
        median: Duration::from_millis(10),
        sigma: 0.3,
        tail_probability: 0.0,
        tail_floor: Duration::from_millis(150),
        tail_alpha: 1.5,
        cap: Duration::from_secs(3),
        bytes_per_ms: 100_000,
        processing: (Duration::from_micros(200), Duration::from_millis(8)),
    }
}

fn store_with(only: Option<FaultClass>) -> SimStore {
    let latency = ten_ms_no_tail();
    let mut faults = FaultKnobs { stop_at_commit: u64::MAX, ..FaultKnobs::none() };
    if let Some(class) = only {
        faults = faults.with_rate(class, Probability::new(1.0));
    }
    SimStore::new(7, SimStoreKnobs { latency, faults, request_timeout: Duration::from_secs(10) })
}

/// A lost response: the object is written, the client hears a timeout.
#[madsim::test]
async fn a_lost_response_writes_and_times_out() {
    let store = store_with(Some(FaultClass::ResponseLost));
    let started = tokio::time::Instant::now();
    let outcome = store.put_if_absent("batches/k", Bytes::from_static(b"x"), &[]).await;
    assert_eq!(outcome, PutOutcome::Failed(Fault::TimedOut));
    assert!(started.elapsed() >= Duration::from_secs(10), "answered at the timeout");
    // The landing may come after the timeout; wait for it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    store.stop_faults();
    assert_eq!(store.get("batches/k").await, GetOutcome::Found(Bytes::from_static(b"x")));
    assert_eq!(store.counts().store.puts, 1);
}

/// A request in the network lands although its client's node was killed.
#[madsim::test]
async fn a_request_lands_after_its_client_is_killed() {
    let store = store_with(None);
    let handle = madsim::runtime::Handle::current();
    let client = handle.create_node().name("client").build();
    let s = store.clone();
    client.spawn(async move {
        let _ = s.put_if_absent("batches/k", Bytes::from_static(b"x"), &[]).await;
    });
    tokio::time::sleep(Duration::from_millis(2)).await;
    handle.kill(client.id());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(store.with_model(|m| m.contains("batches/k")), "landed after the kill");
}

/// Two conditional PUTs: one wins, the other hears 412 (or 409 while the
/// first is processed) and writes nothing.
#[madsim::test]
async fn only_one_conditional_put_wins() {
    let store = store_with(None);
    let (a, b) = (store.clone(), store.clone());
    let first = tokio::spawn(async move { a.put_if_absent("batches/k", Bytes::from_static(b"a"), &[]).await });
    let second = tokio::spawn(async move { b.put_if_absent("batches/k", Bytes::from_static(b"b"), &[]).await });
    let outcomes = [first.await.expect("ran"), second.await.expect("ran")];
    let created = outcomes.iter().filter(|o| **o == PutOutcome::Created).count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, PutOutcome::Created | PutOutcome::AlreadyExists | PutOutcome::Failed(Fault::Conflict))));
}

// ---- driver bugs the sweep found, one test each --------------------------

/// A store that works until `on_commit_issued(0)`, then fails every request
/// for an hour.
fn store_failing_after_commit_0() -> SimStore {
    let latency = ten_ms_no_tail();
    let burst = BurstPlan { at_commit: 0, length: Duration::from_secs(3600) };
    let faults = FaultKnobs { bursts: vec![burst], stop_at_commit: u64::MAX, ..FaultKnobs::none() };
    SimStore::new(9, SimStoreKnobs { latency, faults, request_timeout: Duration::from_secs(10) })
}

async fn open_without_retries(store: SimStore) -> Log {
    let config = Config { max_retry_attempts: 0, ..Config::default() };
    let options = OpenOptions { config, seed: Some(madsim::rand::random()), ..OpenOptions::default() };
    Log::open(store, options).await.expect("opens while the store works")
}

/// Seeds 0, 3, 9, 23, … of the sweep: `shutdown()` of a log that failed
/// returned `Ok(())`, though the commits appended before it never became
/// durable (the machine forgets its failure once shut down).
#[madsim::test]
async fn shutdown_of_a_failed_log_reports_the_failure() {
    let store = store_failing_after_commit_0();
    let log = open_without_retries(store.clone()).await;
    store.on_commit_issued(0);
    let appended = log.append(Bytes::from_static(b"lost")).await.expect("accepted");
    let durable = appended.durable().await;
    assert!(matches!(durable, Err(AppendError::Failed(_))), "{durable:?}");
    let shutdown = log.shutdown().await;
    assert!(shutdown.is_err(), "shutdown() returned {shutdown:?} though a commit appended before it is not durable");
}

/// Seeds 32, 41, 44, 53, … of the sweep: a log that fails while draining (a
/// zombie that learns it was fenced, retries running out) never answers
/// `shutdown()`.
#[madsim::test]
async fn a_failure_while_draining_ends_the_shutdown() {
    let store = store_failing_after_commit_0();
    let log = open_without_retries(store.clone()).await;
    store.on_commit_issued(0);
    let _appended = log.append(Bytes::from_static(b"in the open batch")).await.expect("accepted");
    let shutdown = tokio::time::timeout(Duration::from_secs(600), log.shutdown()).await;
    assert!(matches!(shutdown, Ok(Err(_))), "shutdown() while the drain fails: {shutdown:?}");
}

/// Once `shutdown()` returned and every handle is dropped, the driver task
/// stops (its watermark channel closes). A driver that held a sender of its
/// own command channel (before the inbox) never saw "every handle dropped".
/// (The sweep saw it once the drain hang above was fixed: the driver
/// outlived the log.)
#[madsim::test]
async fn dropping_every_handle_stops_the_driver() {
    let store = store_with(None);
    let log = open_without_retries(store).await;
    let appended = log.append(Bytes::from_static(b"x")).await.expect("accepted");
    appended.durable().await.expect("durable");
    let mut watermark = log.watch_durable();
    drop(log);
    let stopped =
        tokio::time::timeout(Duration::from_secs(60), async { while watermark.changed().await.is_ok() {} }).await;
    assert!(stopped.is_ok(), "the driver still runs a minute after its last handle was dropped");
}

/// Seed 87 of the sweep: a commit refused after `shutdown()` leaves the
/// machine's numbering behind the log's, and the driver's check that
/// numbers follow the order of hand-over panicked on the next one (with the
/// command channel, before the inbox refused them itself). Every append after
/// the shutdown must be refused, one after another, and the one before it
/// still become durable.
#[madsim::test]
async fn appends_after_shutdown_are_refused_one_after_another() {
    let store = store_with(None);
    let log = open_without_retries(store).await;
    // In flight, so the shutdown drains for a while.
    let first = log.append(Bytes::from_static(b"first")).await.expect("accepted");
    // One poll asks for the shutdown; the appends come after it.
    let mut shutdown = std::pin::pin!(log.shutdown());
    let pending = shutdown.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    assert!(pending.is_pending(), "a commit is in flight");
    for payload in [&b"late"[..], b"later"] {
        let appended = log.append(Bytes::from_static(payload)).await;
        let durable = match appended {
            Ok(appended) => appended.durable().await,
            Err(e) => Err(e),
        };
        assert!(durable.is_err(), "an append after shutdown() became durable: {durable:?}");
    }
    first.durable().await.expect("appended before shutdown(), so durable");
    let shutdown = shutdown.await;
    assert!(shutdown.is_ok(), "{shutdown:?}");
}

// ---- the recovery cost curve (issue 7) ------------------------------------

/// Opens a log that a crashed writer left with `batches` batches, the last
/// `in_flight` sent before the ones below them were durable: the store
/// requests by kind and the simulated time `Log::open` took.
fn open_written_log(batches: u64, in_flight: u64) -> ([u64; 3], Duration) {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    runtime.block_on(async move {
        let store = store_with(None);
        store.with_model_mut(|m| write_log(m, batches, in_flight, Config::default().max_in_flight_requests));
        let before = store.counts().store;
        let started = tokio::time::Instant::now();
        let options = OpenOptions { seed: Some(1), ..OpenOptions::default() };
        let log = Log::open(store.clone(), options).await.expect("opens");
        let took = started.elapsed();
        assert_eq!(log.next_seq(), CommitSeq(batches), "every batch was durable");
        let after = store.counts().store;
        ([after.lists - before.lists, after.heads - before.heads, after.puts - before.puts], took)
    })
}

/// Opening a log costs the same requests and the same simulated time (10 ms
/// median per request) whatever its length: 10 to 10^5 batches here, 10^6
/// with `S3WAL_RECOVERY_CURVE_MAX=1000000` (`just recovery-curve`).
#[test]
fn recovery_cost_and_time_are_flat_in_the_log_length() {
    let max: u64 = std::env::var("S3WAL_RECOVERY_CURVE_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    for in_flight in [0, 7] {
        let mut rows = Vec::new();
        for batches in [10, 1_000, 100_000, 1_000_000].into_iter().filter(|&b| b <= max) {
            let (requests, took) = open_written_log(batches, in_flight);
            let [lists, heads, puts] = requests;
            eprintln!(
                "recovery of a log of {batches:>9} batches ({in_flight} in flight): {lists} LIST, {heads} HEAD, {puts} PUT, {:.1} ms simulated",
                took.as_secs_f64() * 1e3
            );
            rows.push((requests, took));
        }
        let first = rows[0];
        assert!(rows.iter().all(|r| *r == first), "not flat ({in_flight} in flight): {rows:?}");
    }
}
