//! The per-commit cost of the tokio driver ([`Log::append`] on the in-memory
//! store), next to the state machine alone fed the same commits, in one run.
//!
//! One producer appends `N` commits of 100 bytes without awaiting them (W2's
//! open loop) and then awaits the last one; the store answers every PUT at
//! once, so what is measured is the driver's own work per commit: the
//! producer's budget and queue permits, the inbox, the writer
//! task's loop, the ack. The machine-alone figure is the floor the driver
//! cannot go below.
//!
//! `cargo bench --bench driver`; `S3WAL_BENCH_QUICK=1` shortens it.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use s3wal::driver::{Log, OpenOptions};
use s3wal::store::MemStore;
use s3wal::{
    Action, CommitSeq, Config, Epoch, Identity, Input, LeaderId, Persister, Position, PutOutcome, StartPoint, Time,
};

const COMMIT_BYTES: usize = 100;

/// Per commit through [`Log::append`], from the first append to the last
/// commit's durability.
struct DriverCost {
    /// Elapsed nanoseconds.
    wall: f64,
    /// Nanoseconds of CPU, every thread's: what a store server sharing the
    /// machine's cores (moto in `s3wal bench`) has to do without.
    cpu: f64,
}

/// User and system CPU time of the whole process so far, in nanoseconds.
fn process_cpu_nanos() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0, "getrusage");
        usage
    };
    let nanos = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    nanos(usage.ru_utime) + nanos(usage.ru_stime)
}

async fn driver_cost(n: u64, payload: &Bytes) -> DriverCost {
    let log = Log::open(MemStore::new(), OpenOptions { seed: Some(1), ..OpenOptions::default() })
        .await
        .expect("an in-memory log opens");
    let cpu_before = process_cpu_nanos();
    let started = Instant::now();
    let mut last = None;
    for _ in 0..n {
        last = Some(log.append(payload.clone()).await.expect("the in-memory log accepts every commit"));
    }
    let last = last.expect("at least one commit");
    let seq = last.durable().await.expect("the in-memory log acknowledges every commit");
    let wall = started.elapsed().as_nanos() as f64 / n as f64;
    let cpu = (process_cpu_nanos() - cpu_before) / n as f64;
    assert_eq!(seq, CommitSeq(n - 1), "the last commit is the n-th");
    log.shutdown().await.expect("clean shutdown");
    DriverCost { wall, cpu }
}

/// Nanoseconds per commit through the machine alone, its PUTs answered in
/// fours (answered at once, every commit would leave alone by the idle fast
/// path).
fn machine_nanos(n: u64, payload: &Bytes) -> f64 {
    let config = Config::default().validate().expect("the default configuration is valid");
    let identity = Identity { leader: LeaderId(1), nonce: 1, jitter_seed: 1 };
    let start = StartPoint { position: Position(0), next_commit: CommitSeq(0), epoch: Epoch::default() };
    let started = Instant::now();
    let mut machine = Persister::resume(config, identity, start);
    let mut pending = Vec::new();
    let mut durable = 0;
    let mut step = |machine: &mut Persister, now: Time, input: Input, flush: bool| {
        machine.handle(now, input).expect("accepted");
        loop {
            while let Some(action) = machine.poll_action() {
                match action {
                    Action::Put(put) => pending.push(put.request),
                    Action::Durable { commits } => durable = commits.end.0,
                    _ => {}
                }
            }
            let answer = pending.len() >= 4 || (flush && !pending.is_empty());
            if !answer {
                break;
            }
            for request in std::mem::take(&mut pending) {
                let done = Input::PutFinished { request, outcome: PutOutcome::Created };
                machine.handle(now, done).expect("a completion is never refused");
            }
        }
    };
    for i in 0..n {
        step(&mut machine, Time::from_nanos(i), Input::CommitArrived(black_box(payload.clone())), false);
    }
    step(&mut machine, Time::from_nanos(n), Input::ShutdownRequested, true);
    let nanos = started.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(durable, n, "every commit durable");
    nanos
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let quick = std::env::var_os("S3WAL_BENCH_QUICK").is_some();
    // Without `--bench` (cargo test --benches) it only checks that it runs.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (n, reps) = match (smoke, quick) {
        (true, _) => (10_000, 1),
        (false, true) => (300_000, 3),
        (false, false) => (2_000_000, 5),
    };
    let payload = Bytes::from(vec![7u8; COMMIT_BYTES]);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut machine = Vec::new();
    for _ in 0..reps {
        let cost = runtime.block_on(driver_cost(n, &payload));
        wall.push(cost.wall);
        cpu.push(cost.cpu);
        machine.push(machine_nanos(n, &payload));
    }
    let (d, c, m) = (median(wall), median(cpu), median(machine));
    println!("\n==== s3wal driver bench: {n} commits of {COMMIT_BYTES} B, one producer, in-memory store, median of {reps} ====");
    println!("driver (Log::append on MemStore): {d:.0} ns/commit ({:.2} M commits/s)", 1e3 / d);
    println!("driver CPU, all threads:          {c:.0} ns/commit");
    println!("machine alone:                    {m:.0} ns/commit ({:.2} M commits/s)", 1e3 / m);
    println!("driver/machine time: {:.1}x, CPU: {:.1}x", d / m, c / m);
}
