//! `s3wal-sim`: run one seed, sweep many, or replay a failing one.
//!
//! The world is single-threaded; a sweep runs whole seeds on worker threads.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use s3wal_sim::latency::LatencyKnobs;
use s3wal_sim::latency_curve::{run_curve, CurveSetup};
use s3wal_sim::trace::excerpt;
use s3wal_sim::{run_seed, PlantedBug, RunOptions, RunReport, StartMode, SweepSummary};

/// Deterministic simulation of s3wal: one u64 seed, one run, byte for byte.
#[derive(Debug, Parser)]
#[command(name = "s3wal-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one seed and print its report.
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print the run's trace too.
        #[arg(long)]
        trace: bool,
        #[command(flatten)]
        world: WorldArgs,
    },
    /// Run a range of seeds on worker threads and summarize.
    Sweep {
        /// Seeds `A..B` (B excluded).
        #[arg(long, value_parser = parse_seeds)]
        seeds: Seeds,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        #[command(flatten)]
        world: WorldArgs,
    },
    /// Run a named scenario (`scenarios/NAME.toml`): its trace and report.
    Scenario {
        /// The scenario file.
        path: std::path::PathBuf,
    },
    /// Commit→durable latency at 10, 50 and 90 % of peak under the S3
    /// latency model, no faults; the default config against a few others.
    Latency {
        /// Seeds the arrivals and the latencies.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Bytes per commit (latency depends on bytes/s; smaller commits only
        /// take longer to simulate).
        #[arg(long, default_value_t = 4096)]
        commit_size: usize,
        /// Simulated seconds measured per load, after the warmup.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Simulated seconds of warmup per load.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// Re-run a seed with its trace and print the lines around its failure.
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Trace lines to show before and after the failure.
        #[arg(long, default_value_t = 40)]
        context: usize,
        #[command(flatten)]
        world: WorldArgs,
    },
}

/// What a seed's world is made of, besides the seed.
#[derive(Debug, Args)]
struct WorldArgs {
    /// Commits the workload issues (per seed).
    #[arg(long, default_value_t = 1000)]
    commits: u64,
    /// Plant a bug in the world, to see the checker catch it.
    #[arg(long, value_enum)]
    plant: Option<Plant>,
    /// Start the instance with recovery (LIST, fences) instead of resume.
    #[arg(long)]
    recover: bool,
}

impl WorldArgs {
    fn options(&self, trace: bool) -> RunOptions {
        let start = if self.recover { StartMode::Recover } else { StartMode::Resume };
        let planted_bug = self.plant.map(PlantedBug::from);
        RunOptions { commits: self.commits, trace, planted_bug, start, ..RunOptions::default() }
    }
}

/// Bugs that can be planted in the world.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Plant {
    /// The store answers Created to one PUT it does not write.
    CreatedWithoutWriting,
}

impl From<Plant> for PlantedBug {
    fn from(p: Plant) -> PlantedBug {
        match p {
            Plant::CreatedWithoutWriting => PlantedBug::CreatedWithoutWriting,
        }
    }
}

/// A half-open range of seeds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Seeds {
    start: u64,
    end: u64,
}

fn parse_seeds(s: &str) -> Result<Seeds, String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B")?;
    let start = a.trim().parse::<u64>().map_err(|e| format!("start: {e}"))?;
    let end = b.trim().parse::<u64>().map_err(|e| format!("end: {e}"))?;
    if end < start {
        return Err(format!("{start}..{end} runs backwards"));
    }
    Ok(Seeds { start, end })
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run { seed, trace, world } => Ok(run(seed, world.options(trace))),
        Command::Sweep { seeds, jobs, world } => sweep(seeds, jobs, world.options(false)),
        Command::Scenario { path } => {
            let report = s3wal_sim::scenario::Scenario::load(&path)?.run(true)?;
            for line in report.trace.as_deref().unwrap_or_default() {
                println!("{line}");
            }
            println!();
            print_report(&report);
            Ok(exit_code(report.outcome.passed()))
        }
        Command::Replay { seed, context, world } => Ok(replay(seed, context, world.options(true))),
        Command::Latency { seed, commit_size, seconds, warmup } => {
            let setup = CurveSetup {
                seed,
                latency: LatencyKnobs::typical_s3(),
                commit_size,
                warmup: Duration::try_from_secs_f64(warmup).context("--warmup")?,
                measure: Duration::try_from_secs_f64(seconds).context("--seconds")?,
            };
            print!("{}", run_curve(&setup)?.render());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The command that replays `seed` run with `options`.
fn replay_command(seed: u64, options: &RunOptions) -> String {
    let mut command = format!("cargo run -p s3wal-sim -- replay --seed {seed}");
    if options.commits != RunOptions::default().commits {
        command += &format!(" --commits {}", options.commits);
    }
    if options.planted_bug == Some(PlantedBug::CreatedWithoutWriting) {
        command += " --plant created-without-writing";
    }
    if options.start == StartMode::Recover {
        command += " --recover";
    }
    command
}

fn exit_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(seed: u64, options: RunOptions) -> ExitCode {
    let report = run_seed(seed, &options);
    if let Some(lines) = &report.trace {
        for line in lines {
            println!("{line}");
        }
        println!();
    }
    print_report(&report);
    if !report.outcome.passed() {
        println!("replay: {}", replay_command(seed, &options));
    }
    exit_code(report.outcome.passed())
}

fn print_report(r: &RunReport) {
    let verdict = r.outcome.describe().unwrap_or_else(|| "passed".into());
    println!("seed {}: {verdict}", r.seed);
    for line in &r.knobs {
        println!("  {line}");
    }
    println!(
        "  sim time {:.3} s, {} events, {} invariant checks",
        r.sim_time.as_nanos() as f64 / 1e9,
        r.events,
        r.checks
    );
    println!(
        "  commits: {} issued, {} handed over, {} acked, {} refused; producers told to wait {} times",
        r.commits_issued, r.commits_handed_over, r.commits_acked, r.commits_refused, r.producer_waits
    );
    let s = &r.store;
    println!(
        "  store: {} puts landed ({} x 412, {} x 409), {} heads, {} lists, {} objects, {} slow timeouts",
        s.puts, s.already_exists, s.conflicts, s.heads, s.lists, s.objects, s.slow_timeouts
    );
    let faults: Vec<String> = r.faults.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("  faults: {}", faults.join(", "));
    match &r.instance_failure {
        Some((kind, message)) => {
            let when = if r.failed_after_faults_stopped { " (after faults stopped)" } else { "" };
            println!("  instance failed{when}: {kind}: {message}");
        }
        None => println!("  instance finished without failing"),
    }
}

fn replay(seed: u64, context: usize, options: RunOptions) -> ExitCode {
    let report = run_seed(seed, &options);
    let lines = report.trace.as_deref().unwrap_or_default();
    match report.outcome.trace_line() {
        Some(at) => {
            println!("trace lines around the failure (line {at} of {}):", lines.len());
            print!("{}", excerpt(lines, at, context));
            println!();
        }
        None => {
            println!("seed {seed} passes; the last {context} trace lines:");
            print!("{}", excerpt(lines, lines.len(), context));
            println!();
        }
    }
    print_report(&report);
    exit_code(report.outcome.passed())
}

fn sweep(seeds: Seeds, jobs: Option<usize>, options: RunOptions) -> anyhow::Result<ExitCode> {
    let count = seeds.end - seeds.start;
    if count == 0 {
        bail!("no seeds in {}..{}", seeds.start, seeds.end);
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = jobs.unwrap_or(cores).clamp(1, count.min(1024) as usize);
    let bar = ProgressBar::new(count);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {per_sec}, eta {eta} {msg}")
            .context("progress bar template")?,
    );
    let started = Instant::now();
    let summary = run_workers(seeds, jobs, &options, &bar);
    let wall = started.elapsed();
    bar.finish_and_clear();
    print_summary(&summary, seeds, jobs, wall, &options);
    Ok(exit_code(summary.failures.is_empty()))
}

/// Runs every seed once, on `jobs` threads, each taking the next seed.
fn run_workers(seeds: Seeds, jobs: usize, options: &RunOptions, bar: &ProgressBar) -> SweepSummary {
    let next = AtomicU64::new(seeds.start);
    let (tx, rx) = mpsc::channel::<(RunReport, Duration)>();
    let mut summary = SweepSummary::default();
    thread::scope(|scope| {
        for _ in 0..jobs {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let started = Instant::now();
                let report = run_seed(seed, options);
                if tx.send((report, started.elapsed())).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (report, real) in rx {
            if let Some(what) = report.outcome.describe() {
                bar.println(format!("seed {} FAILED: {what}", report.seed));
                bar.println(format!("  replay: {}", replay_command(report.seed, options)));
            }
            summary.add(&report, real);
            bar.inc(1);
        }
    });
    summary.failures.sort();
    summary
}

fn print_summary(s: &SweepSummary, seeds: Seeds, jobs: usize, wall: Duration, options: &RunOptions) {
    let commits = options.commits;
    let wall_s = wall.as_secs_f64();
    let sim_s = s.sim_time.as_secs_f64();
    println!(
        "seeds        {} ({}..{}), {} passed, {} failed",
        s.runs,
        seeds.start,
        seeds.end,
        s.runs - s.failures.len() as u64,
        s.failures.len()
    );
    println!(
        "real time    {wall_s:.2} s on {jobs} jobs: {:.1} seeds/s ({commits} commits per seed)",
        s.runs as f64 / wall_s
    );
    println!(
        "sim time     {sim_s:.1} s in all, {:.1} s per seed; {:.0}x real time (wall), {:.0}x per busy core",
        sim_s / s.runs as f64,
        sim_s / wall_s,
        sim_s / s.busy_time.as_secs_f64().max(1e-9)
    );
    println!("events       {} ({:.0} per seed)", s.events, s.events as f64 / s.runs as f64);
    println!("checks       {} invariant checks", s.checks);
    println!(
        "commits      {} issued, {} acked, {} refused; backpressure {} times in {} seeds",
        s.commits_issued, s.commits_acked, s.commits_refused, s.producer_waits.0, s.producer_waits.1
    );
    let st = &s.store;
    println!(
        "store        {} puts landed ({} x 412, {} x 409 from overlap), {} heads, {} lists",
        st.puts, st.already_exists, st.conflicts, st.heads, st.lists
    );
    let faults: Vec<String> = s.faults.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("faults       {} in all: {}", s.faults.total(), faults.join(", "));
    let failed: u64 = s.instance_failures.values().sum();
    let kinds: Vec<String> = s.instance_failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "instances    {} ran to shutdown, {failed} failed cleanly [{}], {} of those after faults stopped",
        s.runs - failed,
        kinds.join(", "),
        s.failed_after_faults_stopped
    );
    if s.failures.is_empty() {
        println!("failures     none");
        return;
    }
    println!("failures     {}", s.failures.len());
    for (seed, what) in &s.failures {
        println!("  seed {seed}: {what}");
        println!("    {}", replay_command(*seed, options));
    }
}
