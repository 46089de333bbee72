//! `s3wal`: the command line. Every command takes a store: `--dir PATH`
//! (the default: a local directory) or `--s3 s3://bucket/prefix`.

mod bench;
mod demo;
mod load;
mod memory;
mod replay;
mod report;
mod store_arg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Commits made durable on S3: a write-ahead log with ordered acks and fencing.
#[derive(Parser, Debug)]
#[command(name = "s3wal", version, about)]
struct Cli {
    /// Print the whole chain of causes on error.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Append, crash, recover, verify: the whole life of a log, on a local directory.
    Demo(demo::DemoArgs),
    /// Append a stream of commits and report throughput and ack latency.
    Load(load::LoadArgs),
    /// Print the valid log, one `SEQ<TAB>CRC32C` line per commit (never writes).
    Replay(replay::ReplayArgs),
    /// Show the log's objects, epochs, fences, first gap and usage (never writes).
    Inspect(replay::InspectArgs),
    /// Compare s3wal with a one-PUT-per-commit writer on the same store (W1, W2).
    ///
    /// Each measurement writes under a prefix of its own; on S3 it is
    /// deleted once measured.
    Bench(bench::BenchArgs),
}

/// An error whose cause is the user's input: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn main() -> ExitCode {
    memory::bound_allocator_retention();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3wal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Load(args) => load::run(args).await,
            Command::Replay(args) => replay::replay(args).await,
            Command::Inspect(args) => replay::inspect(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if cli.verbose {
                eprintln!("s3wal: {error:?}");
            } else {
                eprintln!("s3wal: {error:#}");
            }
            let usage = error.chain().any(|c| c.is::<UsageError>() || c.is::<s3wal::ConfigErrors>());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn init_tracing(verbose: bool) {
    let _ = verbose;
}
