//! `s3wal bench`: s3wal (A) against the writer a user would write by hand
//! (B: one conditional PUT per commit), alternating A B A B in one process,
//! on the same store. Prints one table with the A/B ratios.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use clap::Args;
use s3wal::driver::{Log, OpenOptions};
use s3wal::store::{ObjectStore, Prefixed, S3Store};
use s3wal::{Config, PutOutcome};

use crate::load::Tuning;
use crate::report::{batch_puts, ms, Latencies};
use crate::store_arg::StoreArgs;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Seconds each W1 (closed loop) measurement runs.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Producer counts for W1 (closed loop).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16, 64, 256])]
    pub producers: Vec<usize>,
    /// A B rounds per measurement.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Most commits one measurement may append (bounds every load loop).
    #[arg(long, default_value_t = 2_000_000)]
    pub max_commits: u64,
    /// Seconds each W2 (open loop) measurement runs, and each raw PUT run
    /// next to it: a bulk load's first `max_in_flight_requests` batches
    /// leave on the time trigger, small, and a short run measures mostly them.
    #[arg(long, default_value_t = 10.0)]
    pub w2_seconds: f64,
    /// Most MiB one W2 measurement may append.
    #[arg(long, default_value_t = 2048)]
    pub w2_max_mib: u64,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// What S3 Standard charges per 1,000 PUTs (us-east-1 list price), for the
/// cost table's dollar column.
const DOLLARS_PER_1000_PUTS: f64 = 0.005;

/// One measurement's result.
struct Measured {
    commits: u64,
    bytes: u64,
    elapsed: Duration,
    latencies: Latencies,
    /// PUTs that carried commits (the opening's fence PUTs not counted).
    puts: u64,
}

impl Measured {
    fn per_sec(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    fn puts_per_1000_commits(&self) -> f64 {
        self.puts as f64 * 1000.0 / self.commits.max(1) as f64
    }

    fn puts_per_gb(&self) -> f64 {
        self.puts as f64 / (self.bytes.max(1) as f64 / 1e9)
    }
}

/// One row of the cost table: what a workload's commits cost in PUTs.
struct CostRow {
    workload: String,
    producers: String,
    commits: u64,
    puts: u64,
    per_1000: f64,
    per_gb: f64,
}

impl CostRow {
    fn new(workload: String, producers: String, m: &Measured) -> CostRow {
        let (per_1000, per_gb) = (m.puts_per_1000_commits(), m.puts_per_gb());
        CostRow { workload, producers, commits: m.commits, puts: m.puts, per_1000, per_gb }
    }
}

/// PUT requests per 1,000 commits and per GB of commits, s3wal at its
/// default settings: what a user multiplies by their request price.
fn print_costs(rows: &[CostRow], config: &str) {
    println!("\nrequests (s3wal, {config}; fence PUTs of each open not counted; naive = 1,000 per 1,000 commits)");
    println!(
        "{:<12} {:>4} {:>10} {:>8} {:>15} {:>12} {:>12}",
        "workload", "P", "commits", "PUTs", "PUTs/1k commits", "PUTs/GB", "$/GB PUTs"
    );
    for r in rows {
        println!(
            "{:<12} {:>4} {:>10} {:>8} {:>15.2} {:>12.0} {:>12.4}",
            r.workload,
            r.producers,
            r.commits,
            r.puts,
            r.per_1000,
            r.per_gb,
            r.per_gb * DOLLARS_PER_1000_PUTS / 1000.0
        );
    }
    println!(
        "($/GB at ${DOLLARS_PER_1000_PUTS} per 1,000 PUTs, S3 Standard us-east-1 list price; storage not included)"
    );
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum System {
    S3wal,
    Naive,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let pool_size = args.tuning.config().target_pool_size;
    let s3 = args.store.s3_store(pool_size).await?;
    let root: Arc<dyn ObjectStore> = match &s3 {
        Some(s3) => Arc::new(s3.clone()),
        None => args.store.open(None, pool_size).await?,
    };
    let mut runs = Runs { root, cleanup: Cleanup(s3), id: std::process::id(), count: 0 };
    let limit = Duration::from_secs_f64(args.seconds);
    let config = if args.tuning.config() == Config::default() { "default config" } else { "config from the flags" };
    println!(
        "s3wal bench on {}: {:.1}s per W1 measurement, {} rounds, A = s3wal ({config}), B = naive; {:.1}s per W2 and raw run",
        runs.root.describe(),
        args.seconds,
        args.rounds,
        args.w2_seconds
    );
    println!(
        "\n{:<12} {:>4} {:>7} {:>12} {:>9} {:>9} {:>9} {:>9}",
        "workload", "P", "system", "commits/s", "p50", "p90", "p99", "max"
    );
    let mut ratio_at_64 = None;
    let mut costs = Vec::new();
    for &p in &args.producers {
        let mut best: [Option<Measured>; 2] = [None, None];
        for _ in 0..args.rounds {
            for (i, system) in [System::S3wal, System::Naive].into_iter().enumerate() {
                let m = runs
                    .measure(async |store| {
                        closed_loop(system, store, p, 100, limit, args.max_commits, &args.tuning).await
                    })
                    .await?;
                if best[i].as_ref().is_none_or(|b| m.per_sec() > b.per_sec()) {
                    best[i] = Some(m);
                }
            }
        }
        let [Some(mut a), Some(mut b)] = best else { continue };
        costs.push(CostRow::new("W1 100B".into(), p.to_string(), &a));
        print_row("W1 100B", p, "s3wal", &mut a);
        print_row("W1 100B", p, "naive", &mut b);
        let ratio = a.per_sec() / b.per_sec().max(1e-9);
        println!("{:<12} {:>4} {:>7} {:>11.1}x", "", p, "A/B", ratio);
        if p == 64 {
            ratio_at_64 = Some(ratio);
        }
    }
    println!("\n{:<12} {:>4} {:>7} {:>12} {:>9}", "workload", "P", "system", "commits/s", "MB/s");
    // moto slows as it fills (89 -> 79 MB/s over four 6 s runs of W2 while
    // its RSS grew from 0.8 to 2.6 GB), so each measurement's objects are
    // deleted once it is measured (see `Cleanup`), and each W2 run is
    // bracketed by raw runs and compared with their mean, which cancels what
    // drift is left. Comparing with the better of a raw run before and one
    // after all of W2 favoured raw: the first ran on the emptiest server.
    // Raw runs last as long as the W2 runs they bracket, so that both see
    // the server over stretches of the same length (moto fills as a run
    // goes on, and a 1 s raw run is about 200 PUTs).
    let w2_limit = Duration::from_secs_f64(args.w2_seconds);
    let mut raw_before = runs.measure(async |store| raw_puts(store, w2_limit).await).await?;
    print_raw_row(&raw_before);
    let mut shares = Vec::new();
    for size in [100usize, 4096] {
        let max_commits = (args.w2_max_mib << 20) / size as u64;
        let m = runs.measure(async |store| open_loop(store, size, w2_limit, max_commits, &args.tuning).await).await?;
        costs.push(CostRow::new(format!("W2 {size}B"), "-".into(), &m));
        println!(
            "{:<12} {:>4} {:>7} {:>12.0} {:>9.2}",
            format!("W2 {size}B"),
            "-",
            "s3wal",
            m.per_sec(),
            m.mb_per_sec()
        );
        let raw_after = runs.measure(async |store| raw_puts(store, w2_limit).await).await?;
        print_raw_row(&raw_after);
        shares.push((size, m.mb_per_sec(), raw_before.mb_per_sec(), raw_after.mb_per_sec()));
        raw_before = raw_after;
    }
    for (size, mb_per_sec, before, after) in shares {
        let raw_mean = (before + after) / 2.0;
        println!(
            "W2 {size}B share of raw: {:.1} % ({mb_per_sec:.2} of {raw_mean:.2} MB/s, the mean of the raw runs before ({before:.2}) and after ({after:.2}))",
            100.0 * mb_per_sec / raw_mean.max(1e-9)
        );
    }
    print_costs(&costs, config);
    if let Some(ratio) = ratio_at_64 {
        println!("\nratio vs naive at 64 producers: {ratio:.1}x");
    }
    Ok(())
}

/// Where measurements write: each under a prefix of its own in `root`,
/// cleared once it is measured.
struct Runs {
    root: Arc<dyn ObjectStore>,
    cleanup: Cleanup,
    /// This process's id, in every prefix.
    id: u32,
    /// Measurements so far.
    count: u64,
}

impl Runs {
    /// Runs one measurement in a fresh prefix, then deletes what it wrote.
    async fn measure<T>(
        &mut self,
        measurement: impl AsyncFnOnce(Prefixed<Arc<dyn ObjectStore>>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.count += 1;
        let prefix = format!("bench-{}-{}", self.id, self.count);
        let measured = measurement(Prefixed::new(Arc::clone(&self.root), &prefix)).await;
        self.cleanup.clear(&prefix).await;
        measured
    }
}

/// Deletes what a measurement wrote once it is measured, so that each one
/// meets the server in the state the first did. moto keeps every object in
/// memory and slows as it fills: in one `just bench` run its raw 1 MiB PUTs
/// did 184, 140 and 112 MB/s, about 1.5 GB written between each two, and
/// W2 100 B came out at 68.5 % of raw. A local directory is left as it is.
struct Cleanup(Option<S3Store>);

impl Cleanup {
    /// Deletes every object under the run's `prefix`. A failure (a bucket
    /// that allows writes but not deletes, say) is reported and the
    /// measurements go on, on a server that fills up as they do.
    async fn clear(&self, prefix: &str) {
        if let Err(e) = self.try_clear(prefix).await {
            eprintln!("warning: the objects under {prefix} stay: {e:#}");
        }
    }

    /// Deletes every object under `prefix`, a page at a time.
    async fn try_clear(&self, prefix: &str) -> anyhow::Result<()> {
        let Some(s3) = &self.0 else { return Ok(()) };
        let (client, bucket) = (s3.client(), s3.bucket());
        let full_prefix = format!("{}{prefix}/", s3.prefix());
        let mut pages = client.list_objects_v2().bucket(bucket).prefix(&full_prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.with_context(|| format!("listing {full_prefix} to delete it"))?;
            let objects = page
                .contents()
                .iter()
                .filter_map(|object| object.key())
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()?;
            if objects.is_empty() {
                continue;
            }
            let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build()?;
            let deleted = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .with_context(|| format!("deleting {full_prefix}"))?;
            // A 200 can still list keys it did not delete.
            if let Some(failed) = deleted.errors().first() {
                anyhow::bail!(
                    "{} objects not deleted, the first {:?}: {:?}",
                    deleted.errors().len(),
                    failed.key(),
                    failed.message()
                );
            }
        }
        Ok(())
    }
}

fn print_raw_row(raw: &Measured) {
    println!(
        "{:<12} {:>4} {:>7} {:>12.0} {:>9.2}",
        "raw 1MiB PUT",
        RAW_PUT_STREAMS,
        "store",
        raw.per_sec(),
        raw.mb_per_sec()
    );
}

fn print_row(workload: &str, p: usize, system: &str, m: &mut Measured) {
    let [p50, p90, p99, max] = m.latencies.percentiles();
    println!(
        "{workload:<12} {p:>4} {system:>7} {:>12.0} {:>9} {:>9} {:>9} {:>9}",
        m.per_sec(),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    );
}

/// W1: each producer appends one commit and waits for it before the next.
async fn closed_loop<S: ObjectStore + Clone>(
    system: System,
    store: S,
    producers: usize,
    size: usize,
    limit: Duration,
    max_commits: u64,
    tuning: &Tuning,
) -> anyhow::Result<Measured> {
    let log = match system {
        System::S3wal => Some(
            Log::open(store.clone(), OpenOptions { config: tuning.config(), ..OpenOptions::default() })
                .await
                .context("open")?,
        ),
        System::Naive => None,
    };
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (log, store, issued) = (log.clone(), store.clone(), Arc::clone(&issued));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let payload = Bytes::from(vec![7u8; size]);
            while started.elapsed() < limit {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= max_commits {
                    break;
                }
                let t0 = Instant::now();
                match &log {
                    Some(log) => {
                        log.append(payload.clone()).await?.durable().await?;
                    }
                    None => {
                        let key = format!("naive/{i:020}");
                        match store.put_if_absent(&key, payload.clone(), &[]).await {
                            PutOutcome::Created => {}
                            other => anyhow::bail!("naive PUT {key} answered {other:?}"),
                        }
                    }
                }
                latencies.push(t0.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Latencies::default();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let commits = latencies.len() as u64;
    let puts = match log {
        Some(log) => {
            log.shutdown().await?;
            batch_puts(&log.stats())
        }
        None => commits,
    };
    Ok(Measured { commits, bytes: commits * size as u64, elapsed, latencies, puts })
}

/// W2: append as fast as the byte budget allows; durability is awaited at the end.
async fn open_loop<S: ObjectStore + Clone>(
    store: S,
    size: usize,
    limit: Duration,
    max_commits: u64,
    tuning: &Tuning,
) -> anyhow::Result<Measured> {
    let log =
        Log::open(store, OpenOptions { config: tuning.config(), ..OpenOptions::default() }).await.context("open")?;
    let payload = Bytes::from(vec![9u8; size]);
    let started = Instant::now();
    let mut commits = 0u64;
    let mut last = None;
    // The clock is read once per CLOCK_EVERY appends: read per append, it
    // was 3 % of the client's CPU in a 100 B bulk load (perf).
    while commits < max_commits && (!commits.is_multiple_of(CLOCK_EVERY) || started.elapsed() < limit) {
        last = Some(log.append(payload.clone()).await?);
        commits += 1;
    }
    if let Some(last) = last {
        last.durable().await?;
    }
    let elapsed = started.elapsed();
    log.shutdown().await?;
    let puts = batch_puts(&log.stats());
    Ok(Measured { commits, bytes: commits * size as u64, elapsed, latencies: Latencies::default(), puts })
}

/// Appends between two reads of the clock in an open loop.
const CLOCK_EVERY: u64 = 256;

/// The size of the raw PUTs: a full default batch.
const RAW_PUT_BYTES: usize = 1 << 20;
/// Concurrent streams of raw PUTs.
const RAW_PUT_STREAMS: usize = 16;

/// The store's raw bandwidth: [`RAW_PUT_STREAMS`] streams of
/// [`RAW_PUT_BYTES`]-byte PUTs.
async fn raw_puts<S: ObjectStore + Clone>(store: S, limit: Duration) -> anyhow::Result<Measured> {
    let (size, parallel) = (RAW_PUT_BYTES, RAW_PUT_STREAMS);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let body = Bytes::from(vec![3u8; size]);
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (store, issued, body) = (store.clone(), Arc::clone(&issued), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < limit && n < 10_000 {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                match store.put_if_absent(&format!("raw/{i:020}"), body.clone(), &[]).await {
                    PutOutcome::Created => n += 1,
                    other => anyhow::bail!("raw PUT answered {other:?}"),
                }
            }
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut puts = 0;
    for t in tasks {
        puts += t.await??;
    }
    let elapsed = started.elapsed();
    Ok(Measured { commits: puts, bytes: puts * size as u64, elapsed, latencies: Latencies::default(), puts })
}
