//! `s3wal-peers`: s3wal against SlateDB on the same S3-compatible server, in
//! one process, alternating. The workloads are those of `s3wal bench`:
//!
//! - W1, closed loop: P producers, each writes one 100-byte commit and awaits
//!   its durability before the next.
//! - W2, open loop: one writer as fast as the system accepts, durability
//!   awaited once at the end (100-byte and 4 KiB commits).
//!
//! A = s3wal with its default configuration (`S3Store`). SlateDB runs twice:
//! with its default `flush_interval` (100 ms) and with 10 ms; a commit is one
//! `put_with_options` of an 8-byte key and the payload as value, durable once
//! its `WriteHandle::await_durable` returns.
//!
//! Usage: s3wal-peers --bucket B --endpoint http://127.0.0.1:PORT
//!        [--seconds 3] [--rounds 2] [--producers 1,16,64,256] [--max-commits N]
//!        [--s3wal-batch-timeout-ms MS] [--s3wal-max-in-flight N]
//!
//! The last two change s3wal's configuration for experiments (the output
//! then says so); the published figures use the default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::TryStreamExt;
use s3wal::driver::{Appended, Log, OpenOptions};
use s3wal::store::{ObjectStore as WalStore, Prefixed, S3Options, S3Store};
use slatedb::config::{PutOptions, Settings, WriteOptions};
use slatedb::object_store::aws::AmazonS3Builder;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, PutMode, PutOptions as StorePutOptions, PutPayload};
use slatedb::{Db, WriteHandle};

// The latency figures of `s3wal bench`, shared so both print the same way.
#[allow(dead_code)]
#[path = "../../../src/bin/s3wal/report.rs"]
mod report;

use report::{ms, Latencies};

struct Args {
    bucket: String,
    endpoint: String,
    seconds: f64,
    rounds: usize,
    producers: Vec<usize>,
    max_commits: u64,
    /// s3wal's configuration (the default unless overridden by flags).
    config: s3wal::Config,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        bucket: String::new(),
        endpoint: String::new(),
        seconds: 3.0,
        rounds: 2,
        producers: vec![1, 16, 64, 256],
        max_commits: 2_000_000,
        config: s3wal::Config::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bucket" => args.bucket = value()?,
            "--endpoint" => args.endpoint = value()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            "--max-commits" => args.max_commits = value()?.parse()?,
            // Overrides for experiments; the published table uses the default.
            "--s3wal-batch-timeout-ms" => {
                args.config.batch_timeout = Duration::from_secs_f64(value()?.parse::<f64>()? / 1000.0)
            }
            "--s3wal-max-in-flight" => {
                args.config.max_in_flight_requests = value()?.parse()?;
                args.config.target_pool_size = args.config.target_pool_size.max(args.config.max_in_flight_requests);
            }
            "--producers" => {
                args.producers = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other:?} (see the top of bench/peers/src/main.rs)"),
        }
    }
    if args.bucket.is_empty() || args.endpoint.is_empty() {
        bail!("usage: s3wal-peers --bucket B --endpoint http://127.0.0.1:PORT [--seconds S] [--rounds R] [--producers 1,16,64,256]");
    }
    Ok(args)
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum System {
    S3wal,
    /// SlateDB with this flush interval (`None`: SlateDB's default).
    Slate(Option<Duration>),
}

const SYSTEMS: [System; 3] = [System::S3wal, System::Slate(None), System::Slate(Some(Duration::from_millis(10)))];

impl System {
    fn name(self) -> String {
        match self {
            System::S3wal => "s3wal".into(),
            System::Slate(None) => "slatedb(default)".into(),
            System::Slate(Some(d)) => format!("slatedb({}ms)", d.as_millis()),
        }
    }
}

/// Where both systems write: one connection pool each, reused across runs.
struct Stores {
    wal: Arc<dyn WalStore>,
    slate: Arc<dyn ObjectStore>,
    prefix: String,
    runs: AtomicU64,
    config: s3wal::Config,
}

impl Stores {
    async fn connect(args: &Args) -> anyhow::Result<Stores> {
        let prefix = format!("peers-{}", std::process::id());
        let wal = S3Store::connect(S3Options {
            bucket: args.bucket.clone(),
            prefix: prefix.clone(),
            endpoint: Some(args.endpoint.clone()),
            force_path_style: true,
            pool_size: args.config.target_pool_size as usize,
            ..S3Options::default()
        })
        .await?;
        wal.check().await.context("s3wal cannot use the bucket")?;
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "test".into());
        let slate = AmazonS3Builder::new()
            .with_endpoint(&args.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_bucket_name(&args.bucket)
            .with_region(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_access_key_id(env("AWS_ACCESS_KEY_ID"))
            .with_secret_access_key(env("AWS_SECRET_ACCESS_KEY"))
            .build()
            .context("object_store AmazonS3")?;
        Ok(Stores {
            wal: Arc::new(wal),
            slate: Arc::new(slate),
            prefix,
            runs: AtomicU64::new(0),
            config: args.config.clone(),
        })
    }

    /// A writer of `system` on a fresh prefix.
    async fn open(&self, system: System) -> anyhow::Result<Writer> {
        let run = format!("run-{}", self.runs.fetch_add(1, Ordering::Relaxed));
        match system {
            System::S3wal => {
                let store = Prefixed::new(Arc::clone(&self.wal), &run);
                Ok(Writer::S3wal(
                    Log::open(store, OpenOptions { config: self.config.clone(), ..OpenOptions::default() })
                        .await
                        .context("s3wal open")?,
                ))
            }
            System::Slate(interval) => {
                let mut settings = Settings::default();
                if interval.is_some() {
                    settings.flush_interval = interval;
                }
                let db = Db::builder(format!("{}/{run}", self.prefix), Arc::clone(&self.slate))
                    .with_settings(settings)
                    .build()
                    .await
                    .context("slatedb open")?;
                Ok(Writer::Slate(db, Path::from(format!("{}/{run}/wal", self.prefix))))
            }
        }
    }
}

#[derive(Clone)]
enum Writer {
    S3wal(Log),
    /// The database and where its WAL objects go.
    Slate(Db, Path),
}

enum Pending {
    S3wal(Appended),
    Slate(WriteHandle),
}

impl Pending {
    async fn durable(self) -> anyhow::Result<()> {
        match self {
            Pending::S3wal(a) => drop(a.durable().await?),
            Pending::Slate(h) => h.await_durable().await?,
        }
        Ok(())
    }
}

impl Writer {
    /// Writes commit `i`; durability is awaited on the returned handle.
    async fn write(&self, i: u64, payload: &Bytes) -> anyhow::Result<Pending> {
        Ok(match self {
            Writer::S3wal(log) => Pending::S3wal(log.append(payload.clone()).await?),
            Writer::Slate(db, _) => Pending::Slate(
                db.put_with_options(i.to_be_bytes(), payload, &PutOptions::default(), &WriteOptions::default()).await?,
            ),
        })
    }

    /// Log or WAL PUTs so far: s3wal's batch PUTs (its opening's fence PUTs
    /// left out); SlateDB's WAL objects (one PUT each; its opening writes one).
    async fn puts(&self, stores: &Stores) -> anyhow::Result<u64> {
        Ok(match self {
            Writer::S3wal(log) => {
                let stats = log.stats();
                stats.puts - stats.recovery.puts
            }
            Writer::Slate(_, wal) => {
                stores.slate.list(Some(wal)).try_fold(0u64, |n, _| async move { Ok(n + 1) }).await?
            }
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        match self {
            Writer::S3wal(log) => log.shutdown().await?,
            Writer::Slate(db, _) => db.close().await?,
        }
        Ok(())
    }
}

struct Measured {
    commits: u64,
    bytes: u64,
    elapsed: Duration,
    /// p50, p90, p99, max (zero for W2).
    latency: [Duration; 4],
    /// Log or WAL PUTs made during the measurement.
    puts: u64,
}

impl Measured {
    fn per_sec(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// W1: each producer writes one commit and awaits its durability before the next.
async fn closed_loop(w: &Writer, producers: usize, size: usize, limit: Duration, max: u64) -> anyhow::Result<Measured> {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (w, issued) = (w.clone(), Arc::clone(&issued));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let payload = Bytes::from(vec![7u8; size]);
            while started.elapsed() < limit {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let t0 = Instant::now();
                w.write(i, &payload).await?.durable().await?;
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
    Ok(Measured { commits, bytes: commits * size as u64, elapsed, latency: latencies.percentiles(), puts: 0 })
}

/// W2: write as fast as the system accepts; durability is awaited at the end.
async fn open_loop(w: &Writer, size: usize, limit: Duration, max: u64) -> anyhow::Result<Measured> {
    let payload = Bytes::from(vec![9u8; size]);
    let started = Instant::now();
    let mut commits = 0u64;
    let mut last = None;
    while started.elapsed() < limit && commits < max {
        last = Some(w.write(commits, &payload).await?);
        commits += 1;
    }
    if let Some(last) = last {
        last.durable().await?;
    }
    let elapsed = started.elapsed();
    Ok(Measured { commits, bytes: commits * size as u64, elapsed, latency: [Duration::ZERO; 4], puts: 0 })
}

/// One measurement on a fresh writer, bounded in time even if a system hangs.
async fn measure(stores: &Stores, system: System, args: &Args, workload: Workload) -> anyhow::Result<Measured> {
    let limit = Duration::from_secs_f64(args.seconds);
    let w = stores.open(system).await?;
    let puts_before = w.puts(stores).await?;
    let run = async {
        match workload {
            Workload::W1 { producers } => closed_loop(&w, producers, 100, limit, args.max_commits).await,
            Workload::W2 { size } => open_loop(&w, size, limit, args.max_commits).await,
        }
    };
    let mut m = tokio::time::timeout(limit + Duration::from_secs(60), run)
        .await
        .with_context(|| format!("{} {workload:?} did not finish in time", system.name()))??;
    m.puts = w.puts(stores).await? - puts_before;
    w.close().await.with_context(|| format!("closing {}", system.name()))?;
    Ok(m)
}

/// The two S3 clients alone: `n` create-if-absent PUTs of `size` bytes, one
/// at a time, alternating s3wal's `S3Store` (aws-sdk-s3) and SlateDB's
/// `object_store` so both see the same server load. p50 and p99 of each.
async fn raw_put_latency(stores: &Stores, n: usize, size: usize) -> anyhow::Result<[[Duration; 4]; 2]> {
    let body = Bytes::from(vec![5u8; size]);
    let (mut wal, mut slate) = (Latencies::default(), Latencies::default());
    for i in 0..n {
        let t0 = Instant::now();
        match stores.wal.put_if_absent(&format!("probe-s3store/{i}"), body.clone(), &[]).await {
            s3wal::PutOutcome::Created => wal.push(t0.elapsed()),
            other => bail!("S3Store probe PUT answered {other:?}"),
        }
        let t0 = Instant::now();
        let path = Path::from(format!("{}/probe-object-store/{i}", stores.prefix));
        let opts = StorePutOptions { mode: PutMode::Create, ..StorePutOptions::default() };
        stores.slate.put_opts(&path, PutPayload::from(body.clone()), opts).await?;
        slate.push(t0.elapsed());
    }
    Ok([wal.percentiles(), slate.percentiles()])
}

#[derive(Copy, Clone, Debug)]
enum Workload {
    W1 { producers: usize },
    W2 { size: usize },
}

fn ratio_line(what: &str, a: &Measured, b: &Measured, name: &str, latency: bool) -> String {
    let mut line = format!("ratio s3wal vs {name} {what}: {:.1}x commits/s", a.per_sec() / b.per_sec().max(1e-9));
    if latency {
        line += &format!(", {:.2}x p50", a.latency[0].as_secs_f64() / b.latency[0].as_secs_f64().max(1e-12));
    }
    line
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let stores = Stores::connect(&args).await?;
    let default = s3wal::Config::default();
    if (args.config.batch_timeout, args.config.max_in_flight_requests)
        != (default.batch_timeout, default.max_in_flight_requests)
    {
        println!(
            "NOT the default s3wal config: batch_timeout {:?}, max_in_flight_requests {}",
            args.config.batch_timeout, args.config.max_in_flight_requests
        );
    }
    println!(
        "s3wal-peers on s3://{}/{} at {}: {:.1}s per measurement, best of {} rounds, systems alternating; \
         s3wal = default config unless said above, slatedb(default) = flush_interval {:?}",
        args.bucket,
        stores.prefix,
        args.endpoint,
        args.seconds,
        args.rounds,
        Settings::default().flush_interval.unwrap_or_default()
    );
    println!(
        "\n{:<12} {:>4} {:>16} {:>12} {:>9} {:>9} {:>9} {:>9}",
        "workload", "P", "system", "commits/s", "p50", "p90", "p99", "max"
    );
    let mut ratios = Vec::new();
    let mut puts_lines = Vec::new();
    let mut target = None;
    for &p in &args.producers {
        let mut best: [Option<Measured>; 3] = [None, None, None];
        for _ in 0..args.rounds {
            for (i, &system) in SYSTEMS.iter().enumerate() {
                let m = measure(&stores, system, &args, Workload::W1 { producers: p }).await?;
                if best[i].as_ref().is_none_or(|b| m.per_sec() > b.per_sec()) {
                    best[i] = Some(m);
                }
            }
        }
        let [Some(a), Some(d), Some(t)] = best else { continue };
        for (system, m) in SYSTEMS.iter().zip([&a, &d, &t]) {
            let [p50, p90, p99, max] = m.latency;
            println!(
                "{:<12} {p:>4} {:>16} {:>12.0} {:>9} {:>9} {:>9} {:>9}",
                "W1 100B",
                system.name(),
                m.per_sec(),
                ms(p50),
                ms(p90),
                ms(p99),
                ms(max)
            );
        }
        let puts: Vec<String> = SYSTEMS
            .iter()
            .zip([&a, &d, &t])
            .map(|(s, m)| {
                format!("{} {} ({:.1} commits/PUT)", s.name(), m.puts, m.commits as f64 / m.puts.max(1) as f64)
            })
            .collect();
        puts_lines.push(format!("PUTs at {p} producers: {}", puts.join(", ")));
        for (system, m) in SYSTEMS[1..].iter().zip([&d, &t]) {
            ratios.push(ratio_line(&format!("at {p} producers"), &a, m, &system.name(), true));
        }
        if p == 64 {
            let (c, l) = (a.per_sec() / t.per_sec().max(1e-9), a.latency[0].as_secs_f64() / t.latency[0].as_secs_f64());
            target = Some((c, l));
        }
    }
    println!("\n{:<12} {:>4} {:>16} {:>12} {:>9}", "workload", "P", "system", "commits/s", "MB/s");
    for size in [100usize, 4096] {
        let mut ms_ = Vec::new();
        for &system in &SYSTEMS {
            let m = measure(&stores, system, &args, Workload::W2 { size }).await?;
            println!(
                "{:<12} {:>4} {:>16} {:>12.0} {:>9.2}",
                format!("W2 {size}B"),
                "-",
                system.name(),
                m.per_sec(),
                m.mb_per_sec()
            );
            ms_.push(m);
        }
        for (system, m) in SYSTEMS[1..].iter().zip(&ms_[1..]) {
            ratios.push(ratio_line(&format!("W2 {size}B"), &ms_[0], m, &system.name(), false));
        }
    }
    let [wal, slate] = raw_put_latency(&stores, 200, 4096).await?;
    println!(
        "\nraw PUT latency, 200 create-if-absent PUTs of 4 KiB one at a time: \
         s3wal S3Store p50 {} p99 {}; object_store p50 {} p99 {}",
        ms(wal[0]),
        ms(wal[2]),
        ms(slate[0]),
        ms(slate[2])
    );
    println!();
    for line in puts_lines {
        println!("{line}");
    }
    println!();
    for line in ratios {
        println!("{line}");
    }
    if let Some((c, l)) = target {
        let met = c >= 2.0 && l <= 0.6;
        println!(
            "issue 7 target at 64 producers (>= 2x slatedb(10ms) commits/s, p50 <= 0.6x): {c:.1}x, {l:.2}x: {}",
            if met { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
