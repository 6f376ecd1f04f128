//! Campaign mode: many seeds, in parallel, with progress and a summary.

use crate::{Options, Report, run};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to sweep.
#[derive(Clone, Debug)]
pub struct Plan {
    /// First seed.
    pub start: u64,
    /// Most seeds to run.
    pub count: u64,
    /// Stop starting new seeds after this long, if set.
    pub budget: Option<Duration>,
    /// Worker threads.
    pub threads: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// The result of a sweep.
#[derive(Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Simulated events, over all seeds.
    pub events: u64,
    /// Wall-clock time of the sweep.
    pub elapsed: Duration,
    /// Failed runs, by seed.
    pub failures: Vec<Report>,
}

impl Summary {
    /// Simulated events per wall-clock second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The command that replays one seed with these options.
pub fn replay_command(seed: u64, opts: &Options) -> String {
    let mut cmd = format!("cargo run --release -p threads-sim -- run --seed {seed}");
    let d = Options::default();
    if opts.hosts != d.hosts {
        cmd.push_str(&format!(" --hosts {}", opts.hosts));
    }
    if opts.ops != d.ops {
        cmd.push_str(&format!(" --ops {}", opts.ops));
    }
    cmd.push_str(" --trace");
    cmd
}

/// Runs the seeds of `plan`, spreading them over worker threads.
pub fn sweep(plan: &Plan, opts: &Options) -> Summary {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let events = AtomicU64::new(0);
    let seeds = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let interactive = std::io::stderr().is_terminal();
    let bar = if plan.progress {
        let b = ProgressBar::new(plan.count);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    std::thread::scope(|s| {
        for _ in 0..plan.threads.max(1) {
            s.spawn(|| {
                loop {
                    if plan.budget.is_some_and(|b| started.elapsed() >= b) {
                        break;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= plan.count {
                        break;
                    }
                    let report = run(plan.start.wrapping_add(k), opts);
                    events.fetch_add(report.events, Ordering::Relaxed);
                    seeds.fetch_add(1, Ordering::Relaxed);
                    let failed = !report.violations.is_empty();
                    if failed {
                        let mut f = failures.lock().unwrap_or_else(|e| e.into_inner());
                        f.push(report);
                        bar.set_message(format!("{} failing", f.len()));
                    }
                    bar.inc(1);
                    // Without a terminal the bar is hidden: print a line every tenth instead.
                    let done = seeds.load(Ordering::Relaxed);
                    if plan.progress
                        && !interactive
                        && done.is_multiple_of((plan.count / 10).max(1))
                    {
                        let failing = failures.lock().map_or(0, |f| f.len());
                        eprintln!(
                            "progress: {done}/{} seeds, {failing} failing, {:.0} s",
                            plan.count,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|r| r.seed);
    Summary {
        seeds: seeds.into_inner(),
        events: events.into_inner(),
        elapsed: started.elapsed(),
        failures,
    }
}
