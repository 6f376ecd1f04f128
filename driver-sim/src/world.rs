//! The simulated world: hosts running the real engine on in-memory stores, a virtual clock, a
//! seeded network and a schedule of workload operations and faults.

use crate::adversary::Adversary;
use crate::profile::FaultProfile;
use crate::workload;
use crate::{Options, Role};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::message;
use threads_protocol::engine::{
    Config, EngineError, Event, Host, Misbehaviour, NewThread, Output, PeerId, Time,
};
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;
use threads_protocol::rng::{ProtocolRng, Rng, seeded};
use threads_protocol::store::StoreError;
use threads_protocol::store::memory::{FaultOp, FaultyStore, MemoryStore};
use threads_reducer::db::DocFold;
use threads_reducer::fold::{Convergent, OrderKey};

/// Length of the fault phase, in simulated ms.
pub const FAULT_PHASE_MS: u64 = 20_000;
/// Mixed into the seed for the offline writer's random stream.
const OFFLINE_STREAM: u64 = 0x0ff1_13e0_0000_0001;
/// Mixed into the seed for the pull window of a swarm configuration: a stream of its own, so
/// the seeds of `regressions.txt` keep drawing the worlds they were recorded with.
const WINDOW_STREAM: u64 = 0x3a1d_0000_0000_0002;
/// After the last fault heals, honest hosts must converge within this much simulated time.
pub const LIVENESS_BOUND_MS: u64 = 60_000;
/// How often convergence is checked during the liveness phase.
const CHECK_EVERY_MS: u64 = 250;

/// Something scheduled to happen at a simulated time.
#[derive(Clone, Debug)]
pub(crate) enum Ev {
    Deliver {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    Timer {
        host: usize,
        at: u64,
    },
    Write {
        host: usize,
        n: usize,
    },
    Join {
        host: usize,
    },
    Crash {
        host: usize,
    },
    CrashInside {
        host: usize,
    },
    Jump {
        host: usize,
        delta_ms: i64,
    },
    Restart {
        host: usize,
    },
    Cut {
        from: usize,
        to: usize,
    },
    Mend {
        from: usize,
        to: usize,
    },
    /// The host is cut off from every other host (the offline writer).
    Offline {
        host: usize,
    },
    /// The offline host is reachable again.
    Online,
    Attack,
    Heal,
    Check,
}

/// The store a simulated engine runs on: the durable in-memory store behind a fault injector.
pub type SimStore = FaultyStore<MemoryStore>;

/// One simulated host.
pub(crate) struct SimHost {
    pub role: Role,
    /// What is durable: survives crashes.
    pub store: MemoryStore,
    /// The fault injector in front of `store` that the running engine uses.
    pub faults: SimStore,
    pub engine: Option<Host<SimStore, App>>,
    pub peer: PeerId,
    /// The host's clock: constant offset (ms), drift (parts per million, signed) and the sum
    /// of its jumps so far (ms, signed).
    pub skew: u64,
    pub drift_ppm: i64,
    pub jumped_ms: i64,
    pub timer: Option<u64>,
    pub member: bool,
    /// The store dies at its next commit or the one after (a crash inside an input).
    pub dying: bool,
    /// What the last passing store check of the engine saw (see [`StoreCheck`]).
    pub store_checked: Option<StoreCheck>,
}

/// What [`Host::check_store_invariants`] depends on: the number of commits of the durable store
/// and every log the engine holds in memory (thread, log, height, head). Its result is a pure
/// function of these, so when they are unchanged since a passing check the check is skipped:
/// the same violations are found at the same input as when it runs after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreCheck {
    commits: u64,
    logs: Vec<(
        ThreadId,
        threads_protocol::log_id::LogId,
        u64,
        Option<threads_protocol::Cid>,
    )>,
}

impl StoreCheck {
    /// What the store check of `e` depends on now, the store having made `commits` commits.
    fn of(commits: u64, e: &Host<SimStore, App>) -> StoreCheck {
        let mut logs = Vec::new();
        for id in e.thread_ids() {
            if let Ok(heads) = e.log_heads(&id) {
                logs.extend(heads.map(|(log, height, head)| (id, *log, height.0, head.copied())));
            }
        }
        StoreCheck { commits, logs }
    }

    /// Whether the logs `e` holds in memory are the ones this check saw (compared in place:
    /// this runs after every input).
    fn same_logs(&self, e: &Host<SimStore, App>) -> bool {
        let mut seen = self.logs.iter();
        for id in e.thread_ids() {
            let Ok(heads) = e.log_heads(&id) else {
                continue;
            };
            for (log, height, head) in heads {
                match seen.next() {
                    Some((t, l, h, c))
                        if *t == id && l == log && *h == height.0 && c.as_ref() == head => {}
                    _ => return false,
                }
            }
        }
        seen.next().is_none()
    }
}

/// A record an honest writer was told is written: (host, sha2-256 of its bundle encoding).
#[derive(Clone, Debug)]
pub(crate) struct Acked {
    /// The writer host.
    pub host: usize,
    pub log: threads_protocol::log_id::LogId,
    pub counter: u64,
    pub bundle_hash: [u8; 32],
    /// The record's position in the thread's total order.
    pub order: OrderKey,
    /// Who wrote it (the writer host's identity).
    pub author: threads_protocol::identity::PublicKey,
    /// The body (a document-database write transaction).
    pub body: Vec<u8>,
}

/// The application every simulated host runs: the real document database fold.
pub type App = Convergent<DocFold>;

/// A fresh application.
pub fn app() -> App {
    Convergent::new(DocFold::new())
}

/// The whole simulation state of one run.
pub struct World {
    pub(crate) opts: Options,
    pub(crate) profile: FaultProfile,
    pub(crate) rng: ProtocolRng,
    pub(crate) now: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    pub(crate) hosts: Vec<SimHost>,
    pub(crate) index: BTreeMap<PeerId, usize>,
    pub(crate) thread: ThreadId,
    pub(crate) key: ThreadKey,
    pub(crate) acked: BTreeMap<threads_protocol::Cid, Acked>,
    latency: BTreeMap<(usize, usize), u64>,
    cut: BTreeSet<(usize, usize)>,
    /// The host cut off from everyone, if any (see [`FaultProfile::offline_writer`]).
    offline: Option<usize>,
    /// The random stream of the offline writer, apart from `rng`.
    side: ProtocolRng,
    healed: bool,
    pub(crate) adversary: Option<Adversary>,
    trace: Sha256,
    pub(crate) lines: Vec<String>,
    /// Events processed (deliveries, timers, operations, faults).
    pub events: u64,
    /// Simulated time at which faults healed.
    pub healed_at: u64,
    /// Simulated time at which honest hosts were first seen converged after the heal.
    pub converged_at: Option<u64>,
    /// Application-level problems seen during the run (write failures and the like).
    pub(crate) problems: Vec<(&'static str, String)>,
    /// The drawn engine configuration, when the profile swarms it.
    pub(crate) config: Option<Config>,
    /// When each acknowledged write was acknowledged (simulated ms).
    pub(crate) acked_at: BTreeMap<threads_protocol::Cid, u64>,
    /// Replication delays of acknowledged writes to other hosts: (write, host, delay in ms).
    pub(crate) delays: Vec<(threads_protocol::Cid, usize, u64)>,
    /// Hosts that go down at the heal and stay down (liveness outside a core).
    pub(crate) down_for_good: BTreeSet<usize>,
    /// Messages honest hosts sent to honest hosts, by payload kind (counted on calm profiles
    /// only, for the message bound of `checks`).
    pub(crate) sent: BTreeMap<&'static str, u64>,
    /// Pulls honest hosts sent to honest hosts on calm profiles: (host, log, first counter
    /// wanted, simulated ms).
    pub(crate) pulls: Vec<(usize, threads_protocol::log_id::LogId, u64, u64)>,
}

/// Every host's clock starts this far ahead of the simulation's, so that backward jumps and
/// slow drift never take it below zero.
const CLOCK_BASE_MS: i64 = 30_000;

fn engine_config(opts: &Options, swarm: Option<&Config>) -> Config {
    let mut c = match swarm {
        Some(c) => c.clone(),
        None => Config {
            sync_interval_min_ms: 200,
            sync_interval_max_ms: 5_000,
            pull_timeout_ms: 2_000,
            max_message_len: 1 << 20,
            page_max_records: 64,
            page_max_bytes: 256 << 10,
            ..Config::default()
        },
    };
    if let Some(f) = opts.configure {
        f(&mut c);
    }
    c
}

/// Draws an engine configuration (swarm testing of the configuration). Limits stay consistent
/// with each other (a page fits in a message) and with the run (every writer can have its log).
fn swarm_config(rng: &mut ProtocolRng, writers: usize, adversary: bool) -> Config {
    let mut pick = |xs: &[u64]| xs[(rng.next_u64() % xs.len() as u64) as usize];
    let max_message_len = pick(&[4 << 10, 16 << 10, 1 << 20]) as usize;
    let page_max_bytes = pick(&[1, 100, 1_000, 2_048, (max_message_len / 2) as u64]) as usize;
    let sync_interval_min_ms = pick(&[20, 200, 1_000]);
    let sync_interval_max_ms = sync_interval_min_ms * pick(&[1, 5, 25]);
    let max_logs_per_thread = if pick(&[0, 1]) == 0 {
        writers + usize::from(adversary)
    } else {
        Config::default().max_logs_per_thread
    };
    Config {
        sync_interval_min_ms,
        sync_interval_max_ms,
        jitter_percent: pick(&[0, 20, 50]),
        page_max_records: pick(&[1, 2, 3, 8, 64, 512]) as u32,
        page_max_bytes: page_max_bytes.min(max_message_len / 2),
        pull_timeout_ms: pick(&[100, 2_000, 10_000]),
        max_message_len,
        max_logs_per_thread,
        ..Config::default()
    }
}

impl World {
    /// Builds the world of `seed`: roles, links, the thread, and the schedule.
    pub fn new(seed: u64, opts: Options) -> World {
        let mut rng = seeded(seed);
        let mut side = seeded(seed ^ OFFLINE_STREAM);
        let profile = opts.profile.clone().unwrap_or_else(|| FaultProfile {
            offline_writer: FaultProfile::draw_offline_writer(&mut side),
            ..FaultProfile::draw(&mut rng)
        });
        // An offline writer (host 1) needs others that write meanwhile.
        let fewest = if profile.offline_writer { 3 } else { 2 };
        let n = profile.hosts.unwrap_or(opts.hosts).clamp(fewest, 9);
        let roles = crate::assign_roles(n, &profile);
        let writers = roles.iter().filter(|r| **r == Role::Writer).count();
        let config = profile.swarm_config.then(|| {
            let mut c = swarm_config(&mut rng, writers, roles.contains(&Role::Adversary));
            // Several pages in flight while catching up (daemons run 4), drawn apart.
            let mut window = seeded(seed ^ WINDOW_STREAM);
            c.pull_window = [1, 2, 4][(window.next_u64() % 3) as usize];
            c
        });
        let mut hosts = Vec::with_capacity(n);
        let mut index = BTreeMap::new();
        for (i, role) in roles.iter().enumerate() {
            let store = MemoryStore::new();
            let faults = FaultyStore::new(store.clone());
            let skew = match profile.max_clock_skew_ms {
                0 => 0,
                m => rng.next_u64() % (m + 1),
            };
            let drift_ppm = match profile.max_clock_drift_ppm {
                0 => 0,
                m => (rng.next_u64() % (2 * m + 1)) as i64 - m as i64,
            };
            let (engine, peer) = if *role == Role::Adversary {
                let peer = threads_protocol::identity::PrivateKey::from_seed([i as u8; 32])
                    .public()
                    .peer_id();
                (None, peer)
            } else {
                let mut cfg = engine_config(&opts, config.as_ref());
                if config.is_some() && *role != Role::Replicator {
                    cfg.accept_invites = false;
                }
                let h = Host::open(
                    cfg,
                    faults.clone(),
                    app(),
                    seeded(rng.next_u64()),
                    None,
                    Time(CLOCK_BASE_MS as u64 + skew),
                )
                .expect("opening a host on a fresh memory store");
                let peer = *h.peer_id();
                (Some(h), peer)
            };
            index.insert(peer, i);
            hosts.push(SimHost {
                role: *role,
                store,
                faults,
                engine,
                peer,
                skew,
                drift_ppm,
                jumped_ms: 0,
                timer: None,
                member: false,
                dying: false,
                store_checked: None,
            });
        }
        let mut latency = BTreeMap::new();
        for a in 0..n {
            for b in 0..n {
                let span = profile.latency_max_ms - profile.latency_min_ms;
                let l = profile.latency_min_ms + rng.next_u64() % (span + 1);
                latency.insert((a, b), l);
            }
        }
        // Host 0 creates the thread.
        let skew0 = CLOCK_BASE_MS as u64 + hosts[0].skew;
        let info = hosts[0]
            .engine
            .as_mut()
            .expect("host 0 is honest")
            .create_thread(Time(skew0), NewThread::default())
            .expect("creating the thread");
        hosts[0].member = true;
        let adversary = roles
            .iter()
            .position(|r| *r == Role::Adversary)
            .map(|i| Adversary::new(i, &info));
        let mut w = World {
            opts,
            profile,
            rng,
            now: 0,
            queue: BTreeMap::new(),
            seq: 0,
            hosts,
            index,
            thread: info.id,
            key: info.key,
            acked: BTreeMap::new(),
            latency,
            cut: BTreeSet::new(),
            offline: None,
            side,
            healed: false,
            adversary,
            trace: Sha256::new(),
            lines: Vec::new(),
            events: 0,
            healed_at: FAULT_PHASE_MS,
            converged_at: None,
            problems: Vec::new(),
            config,
            acked_at: BTreeMap::new(),
            delays: Vec::new(),
            down_for_good: BTreeSet::new(),
            sent: BTreeMap::new(),
            pulls: Vec::new(),
        };
        w.define_collection();
        w.schedule_everything(n);
        w.drain(0);
        for i in 0..w.hosts.len() {
            w.arm_storage_faults(i);
        }
        w
    }

    /// During the fault phase, makes a host's store fail writes at the profile's rate.
    fn arm_storage_faults(&mut self, host: usize) {
        let ppm = self.profile.storage_fault_ppm;
        if ppm == 0 || self.healed {
            return;
        }
        let seed = self.rng.next_u64();
        self.hosts[host].faults.fail_randomly(
            seed,
            ppm,
            &[
                FaultOp::Write,
                FaultOp::Put,
                FaultOp::Delete,
                FaultOp::Commit,
            ],
        );
    }

    /// Whether an engine error is a storage failure the simulator injected (or its
    /// consequence within the same transaction).
    pub(crate) fn injected(&self, e: &EngineError) -> bool {
        let faults = self.profile.storage_fault_ppm > 0 || self.profile.crashes_inside > 0;
        faults
            && matches!(
                e,
                EngineError::Store(StoreError::Injected { .. } | StoreError::Backend(_))
            )
    }

    /// Host 0's first write: the collection every later write uses.
    fn define_collection(&mut self) {
        let now = self.local_now(0);
        let body = workload::define_collection();
        let thread = self.thread;
        let e = self.hosts[0].engine.as_mut().expect("host 0 is honest");
        let author = e.identity().public();
        let rec = e
            .create_record(now, &thread, None, &body, 0)
            .expect("defining the collection on a fresh host");
        self.acknowledge(0, &rec, author, body);
    }

    /// Remembers a write the engine acknowledged; returns the hash of its bundle.
    fn acknowledge(
        &mut self,
        host: usize,
        rec: &threads_protocol::record::VerifiedRecord,
        author: threads_protocol::identity::PublicKey,
        body: Vec<u8>,
    ) -> [u8; 32] {
        let hash: [u8; 32] = Sha256::digest(rec.bundle().encode()).into();
        self.acked_at.insert(rec.cid(), self.now);
        self.acked.insert(
            rec.cid(),
            Acked {
                host,
                log: *rec.log(),
                counter: rec.counter().get(),
                bundle_hash: hash,
                order: OrderKey::of(rec),
                author,
                body,
            },
        );
        hash
    }

    fn schedule_everything(&mut self, n: usize) {
        for i in 1..n {
            match self.hosts[i].role {
                Role::Writer | Role::Reader => self.at(0, Ev::Join { host: i }),
                Role::Replicator => self.at(0, Ev::Join { host: i }),
                Role::LateJoiner => {
                    let t = FAULT_PHASE_MS / 2 + self.rng.next_u64() % (FAULT_PHASE_MS / 2);
                    self.at(t, Ev::Join { host: i });
                }
                Role::Adversary => self.at(100, Ev::Attack),
            }
        }
        let writers: Vec<usize> = (0..n)
            .filter(|&i| self.hosts[i].role == Role::Writer)
            .collect();
        for k in 0..self.opts.ops {
            let t = self.rng.next_u64() % FAULT_PHASE_MS;
            let host = writers[(self.rng.next_u64() % writers.len() as u64) as usize];
            self.at(t, Ev::Write { host, n: k });
        }
        let honest: Vec<usize> = (0..n)
            .filter(|&i| self.hosts[i].role != Role::Adversary)
            .collect();
        // Hosts whose faults never end: they go down at the heal and stay down; the others
        // (host 0 always among them) must converge without them.
        let candidates: Vec<usize> = honest.iter().copied().filter(|&i| i != 0).collect();
        let most = (honest.len().saturating_sub(1) / 2) as u32;
        for _ in 0..self.profile.permanent_failures.min(most) {
            let left: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| !self.down_for_good.contains(i))
                .collect();
            if let Some(&i) = left.get((self.rng.next_u64() % left.len().max(1) as u64) as usize) {
                self.down_for_good.insert(i);
            }
        }
        for _ in 0..self.profile.partitions {
            let start = self.rng.next_u64() % FAULT_PHASE_MS;
            let end = (start + 500 + self.rng.next_u64() % 8_000).min(FAULT_PHASE_MS);
            // Isolate one host from all others, or cut a single pair.
            let a = honest[(self.rng.next_u64() % honest.len() as u64) as usize];
            let isolate = self.rng.next_u64().is_multiple_of(2);
            let one_way = self.profile.one_way_partitions && self.rng.next_u64().is_multiple_of(2);
            let others: Vec<usize> = if isolate {
                (0..n).filter(|&b| b != a).collect()
            } else {
                let b = (a + 1 + (self.rng.next_u64() % (n as u64 - 1)) as usize) % n;
                vec![b]
            };
            for b in others {
                self.at(start, Ev::Cut { from: a, to: b });
                self.at(end, Ev::Mend { from: a, to: b });
                if !one_way {
                    self.at(start, Ev::Cut { from: b, to: a });
                    self.at(end, Ev::Mend { from: b, to: a });
                }
            }
        }
        for _ in 0..self.profile.crashes_inside {
            let host = honest[(self.rng.next_u64() % honest.len() as u64) as usize];
            let at = self.rng.next_u64() % FAULT_PHASE_MS;
            self.at(at, Ev::CrashInside { host });
        }
        for _ in 0..self.profile.clock_jumps {
            let host = honest[(self.rng.next_u64() % honest.len() as u64) as usize];
            let at = self.rng.next_u64() % FAULT_PHASE_MS;
            let delta_ms = (self.rng.next_u64() % 10_001) as i64 - 5_000;
            self.at(at, Ev::Jump { host, delta_ms });
        }
        if self.profile.offline_writer {
            let start = 1_000 + self.side.next_u64() % 1_000;
            let end = FAULT_PHASE_MS - 1 - self.side.next_u64() % 1_000;
            self.at(start, Ev::Offline { host: 1 });
            self.at(end, Ev::Online);
        }
        for _ in 0..self.profile.crashes {
            let host = honest[(self.rng.next_u64() % honest.len() as u64) as usize];
            let start = self.rng.next_u64() % FAULT_PHASE_MS;
            let end = (start + 100 + self.rng.next_u64() % 5_000).min(FAULT_PHASE_MS);
            self.at(start, Ev::Crash { host });
            self.at(end, Ev::Restart { host });
        }
        self.at(FAULT_PHASE_MS, Ev::Heal);
        self.at(FAULT_PHASE_MS + CHECK_EVERY_MS, Ev::Check);
    }

    pub(crate) fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    pub(crate) fn log(&mut self, line: impl FnOnce() -> String) {
        if self.opts.trace {
            let l = line();
            self.lines.push(format!("t={:>6} {l}", self.now));
        }
    }

    fn mix(&mut self, parts: &[&[u8]]) {
        self.trace.update(self.now.to_be_bytes());
        for p in parts {
            self.trace.update((p.len() as u64).to_be_bytes());
            self.trace.update(p);
        }
    }

    /// The fold work of every host that is up, summed.
    pub fn fold_stats(&self) -> threads_reducer::fold::FoldStats {
        let mut sum = threads_reducer::fold::FoldStats::default();
        for h in &self.hosts {
            if let Some(e) = &h.engine {
                let s = e.app().stats();
                sum.applied += s.applied;
                sum.undone += s.undone;
                sum.redone += s.redone;
                sum.retried += s.retried;
                sum.late += s.late;
            }
        }
        sum
    }

    /// The run's trace hash so far: every delivery, operation and fault, in order.
    pub fn trace_hash(&self) -> [u8; 32] {
        self.trace.clone().finalize().into()
    }

    /// Runs the schedule to the end: the fault phase, the heal, and the liveness phase until
    /// honest hosts converge or the bound passes.
    pub fn run(&mut self) {
        let end = FAULT_PHASE_MS + LIVENESS_BOUND_MS;
        while let Some(((t, _), ev)) = self.queue.pop_first() {
            if t > end {
                break;
            }
            self.now = t;
            self.events += 1;
            self.step(ev);
            if self.converged_at.is_some() {
                break;
            }
        }
    }

    fn step(&mut self, ev: Ev) {
        let touched = match &ev {
            Ev::Deliver { to, .. } => Some(*to),
            Ev::Timer { host, .. }
            | Ev::Write { host, .. }
            | Ev::Join { host }
            | Ev::Restart { host } => Some(*host),
            _ => None,
        };
        self.dispatch(ev);
        if let Some(host) = touched {
            self.after_input(host);
        }
    }

    /// After an input: a host whose store died during it crashes now; the others must keep
    /// the engine's invariants (checked during the run, not only at the end).
    fn after_input(&mut self, host: usize) {
        if self.hosts[host].dying && self.hosts[host].faults.is_dead() {
            self.mix(&[b"crash-inside", &[host as u8]]);
            self.log(|| format!("host {host} crashed inside an input"));
            self.crash(host);
            let t = self.now + 100 + self.rng.next_u64() % 5_000;
            self.at(t, Ev::Restart { host });
            return;
        }
        let h = &mut self.hosts[host];
        let Some(e) = h.engine.as_ref() else {
            return;
        };
        // The memory part is cheap and runs after every input; the store part reads and
        // decodes every log's head, so it runs only when the store committed or a log in
        // memory moved since it last passed (its result cannot differ otherwise: the
        // simulator never injects read faults, and a dead store crashed the host above).
        let mut checked = e.check_memory_invariants();
        if checked.is_ok() {
            let commits = h.store.stats().commits;
            let unchanged = h
                .store_checked
                .as_ref()
                .is_some_and(|c| c.commits == commits && c.same_logs(e));
            if !unchanged {
                checked = e.check_store_invariants();
                h.store_checked = checked.is_ok().then(|| StoreCheck::of(commits, e));
            }
        }
        if let Err(what) = checked {
            self.problems.push((
                "engine-invariant",
                format!("host {host} at {} ms: {what}", self.now),
            ));
        }
    }

    /// Drops a host's engine and everything in memory; its durable store survives.
    fn crash(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        h.engine = None;
        h.timer = None;
        h.dying = false;
        h.faults.clear();
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { from, to, bytes } => self.deliver(from, to, bytes),
            Ev::Timer { host, at } => {
                if self.hosts[host].timer == Some(at) {
                    self.hosts[host].timer = None;
                    let now = self.local_now(host);
                    if let Some(e) = self.hosts[host].engine.as_mut() {
                        e.handle_timeout(now);
                    }
                    self.drain(host);
                }
            }
            Ev::Write { host, n } => self.write(host, n),
            Ev::Join { host } => self.join(host),
            Ev::Crash { host } => {
                self.mix(&[b"crash", &[host as u8]]);
                self.log(|| format!("crash host {host}"));
                self.crash(host);
            }
            Ev::CrashInside { host } => {
                if !self.healed && self.hosts[host].engine.is_some() {
                    let after = self.rng.next_u64() % 2;
                    self.mix(&[b"crash-inside-armed", &[host as u8, after as u8]]);
                    self.log(|| format!("host {host} will crash after {after} more commits"));
                    self.hosts[host].dying = true;
                    self.hosts[host].faults.die_after_commits(after);
                }
            }
            Ev::Jump { host, delta_ms } => {
                if !self.healed {
                    self.mix(&[b"jump", &[host as u8], &delta_ms.to_be_bytes()]);
                    self.log(|| format!("host {host} clock jumps {delta_ms} ms"));
                    self.hosts[host].jumped_ms += delta_ms;
                    // Re-arm its timer against the new clock.
                    self.hosts[host].timer = None;
                    self.drain(host);
                }
            }
            Ev::Restart { host } => self.restart(host),
            Ev::Cut { from, to } => {
                if !self.healed {
                    self.mix(&[b"cut", &[from as u8, to as u8]]);
                    self.log(|| format!("cut {from} -> {to}"));
                    self.cut.insert((from, to));
                }
            }
            Ev::Mend { from, to } => {
                self.log(|| format!("mend {from} -> {to}"));
                self.cut.remove(&(from, to));
            }
            Ev::Offline { host } => {
                if !self.healed {
                    self.mix(&[b"offline", &[host as u8]]);
                    self.log(|| format!("host {host} goes offline"));
                    self.offline = Some(host);
                }
            }
            Ev::Online => {
                self.mix(&[b"online"]);
                self.log(|| "the offline host is back".into());
                self.offline = None;
            }
            Ev::Attack => {
                if !self.healed {
                    crate::adversary::attack(self);
                    let next = self.now + 200 + self.rng.next_u64() % 1_000;
                    self.at(next, Ev::Attack);
                }
            }
            Ev::Heal => self.heal(),
            Ev::Check => {
                if crate::checks::converged(self) {
                    self.converged_at = Some(self.now);
                    self.log(|| "honest hosts converged".into());
                } else {
                    let t = self.now + CHECK_EVERY_MS;
                    self.at(t, Ev::Check);
                }
            }
        }
    }

    fn heal(&mut self) {
        self.mix(&[b"heal"]);
        self.log(|| "heal: partitions mended, crashed hosts restarted, loss off".into());
        self.healed = true;
        self.healed_at = self.now;
        self.cut.clear();
        for i in self.down_for_good.clone() {
            self.mix(&[b"down-for-good", &[i as u8]]);
            self.log(|| format!("host {i} goes down for good"));
            self.crash(i);
        }
        self.offline = None;
        for i in 0..self.hosts.len() {
            if self.down_for_good.contains(&i) {
                continue;
            }
            if self.hosts[i].dying {
                // Armed but never reached: the crash did not happen.
                self.hosts[i].dying = false;
            }
            self.hosts[i].faults.clear();
            if self.hosts[i].engine.is_none() && self.hosts[i].role != Role::Adversary {
                self.restart(i);
            }
        }
    }

    fn restart(&mut self, host: usize) {
        if self.hosts[host].engine.is_some() || (self.healed && self.down_for_good.contains(&host))
        {
            return;
        }
        self.mix(&[b"restart", &[host as u8]]);
        self.log(|| format!("restart host {host} from its store"));
        let seed = self.rng.next_u64();
        let now = self.local_now(host);
        let mut cfg = engine_config(&self.opts, self.config.as_ref());
        if self.config.is_some() && self.hosts[host].role != Role::Replicator {
            cfg.accept_invites = false;
        }
        self.hosts[host].faults = FaultyStore::new(self.hosts[host].store.reopen());
        self.arm_storage_faults(host);
        let store = self.hosts[host].faults.clone();
        match Host::open(cfg, store, app(), seeded(seed), None, now) {
            Ok(e) => self.hosts[host].engine = Some(e),
            Err(e) if self.injected(&e) => {
                // The disk refused the open: try again shortly.
                self.log(|| format!("host {host} failed to reopen: {e}; retrying"));
                let t = self.now + 500;
                self.at(t, Ev::Restart { host });
            }
            Err(e) => self
                .problems
                .push(("host-error", format!("host {host} failed to reopen: {e}"))),
        }
        self.drain(host);
    }

    fn join(&mut self, host: usize) {
        // A host that is down, or whose inviter is, joins once it is back.
        let inviter_down =
            self.hosts[host].role == Role::Replicator && self.hosts[0].engine.is_none();
        if self.hosts[host].engine.is_none() || inviter_down {
            let t = self.now + 500;
            self.at(t, Ev::Join { host });
            return;
        }
        let now = self.local_now(host);
        self.mix(&[b"join", &[host as u8]]);
        self.hosts[host].member = true;
        if self.hosts[host].role == Role::Replicator {
            self.log(|| format!("host 0 invites host {host} as replicator"));
            let peer = self.hosts[host].peer;
            let now0 = self.local_now(0);
            let invited = match self.hosts[0].engine.as_mut() {
                Some(e) => e.add_replicator(now0, &self.thread, &peer),
                None => Ok(()),
            };
            match invited {
                Ok(()) => {}
                Err(err) if self.injected(&err) => {
                    self.hosts[host].member = false;
                    let t = self.now + 500;
                    self.at(t, Ev::Join { host });
                }
                Err(err) => self.problems.push((
                    "host-error",
                    format!("host 0 failed to invite host {host}: {err}"),
                )),
            }
            self.drain(0);
            self.after_input(0);
            return;
        }
        // Join through a random member that is not the joiner.
        // Never through a host that will go down for good: a joiner whose only contact
        // disappears has no address left to sync from (a real client would join again
        // through another address), which is no fault of the engine.
        let members: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| {
                i != host
                    && self.hosts[i].member
                    && self.hosts[i].engine.is_some()
                    && !self.down_for_good.contains(&i)
            })
            .collect();
        if members.is_empty() {
            self.hosts[host].member = false;
            let t = self.now + 500;
            self.at(t, Ev::Join { host });
            return;
        }
        let via = members[(self.rng.next_u64() % members.len() as u64) as usize];
        self.log(|| format!("host {host} joins through host {via}"));
        let addr: ThreadAddr = format!(
            "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
            self.hosts[via].peer, self.thread
        )
        .parse()
        .expect("a well-formed thread address");
        let key = self.key.clone();
        let Some(e) = self.hosts[host].engine.as_mut() else {
            return;
        };
        let joined = e.join_thread(now, &addr, key);
        match joined {
            Ok(_) => {}
            Err(err) if self.injected(&err) => {
                self.hosts[host].member = false;
                let t = self.now + 500;
                self.at(t, Ev::Join { host });
            }
            Err(err) => self
                .problems
                .push(("host-error", format!("host {host} failed to join: {err}"))),
        }
        self.drain(host);
    }

    fn write(&mut self, host: usize, n: usize) {
        let now = self.local_now(host);
        let body = workload::transaction(&mut self.rng, n);
        let thread = self.thread;
        let Some(e) = self.hosts[host].engine.as_mut() else {
            return; // crashed: the client's write is refused, nothing is acknowledged
        };
        let author = e.identity().public();
        match e.create_record(now, &thread, None, &body, now.as_millis()) {
            Ok(rec) => {
                let hash = self.acknowledge(host, &rec, author, body);
                self.mix(&[b"write", &[host as u8], &hash]);
                self.log(|| format!("host {host} writes record {} of its log", rec.counter()));
            }
            // The database refused the transaction (say, a create of an id this writer
            // already holds): a client error, nothing was written or acknowledged.
            Err(EngineError::Rejected(reason)) => {
                self.mix(&[b"refused", &[host as u8]]);
                self.log(|| format!("host {host} write {n} refused: {reason}"));
            }
            // The disk failed (injected), a drawn log limit was reached, or the writer has not
            // joined yet (its join hit an injected fault): the write is refused and not
            // acknowledged.
            Err(err)
                if self.injected(&err)
                    || matches!(err, EngineError::Limit(_))
                    || (matches!(err, EngineError::ThreadNotFound) && !self.hosts[host].member) =>
            {
                self.mix(&[b"failed", &[host as u8]]);
                self.log(|| format!("host {host} write {n} failed: {err}"));
            }
            Err(err) => self
                .problems
                .push(("host-error", format!("host {host} write {n} failed: {err}"))),
        }
        self.drain(host);
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        if self.hosts[to].role == Role::Adversary {
            if let Some(a) = self.adversary.as_mut() {
                a.capture(bytes);
            }
            return;
        }
        let now = self.local_now(to);
        let peer = self.hosts[from].peer;
        if self.hosts[to].engine.is_none() {
            return; // the receiver is down: the message is lost
        }
        self.mix(&[b"deliver", &[from as u8, to as u8], &bytes]);
        if self.opts.trace {
            let kind = message::decode(&bytes, usize::MAX)
                .map(|(_, p)| p.kind())
                .unwrap_or("garbage");
            let len = bytes.len();
            self.log(|| format!("deliver {from} -> {to} {kind} ({len} bytes)"));
        }
        if let Some(e) = self.hosts[to].engine.as_mut() {
            e.handle_message(now, &peer, &bytes);
        }
        // Give the adversary a view of honest traffic it can replay.
        if let Some(a) = self.adversary.as_mut() {
            a.capture(bytes);
        }
        self.drain(to);
    }

    /// Sends bytes over the simulated network, applying loss, duplication, latency and cuts.
    pub(crate) fn send(&mut self, from: usize, to: usize, mut bytes: Vec<u8>) {
        if self.cut.contains(&(from, to)) || self.offline.is_some_and(|h| h == from || h == to) {
            return;
        }
        if !self.healed && self.rng.next_u64() % 1000 < self.profile.loss_permille {
            return;
        }
        let copies = if !self.healed && self.rng.next_u64() % 1000 < self.profile.duplicate_permille
        {
            2
        } else {
            1
        };
        for copy in 1..=copies {
            let jitter = match self.profile.jitter_ms {
                0 => 0,
                j => self.rng.next_u64() % (j + 1),
            };
            let t = self.now + self.latency[&(from, to)] + jitter;
            // The last copy takes the buffer; a duplicate gets its own.
            let bytes = if copy == copies {
                std::mem::take(&mut bytes)
            } else {
                bytes.clone()
            };
            self.at(t, Ev::Deliver { from, to, bytes });
        }
    }

    /// Moves a host's outputs into the network and re-arms its timer.
    pub(crate) fn drain(&mut self, host: usize) {
        let Some(e) = self.hosts[host].engine.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        let mut events = Vec::new();
        while let Some(o) = e.poll_output() {
            match o {
                Output::Transmit { to, bytes } => out.push((to, bytes)),
                Output::Event(ev) => events.push(ev),
            }
        }
        let deadline = e.poll_timeout().map(|t| t.as_millis());
        for ev in events {
            // A message about a thread the receiver does not hold yet is a race an honest peer
            // can cause (it learned of a replicator before the invitation arrived); any other
            // report about an honest peer is a false accusation.
            if let Event::PeerMisbehaved { peer, reason } = &ev
                && !matches!(&**reason, Misbehaviour::UnknownThread(_))
            {
                let from = self.index.get(peer).copied();
                if from.map(|i| self.hosts[i].role) != Some(Role::Adversary) {
                    self.problems.push((
                        "honest-blamed",
                        format!("host {host} blamed honest peer {peer}: {reason}"),
                    ));
                }
            }
            if let Event::StoreFailed { during, error, .. } = &ev
                && !self.injected(&EngineError::Store(error.clone()))
            {
                self.problems.push((
                    "host-error",
                    format!("host {host}: store failed {during}: {error}"),
                ));
            }
            if let Event::ApplyFailed { error, .. } = &ev
                && !self.injected(error)
            {
                self.problems.push((
                    "host-error",
                    format!("host {host} failed to apply a record: {error}"),
                ));
            }
            if let Event::RecordAdded { record, .. } = &ev {
                let cid = record.cid();
                if let Some(at) = self.acked_at.get(&cid) {
                    self.delays.push((cid, host, self.now - at));
                } else if Some(*record.log()) != self.adversary_log() {
                    // Checked as it happens, not only at the end.
                    self.problems.push((
                        "forged-accepted",
                        format!(
                            "host {host} stored record {} of log {} that no honest writer made",
                            record.counter(),
                            record.log()
                        ),
                    ));
                }
            }
            self.log(|| format!("host {host} event {}", crate::describe(&ev)));
        }
        for (to, bytes) in out {
            if let Some(&j) = self.index.get(&to) {
                if self.profile.is_calm() && self.hosts[j].role != Role::Adversary {
                    let payload = message::decode(&bytes, usize::MAX).ok().map(|(_, p)| p);
                    let kind = payload.as_ref().map_or("garbage", |p| p.kind());
                    *self.sent.entry(kind).or_default() += 1;
                    if let Some(message::Payload::Pull { log, from, .. }) = payload
                        && let Ok(log) = threads_protocol::log_id::LogId::from_bytes(&log)
                    {
                        self.pulls.push((host, log, from, self.now));
                    }
                }
                self.send(host, j, bytes);
            }
        }
        if let Some(local) = deadline {
            // The host's clock runs at its own rate and may jump: fire when it should reach
            // the deadline at its current rate (if it has not, the engine re-arms).
            let now_local = self.local_now(host).as_millis();
            let global = self.now + local.saturating_sub(now_local);
            if self.hosts[host].timer != Some(global) {
                self.hosts[host].timer = Some(global);
                self.at(global, Ev::Timer { host, at: global });
            }
        }
    }

    /// A host's view of the clock: a base, its constant offset, the global time at its drift
    /// rate, and its jumps so far.
    pub(crate) fn local_now(&self, host: usize) -> Time {
        let h = &self.hosts[host];
        let now = self.now as i64;
        let drift = now.saturating_mul(h.drift_ppm) / 1_000_000;
        let t = CLOCK_BASE_MS + h.skew as i64 + now + drift + h.jumped_ms;
        Time(t.max(0) as u64)
    }

    /// The adversary's own log, if there is an adversary.
    pub(crate) fn adversary_log(&self) -> Option<threads_protocol::log_id::LogId> {
        self.adversary.as_ref().map(|a| a.key.public().peer_id())
    }
}
