//! `s3wal replay` and `s3wal inspect`: read-only views of a log.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use s3wal::format::ObjectKind;
use s3wal::reader::Reader;
use s3wal::CommitSeq;

use crate::store_arg::StoreArgs;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// First commit to print.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Print commits below this one (default: to the end).
    #[arg(long)]
    pub to: Option<u64>,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// List every object, not just the summary.
    #[arg(long)]
    pub objects: bool,
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let store = args.store.open(None, 16).await?;
    let reader = Reader::new(store);
    let out: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let range = CommitSeq(args.from)..CommitSeq(args.to.unwrap_or(u64::MAX));
    let mut cursor = reader.commits(range).await.context("cannot read the log")?;
    while let Some((seq, commit)) = cursor.next().await.context("cannot read the log")? {
        writeln!(out, "{}\t{:08x}", seq.0, s3wal::format::checksum(&commit))?;
    }
    out.flush()?;
    Ok(())
}

pub async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let store = args.store.open(None, 16).await?;
    let describe = store.describe();
    let reader = Reader::new(store);
    let (objects, usage) = reader.inspect().await.context("cannot inspect the log")?;
    println!("store        {describe}");
    println!("objects      {} ({} bytes)", usage.objects, usage.bytes);
    println!("first gap    position {}", usage.first_gap.0);
    println!(
        "beyond gap   {} objects (not part of the log until the gap is filled or fenced)",
        usage.objects - usage.first_gap.0
    );
    let batches = objects.iter().filter(|o| o.kind == ObjectKind::Batch && o.valid).count();
    let fences = objects.iter().filter(|o| o.kind == ObjectKind::Fence).count();
    let void = objects.iter().filter(|o| !o.valid).count();
    println!("valid        {batches} batches, {fences} fences; {void} void objects");
    let durable = objects.iter().filter(|o| o.valid && o.kind == ObjectKind::Batch).map(|o| o.commits.end).max();
    println!("durable to   commit {}", durable.map_or(0, |s| s.0));
    let mut epochs: BTreeMap<_, (u64, u64, u64)> = BTreeMap::new();
    for o in &objects {
        let e = epochs.entry((o.epoch, o.leader)).or_insert((o.position.0, o.position.0, 0));
        e.1 = o.position.0;
        e.2 += 1;
    }
    println!("writers      {}", epochs.len());
    for ((epoch, leader), (from, to, n)) in &epochs {
        println!("  {epoch} {leader}: {n} objects, positions {from}..={to}");
    }
    if args.objects {
        for o in &objects {
            let kind = if o.kind == ObjectKind::Batch { "batch" } else { "fence" };
            let v = if o.valid { "" } else { " VOID" };
            println!(
                "  p{:<8} {kind} {} {} commits {}..{} {}B{v}",
                o.position.0, o.epoch, o.leader, o.commits.start.0, o.commits.end.0, o.size
            );
        }
    }
    Ok(())
}
