//! `s3wal demo`: the life of a log on a local directory, start to finish —
//! append under load, crash, recover and fence, then prove nothing acked
//! was lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use s3wal::driver::{Log, OpenOptions};
use s3wal::reader::Reader;
use s3wal::store::ObjectStore;
use s3wal::CommitSeq;

use crate::load::{payload, Tuning};
use crate::report::{ms, throughput, Latencies};
use crate::store_arg::StoreArgs;

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Commits to append before the crash.
    #[arg(long, default_value_t = 20_000)]
    pub commits: u64,
    /// Bytes per commit.
    #[arg(long, default_value_t = 200)]
    pub commit_size: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 32)]
    pub producers: usize,
    /// Keep the demo directory afterwards.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub tuning: Tuning,
}

const SEED: u64 = 0x5eed;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp = (args.store.dir.is_none() && args.store.s3.is_none())
        .then(|| std::env::temp_dir().join(format!("s3wal-demo-{}", std::process::id())));
    let result = demo(&args, temp.clone()).await;
    if let Some(dir) = temp.filter(|_| !args.keep) {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn demo(args: &DemoArgs, temp: Option<PathBuf>) -> anyhow::Result<()> {
    let store = args.store.open(temp, args.tuning.config().target_pool_size).await?;
    println!("s3wal demo on {}", store.describe());
    let options = OpenOptions { config: args.tuning.config(), ..OpenOptions::default() };

    println!("\n1. open: recover (one LIST) and fence off any older writer");
    let t0 = Instant::now();
    let log = Log::open(Arc::clone(&store), options.clone()).await.context("cannot open the log")?;
    let cost = log.stats().recovery;
    println!(
        "   opened in {} at commit {}: {} LIST, {} HEAD, {} fence PUTs",
        ms(t0.elapsed()),
        log.next_seq(),
        cost.lists,
        cost.heads,
        cost.puts
    );

    println!("\n2. append {} commits of {} bytes from {} producers", args.commits, args.commit_size, args.producers);
    let (mut acked, mut latencies, elapsed) = append_load(&log, args).await?;
    println!("   {}", throughput(acked.len() as u64, acked.len() as u64 * args.commit_size as u64, elapsed));
    println!("   {}", latencies.summary());
    let stats = log.stats();
    println!("   {} batches in {} PUTs, {} retries", stats.batches, stats.puts, stats.retries.total());

    println!("\n3. crash: append more without waiting, then drop the writer mid-flight");
    let crashed = crash(&log, args).await?;
    let acked_in_crash = crashed.len();
    acked.extend(crashed);
    drop(log);
    println!("   {acked_in_crash} of the in-flight commits were acknowledged before the crash");

    println!("\n4. reopen: recovery finds the end of the log and fences it");
    let t0 = Instant::now();
    let reopened = Log::open(Arc::clone(&store), options).await.context("cannot reopen the log")?;
    let cost = reopened.stats().recovery;
    println!(
        "   recovered in {} as {}: log continues at commit {}; {} LIST, {} HEAD, {} fence PUTs",
        ms(t0.elapsed()),
        reopened.epoch(),
        reopened.next_seq(),
        cost.lists,
        cost.heads,
        cost.puts
    );
    let next = reopened.append(Bytes::from_static(b"after the crash")).await?.durable().await?;
    reopened.shutdown().await?;

    println!("\n5. replay the valid log with the read-only reader and verify");
    verify(store, &acked, next, args.commit_size).await
}

type Acked = BTreeMap<CommitSeq, u32>;

async fn append_load(log: &Log, args: &DemoArgs) -> anyhow::Result<(Acked, Latencies, Duration)> {
    let bar = ProgressBar::new(args.commits);
    bar.set_style(
        ProgressStyle::with_template("   {bar:40} {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let per_producer = args.commits.div_ceil(args.producers.max(1) as u64);
    let mut tasks = Vec::new();
    for p in 0..args.producers.max(1) as u64 {
        let (log, bar, size) = (log.clone(), bar.clone(), args.commit_size);
        let n = per_producer.min(args.commits.saturating_sub(p * per_producer));
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut latencies) = (Acked::new(), Latencies::default());
            for _ in 0..n {
                let t0 = Instant::now();
                let appended = log.append_with(size, |seq| payload(SEED, seq, size)).await?;
                let seq = appended.seq;
                appended.durable().await?;
                latencies.push(t0.elapsed());
                acked.insert(seq, s3wal::format::checksum(&payload(SEED, seq, size)));
                bar.inc(1);
            }
            Ok::<_, anyhow::Error>((acked, latencies))
        }));
    }
    let (mut acked, mut latencies) = (Acked::new(), Latencies::default());
    for t in tasks {
        let (a, l) = t.await??;
        acked.extend(a);
        latencies.extend(l);
    }
    bar.finish_and_clear();
    Ok((acked, latencies, started.elapsed()))
}

/// Appends a burst, lets some of it become durable, and returns what was
/// acknowledged by the time the writer is dropped.
async fn crash(log: &Log, args: &DemoArgs) -> anyhow::Result<Acked> {
    let size = args.commit_size;
    let mut waiting = Vec::new();
    for _ in 0..(args.commits / 10).clamp(100, 2_000) {
        let appended = log.append_with(size, |seq| payload(SEED, seq, size)).await?;
        let seq = appended.seq;
        waiting.push(tokio::spawn(async move { appended.durable().await.ok().map(|_| seq) }));
    }
    // Let about half of the burst become durable, then pull the plug.
    let half = waiting.len() as u64 / 2;
    let mut watch = log.watch_durable();
    let target = CommitSeq(watch.borrow().0 + half);
    let _ = tokio::time::timeout(Duration::from_secs(30), watch.wait_for(|w| *w >= target)).await;
    let watermark = *log.watch_durable().borrow();
    let mut acked = Acked::new();
    for w in waiting {
        w.abort();
        if let Ok(Some(seq)) = w.await {
            if seq < watermark {
                acked.insert(seq, s3wal::format::checksum(&payload(SEED, seq, size)));
            }
        }
    }
    Ok(acked)
}

async fn verify(store: Arc<dyn ObjectStore>, acked: &Acked, after: CommitSeq, size: usize) -> anyhow::Result<()> {
    let reader = Reader::new(store);
    let usage = reader.usage().await?;
    let log = reader
        .fold(CommitSeq(0)..CommitSeq(u64::MAX), BTreeMap::new(), |mut m, seq, c| {
            m.insert(seq, s3wal::format::checksum(c));
            m
        })
        .await
        .context("cannot replay the log")?;
    let mut missing = 0;
    for (seq, crc) in acked {
        if log.get(seq) != Some(crc) {
            missing += 1;
            eprintln!("   MISSING acked commit {seq}");
        }
    }
    let contiguous = log.keys().zip(0..).all(|(s, i)| s.0 == i);
    let unacked_kept = log.len() - acked.len() - 1;
    println!("   {} objects, {} bytes; {} commits in the valid log", usage.objects, usage.bytes, log.len());
    println!("   {unacked_kept} commits were written but not yet acknowledged at the crash: kept, never duplicated");
    if missing > 0 || !contiguous || log.keys().last() != Some(&after) {
        bail!("verification FAILED: {missing} acked commits missing, sequence contiguous: {contiguous}");
    }
    let _ = size;
    println!("\nverified: all {} acknowledged commits are in the log, in order, byte for byte", acked.len());
    Ok(())
}
