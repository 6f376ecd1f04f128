//! `threads-sim`: run, replay and sweep deterministic simulations of ThreadDB hosts.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use threads_sim::sweep::{Plan, bench_json, replay_command, sweep};
use threads_sim::{Options, Report, run};

/// The simulator allocates and frees many small buffers (messages, store keys and values,
/// encoded blocks); mimalloc does that markedly faster than the system allocator. It changes
/// no result: runs stay bit-for-bit deterministic.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic multi-peer simulator of ThreadDB replication.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed, print its profile, trace hash and verdict.
    Run {
        /// The seed (the same seed replays the same run bit for bit).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        shape: Shape,
        /// Print a readable line for every event.
        #[arg(long)]
        trace: bool,
    },
    /// Run many seeds and summarise.
    Sweep {
        /// First seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Number of seeds.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Stop after this many seconds, whatever the count.
        #[arg(long)]
        seconds: Option<u64>,
        /// Worker threads (default: the number of cores).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        shape: Shape,
    },
    /// Run the regression seeds (seeds that once found bugs).
    Regress {
        #[command(flatten)]
        shape: Shape,
    },
}

#[derive(clap::Args, Clone)]
struct Shape {
    /// Number of hosts.
    #[arg(long, default_value_t = 5)]
    hosts: usize,
    /// Number of writes.
    #[arg(long, default_value_t = 200)]
    ops: usize,
}

impl Shape {
    fn options(&self, trace: bool) -> Options {
        Options {
            hosts: self.hosts,
            ops: self.ops,
            trace,
            ..Options::default()
        }
    }
}

fn print_report(r: &Report, opts: &Options) {
    println!("seed {}", r.seed);
    println!("profile {}", r.profile);
    println!("roles {:?}", r.roles);
    println!(
        "events {} acked writes {} converged {} trace {}",
        r.events,
        r.acked,
        r.converged_after_ms
            .map_or("never".to_string(), |t| format!("{t} ms after heal")),
        r.trace_hex()
    );
    println!(
        "fold: {} late records, {} undone, {} redone",
        r.fold.late, r.fold.undone, r.fold.redone
    );
    if r.violations.is_empty() {
        println!("ok: every invariant holds");
    } else {
        for v in &r.violations {
            println!("VIOLATION {}: {}", v.invariant, v.detail);
        }
        println!("replay: {}", replay_command(r.seed, opts));
    }
}

/// Seeds that found bugs once; `regress` and CI run them all.
const REGRESSIONS: &str = include_str!("../regressions.txt");

fn regression_seeds() -> Vec<u64> {
    REGRESSIONS
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { seed, shape, trace } => {
            let opts = shape.options(trace);
            let r = run(seed, &opts);
            for line in &r.trace {
                println!("{line}");
            }
            print_report(&r, &opts);
            if r.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Sweep {
            from,
            count,
            seconds,
            threads,
            shape,
        } => {
            let opts = shape.options(false);
            let plan = Plan {
                start: from,
                count,
                budget: seconds.map(Duration::from_secs),
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                progress: true,
            };
            let s = sweep(&plan, &opts);
            summarise(&s, &opts)
        }
        Command::Regress { shape } => {
            let opts = shape.options(false);
            let mut failed = 0;
            for seed in regression_seeds() {
                let r = run(seed, &opts);
                if !r.violations.is_empty() {
                    failed += 1;
                    print_report(&r, &opts);
                }
            }
            println!(
                "{} regression seeds, {failed} failing",
                regression_seeds().len()
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn summarise(s: &threads_sim::sweep::Summary, opts: &Options) -> ExitCode {
    println!(
        "{} seeds in {:.1} s, {} simulated events ({:.0} events/s), {} failing",
        s.seeds,
        s.elapsed.as_secs_f64(),
        s.events,
        s.events_per_sec(),
        s.failures.len()
    );
    for r in &s.failures {
        let first = &r.violations[0];
        println!(
            "seed {}: {} ({}) — replay: {}",
            r.seed,
            first.invariant,
            first.detail,
            replay_command(r.seed, opts)
        );
    }
    // Last line: the benchmark figure of issue 10, goal 7 (spec/simulation.md §6).
    println!("{}", bench_json(s, opts));
    if s.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
