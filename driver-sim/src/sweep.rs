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
    /// CPU time the workers spent, summed over them (`None` where the platform does not
    /// report a thread's CPU time).
    pub cpu: Option<Duration>,
    /// Worker threads used.
    pub threads: usize,
    /// Failed runs, by seed.
    pub failures: Vec<Report>,
}

impl Summary {
    /// Simulated events per wall-clock second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Wall-clock seconds that `seeds` seeds would take at this sweep's rate (same machine,
    /// same threads, same shape). A projection: only a sweep of that many seeds measures it.
    pub fn projected_wall_seconds(&self, seeds: u64) -> f64 {
        self.elapsed.as_secs_f64() / self.seeds.max(1) as f64 * seeds as f64
    }
}

/// The goal of issue 10 for a sweep: 10,000 seeds of the default shape within this many
/// wall-clock seconds on the 2-core reference machine.
pub const GOAL_10K_SECONDS: f64 = 300.0;

/// The benchmark line of a sweep: one JSON object with the seeds run, the shape, wall and CPU
/// seconds, the wall time projected to 10,000 seeds, the goal and whether it is met (the
/// projection within the goal and no failing seed). It also gives the projection from CPU time
/// (the wall time if every worker had a core to itself), the figure to read on a machine that
/// other work shares, and the 1-minute load average at the end.
pub fn bench_json(s: &Summary, opts: &Options) -> String {
    let projected = s.projected_wall_seconds(10_000);
    let cpu = s
        .cpu
        .map_or("null".to_string(), |c| format!("{:.2}", c.as_secs_f64()));
    let cpu_bound = s.cpu.map_or("null".to_string(), |c| {
        let per_seed = c.as_secs_f64() / s.seeds.max(1) as f64;
        format!("{:.1}", per_seed * 10_000.0 / s.threads.max(1) as f64)
    });
    let load = loadavg().map_or("null".to_string(), |l| format!("{l:.2}"));
    format!(
        concat!(
            "{{\"bench\":\"sim_sweep\",\"seeds\":{},\"ops\":{},\"hosts\":{},",
            "\"threads\":{},\"wall_seconds\":{:.2},\"cpu_seconds\":{},",
            "\"projected_10k_wall_seconds\":{:.1},\"projected_10k_cpu_bound_seconds\":{},",
            "\"goal_seconds_max\":{},",
            "\"failing\":{},\"loadavg_1m_at_end\":{},\"ok\":{}}}"
        ),
        s.seeds,
        opts.ops,
        opts.hosts,
        s.threads,
        s.elapsed.as_secs_f64(),
        cpu,
        projected,
        cpu_bound,
        GOAL_10K_SECONDS,
        s.failures.len(),
        load,
        projected <= GOAL_10K_SECONDS && s.failures.is_empty()
    )
}

/// CPU time the calling thread has used so far, from Linux's `/proc/thread-self/schedstat`
/// (its first field is nanoseconds on a CPU); `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The 1-minute load average of the machine (Linux), to judge how much other work shared it.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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
    let cpu = Mutex::new(Some(Duration::ZERO));
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
                let cpu_start = thread_cpu();
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
                let used = cpu_start
                    .zip(thread_cpu())
                    .map(|(a, b)| b.saturating_sub(a));
                let mut total = cpu.lock().unwrap_or_else(|e| e.into_inner());
                *total = total.zip(used).map(|(t, u)| t + u);
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
        cpu: cpu.into_inner().unwrap_or_else(|e| e.into_inner()),
        threads: plan.threads.max(1),
        failures,
    }
}
