//! `s3wal load`: a bounded stream of commits, with an optional ack log that
//! survives `kill -9` holding only commits that were really acknowledged.

use std::collections::BTreeMap;
use std::fs::OpenOptions as FileOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use rand::{RngCore, SeedableRng};
use s3wal::driver::{Log, OpenOptions};
use s3wal::{CommitSeq, Config};
use tokio::sync::mpsc;

use crate::report::{throughput, Latencies};
use crate::store_arg::StoreArgs;

#[derive(Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// How many commits to append.
    #[arg(long, default_value_t = 10_000)]
    pub commits: u64,
    /// Bytes per commit.
    #[arg(long, default_value_t = 100)]
    pub commit_size: usize,
    /// Target commits per second across all producers (default: as fast as acks allow).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent producers; each appends and awaits durability in turn.
    #[arg(long, default_value_t = 16)]
    pub producers: usize,
    /// Commit bytes are a pure function of (seed, sequence number).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append `SEQ<TAB>CRC32C` for every acknowledged commit, in order, flushed as acked.
    #[arg(long, value_name = "FILE")]
    pub ack_log: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// Configuration overrides shared by the commands that write.
#[derive(Args, Debug, Clone, Default)]
pub struct Tuning {
    /// batch_timeout in milliseconds.
    #[arg(long)]
    pub batch_timeout_ms: Option<f64>,
    /// batch_size_threshold in bytes.
    #[arg(long)]
    pub batch_bytes: Option<u64>,
    /// max_in_flight_requests (also the window).
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// byte_budget in bytes.
    #[arg(long)]
    pub byte_budget: Option<u64>,
}

impl Tuning {
    pub fn config(&self) -> Config {
        let mut c = Config::default();
        if let Some(ms) = self.batch_timeout_ms {
            c.batch_timeout = Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        }
        if let Some(b) = self.batch_bytes {
            c.batch_size_threshold = b;
        }
        if let Some(n) = self.max_in_flight {
            c.max_in_flight_requests = n;
            c.target_pool_size = c.target_pool_size.max(n.saturating_mul(2));
        }
        if let Some(b) = self.byte_budget {
            c.byte_budget = b;
        }
        c
    }
}

/// The bytes of commit `seq` in a run seeded with `seed`.
pub fn payload(seed: u64, seq: CommitSeq, size: usize) -> Bytes {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ seq.0.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut bytes = vec![0u8; size];
    rng.fill_bytes(&mut bytes);
    Bytes::from(bytes)
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let store = args.store.open(None, args.tuning.config().target_pool_size).await?;
    let options = OpenOptions { config: args.tuning.config(), ..OpenOptions::default() };
    let log = Log::open(store, options).await.context("cannot open the log")?;
    let first = log.next_seq();
    eprintln!("opened {} at commit {first}, epoch {}", log.store(), log.epoch());
    let (acks_tx, acks_rx) = mpsc::unbounded_channel::<(CommitSeq, u32)>();
    let writer = args.ack_log.clone().map(|path| tokio::spawn(write_ack_log(path, first, acks_rx)));
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for _ in 0..args.producers.max(1) {
        let (log, issued, acks) = (log.clone(), Arc::clone(&issued), acks_tx.clone());
        let (total, size, seed, rate) = (args.commits, args.commit_size, args.seed, args.rate);
        let track = args.ack_log.is_some();
        producers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                if let Some(rate) = rate {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                }
                let t0 = Instant::now();
                let appended = log.append_with(size, |seq| payload(seed, seq, size)).await?;
                let seq = appended.seq;
                appended.durable().await?;
                latencies.push(t0.elapsed());
                if track {
                    let _ = acks.send((seq, s3wal::format::checksum(&payload(seed, seq, size))));
                }
            }
        }));
    }
    drop(acks_tx);
    let mut latencies = Latencies::default();
    for p in producers {
        latencies.extend(p.await.context("producer task panicked")??);
    }
    let elapsed = started.elapsed();
    if let Some(writer) = writer {
        writer.await.context("ack log task panicked")??;
    }
    log.shutdown().await.context("shutdown")?;
    let n = latencies.len() as u64;
    println!("{}", throughput(n, n * args.commit_size as u64, elapsed));
    println!("{}", latencies.summary());
    let stats = log.stats();
    let puts = stats.puts - stats.recovery.puts;
    println!(
        "{} batches in {puts} PUTs ({:.1} commits per PUT); opening took {} fence PUTs, {} HEADs, {} LIST",
        stats.batches,
        n as f64 / puts.max(1) as f64,
        stats.recovery.puts,
        stats.recovery.heads,
        stats.recovery.lists
    );
    Ok(())
}

/// Writes acks in sequence order, each line flushed before the next.
async fn write_ack_log(
    path: PathBuf,
    first: CommitSeq,
    mut acks: mpsc::UnboundedReceiver<(CommitSeq, u32)>,
) -> anyhow::Result<()> {
    let file = FileOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open ack log {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut waiting = BTreeMap::new();
    let mut next = first;
    while let Some((seq, crc)) = acks.recv().await {
        waiting.insert(seq, crc);
        while let Some(crc) = waiting.remove(&next) {
            writeln!(out, "{}\t{crc:08x}", next.0)?;
            next = next.next();
        }
        out.flush()?;
    }
    Ok(())
}
