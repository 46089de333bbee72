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
use s3wal::driver::{Log, OpenOptions};
use s3wal::{CommitSeq, Config};
use tokio::sync::mpsc;

use crate::report::{batch_puts, throughput, Latencies};
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
    /// Stop issuing commits after this many seconds (whichever of this and
    /// --commits comes first).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Producers do not await each commit's durability: they append as fast
    /// as the byte budget lets them, an overload when they outrun the store
    /// (no ack latency is measured).
    #[arg(long, conflicts_with = "ack_log")]
    pub open_loop: bool,
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
    /// hedge_after in milliseconds: re-send a batch PUT unanswered this long
    /// (off unless given; about 40 for S3 in the same region).
    #[arg(long)]
    pub hedge_after_ms: Option<f64>,
    /// hedge_adaptive: learn the hedge delay from the store's round trips,
    /// never below --hedge-after-ms (which it needs).
    #[arg(long)]
    pub hedge_adaptive: bool,
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
        if let Some(ms) = self.hedge_after_ms {
            c.hedge_after = Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
        }
        c.hedge_adaptive = self.hedge_adaptive;
        c
    }
}

/// The bytes of commit `seq` in a run seeded with `seed`: a wyrand stream,
/// 8 bytes a step. It runs inside `append_with`, while appends are
/// serialised, so it must be cheap: a ChaCha8 generator seeded per commit
/// took about a quarter of `load`'s CPU at 100-byte commits (perf, session 7).
pub fn payload(seed: u64, seq: CommitSeq, size: usize) -> Bytes {
    let mut state = seed ^ seq.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        state = state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(state) * u128::from(state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64 ^ t as u64).to_le_bytes()
    };
    let mut bytes = vec![0u8; size];
    let mut words = bytes.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&next());
    }
    let rest = words.into_remainder();
    let len = rest.len();
    rest.copy_from_slice(&next()[..len]);
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
    let deadline = args.seconds.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let issued = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for _ in 0..args.producers.max(1) {
        let producer = Producer {
            log: log.clone(),
            issued: Arc::clone(&issued),
            acks: args.ack_log.is_some().then(|| acks_tx.clone()),
            total: args.commits,
            size: args.commit_size,
            seed: args.seed,
            rate: args.rate,
            started,
            deadline,
            open_loop: args.open_loop,
        };
        producers.push(tokio::spawn(producer.run()));
    }
    drop(acks_tx);
    let mut latencies = Latencies::default();
    let mut n = 0;
    for p in producers {
        let produced = p.await.context("producer task panicked")??;
        n += produced.commits;
        latencies.extend(produced.latencies);
    }
    let elapsed = started.elapsed();
    if let Some(writer) = writer {
        writer.await.context("ack log task panicked")??;
    }
    log.shutdown().await.context("shutdown")?;
    println!("{}", throughput(n, n * args.commit_size as u64, elapsed));
    if !args.open_loop {
        println!("{}", latencies.summary());
    }
    let stats = log.stats();
    let puts = batch_puts(&stats);
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

/// One producer's share of a load.
struct Producer {
    log: Log,
    /// Commit numbers handed out to every producer: the run's bound.
    issued: Arc<AtomicU64>,
    /// Where acknowledged commits go, when an ack log is kept.
    acks: Option<mpsc::UnboundedSender<(CommitSeq, u32)>>,
    total: u64,
    size: usize,
    seed: u64,
    rate: Option<f64>,
    started: Instant,
    /// No commit is issued after it.
    deadline: Option<Instant>,
    open_loop: bool,
}

/// What one producer did.
#[derive(Default)]
struct Produced {
    commits: u64,
    latencies: Latencies,
}

impl Producer {
    /// Appends until the run's commits are all issued or the deadline
    /// passes. Closed loop, each commit's durability is awaited before the
    /// next (and timed); open loop, only the last one's, at the end.
    async fn run(self) -> anyhow::Result<Produced> {
        let mut produced = Produced::default();
        let mut last = None;
        while let Some(i) = self.next_commit() {
            if let Some(rate) = self.rate {
                tokio::time::sleep_until((self.started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
            }
            // Only the closed loop times its commits.
            let t0 = (!self.open_loop).then(Instant::now);
            let (seed, size) = (self.seed, self.size);
            let appended = self.log.append_with(size, |seq| payload(seed, seq, size)).await?;
            produced.commits += 1;
            let Some(t0) = t0 else {
                last = Some(appended);
                continue;
            };
            let seq = appended.seq;
            appended.durable().await?;
            produced.latencies.push(t0.elapsed());
            if let Some(acks) = &self.acks {
                let _ = acks.send((seq, s3wal::format::checksum(&payload(seed, seq, size))));
            }
        }
        if let Some(last) = last {
            last.durable().await?;
        }
        Ok(produced)
    }

    /// The next commit's number, unless the run is over.
    fn next_commit(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        (i < self.total).then_some(i)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_a_function_of_seed_and_sequence_number() {
        for size in [0, 1, 7, 8, 9, 100, 4096] {
            let p = payload(7, CommitSeq(42), size);
            assert_eq!(p.len(), size);
            assert_eq!(p, payload(7, CommitSeq(42), size), "the same inputs give the same bytes");
            // One stream per commit: a longer commit starts with the shorter one.
            assert_eq!(p[..], payload(7, CommitSeq(42), size + 13)[..size]);
        }
        let base = payload(7, CommitSeq(42), 100);
        assert_ne!(base, payload(7, CommitSeq(43), 100), "the next commit differs");
        assert_ne!(base, payload(8, CommitSeq(42), 100), "another seed differs");
        let distinct: std::collections::HashSet<_> = (0..10_000).map(|q| payload(0, CommitSeq(q), 16)).collect();
        assert_eq!(distinct.len(), 10_000);
    }
}
