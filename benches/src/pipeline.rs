//! A verification stage for [`Loopback`] networks: messages to one host are checked by a small
//! pool of threads ([`Inbound::check_spread`] with the host's [`RecordVerifier`]s, a large
//! page's records split across cores by the daemon's [`AcrossCores`]) and handed to that
//! host's engine in the order they were sent, already verified, while the engine stores the
//! previous ones. This is what a driver does with its own threads (the protocol crate stays
//! free of them); the catch-up benchmark drives its reader through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use threads_driver_tokio::node::AcrossCores;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{Application, Inbound, PeerId, RecordVerifier};
use threads_protocol::id::ThreadId;
use threads_protocol::store::Store;

/// The verifiers the workers use, by thread; filled by the engine side as threads appear.
type Verifiers = Arc<RwLock<HashMap<ThreadId, RecordVerifier>>>;

/// One message for the pool, numbered in arrival order.
struct Job {
    seq: u64,
    from: PeerId,
    bytes: Vec<u8>,
}

/// Where the driving thread's time went during [`run_until_checked`], in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// In the checked host's engine (storing verified records).
    pub engine: f64,
    /// In the other hosts' engines (serving pages).
    pub others: f64,
    /// Waiting for the pool.
    pub waiting: f64,
    /// CPU time the driving thread used (both engines and the loop), from the kernel's
    /// accounting: unlike the wall-clock figures above it does not grow when other processes
    /// take the cores. `None` where `/proc/thread-self/stat` cannot be read.
    pub cpu: Option<f64>,
}

/// CPU seconds (user + system) the calling thread has used, from `/proc/thread-self/stat`.
pub fn thread_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/thread-self/stat")
}

/// CPU seconds (user + system) every thread of this process has used, from `/proc/self/stat`:
/// over a stretch of wall-clock time, how many cores the process kept busy.
pub fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/self/stat")
}

fn cpu_seconds(stat_file: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_file).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `net` like [`Loopback::run_until`], except that every message to host `checked` goes
/// through a pool of `workers` threads that verify it first. Returns whether `done` held, and
/// where the driving thread's time went.
pub fn run_until_checked<S: Store, A: Application>(
    net: &mut Loopback<S, A>,
    checked: usize,
    workers: usize,
    duration_ms: u64,
    mut done: impl FnMut(&Loopback<S, A>) -> bool,
) -> (bool, Stats) {
    let mut stats = Stats::default();
    let cpu_before = thread_cpu_seconds();
    let end = net.now.plus(duration_ms);
    let max_len = net.hosts[checked].config().max_message_len;
    let verifiers: Verifiers = Arc::new(RwLock::new(HashMap::new()));
    refresh(net, checked, &verifiers);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<(u64, Inbound)>();
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let (jobs, results, verifiers) = (job_rx.clone(), done_tx.clone(), verifiers.clone());
            let worker = std::thread::Builder::new().name("verify".into());
            let spawned = worker.spawn_scoped(scope, move || {
                loop {
                    // The lock is held only to take the next job.
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let inbound = {
                        let map = verifiers.read().expect("verifier map");
                        let spread = AcrossCores::new(workers);
                        Inbound::check_spread(job.from, job.bytes, max_len, |t| map.get(t), &spread)
                    };
                    if results.send((job.seq, inbound)).is_err() {
                        return;
                    }
                }
            });
            spawned.expect("a verification worker starts");
        }
        drop(done_tx);
        let (mut sent, mut next) = (0u64, 0u64);
        let mut ready: BTreeMap<u64, Inbound> = BTreeMap::new();
        let reached = loop {
            net.collect();
            // Hand every message in flight to its receiver: the checked host's go to the pool.
            while let Some(m) = net.in_flight.pop_front() {
                if net.cut.contains(&(m.from.min(m.to), m.from.max(m.to))) {
                    continue;
                }
                let from = *net.hosts[m.from].peer_id();
                net.delivered += 1;
                net.delivered_bytes += m.bytes.len() as u64;
                if m.to == checked {
                    let job = Job {
                        seq: sent,
                        from,
                        bytes: m.bytes,
                    };
                    sent += 1;
                    job_tx.send(job).expect("workers run");
                } else {
                    let now = net.now;
                    let started = Instant::now();
                    net.hosts[m.to].handle_message(now, &from, &m.bytes);
                    net.collect();
                    stats.others += started.elapsed().as_secs_f64();
                }
            }
            // Feed the checked host whatever is verified, in order; wait when nothing else
            // can move.
            if next < sent {
                if !ready.contains_key(&next) {
                    let started = Instant::now();
                    let (seq, inbound) = done_rx.recv().expect("workers run");
                    stats.waiting += started.elapsed().as_secs_f64();
                    ready.insert(seq, inbound);
                }
                while let Ok((seq, inbound)) = done_rx.try_recv() {
                    ready.insert(seq, inbound);
                }
                while let Some(inbound) = ready.remove(&next) {
                    let now = net.now;
                    let started = Instant::now();
                    net.hosts[checked].handle_inbound(now, inbound);
                    next += 1;
                    refresh(net, checked, &verifiers);
                    // Let the engine's answers (next pulls) travel before storing more.
                    net.collect();
                    stats.engine += started.elapsed().as_secs_f64();
                    if !net.in_flight.is_empty() {
                        break;
                    }
                }
                continue;
            }
            if !net.in_flight.is_empty() {
                continue;
            }
            if done(net) {
                break true;
            }
            if !net.advance(end) {
                break done(net);
            }
        };
        drop(job_tx);
        stats.cpu = cpu_before.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
        (reached, stats)
    })
}

/// Adds a verifier for every thread the checked host holds and the map lacks.
fn refresh<S: Store, A: Application>(net: &Loopback<S, A>, checked: usize, verifiers: &Verifiers) {
    let host = &net.hosts[checked];
    let ids = host.thread_ids();
    let missing: Vec<ThreadId> = {
        let map = verifiers.read().expect("verifier map");
        ids.into_iter().filter(|t| !map.contains_key(t)).collect()
    };
    if missing.is_empty() {
        return;
    }
    let mut map = verifiers.write().expect("verifier map");
    for t in missing {
        if let Some(v) = host.verifier(&t) {
            map.insert(t, v);
        }
    }
}
