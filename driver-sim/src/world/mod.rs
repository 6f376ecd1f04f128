//! The simulated world: hosts running the real engine on in-memory stores, a virtual clock, a
//! seeded network and a schedule of workload operations and faults.
//!
//! This module holds the world's state and its event loop; private submodules add the rest
//! to [`World`]: the network and host clocks (`network`), faults (`faults`), what clients do
//! (`clients`), the schedule drawn at the start (`schedule`), engine configurations (`config`)
//! and what a passing store check saw (`store_check`).

mod clients;
mod config;
mod faults;
mod network;
mod schedule;
mod store_check;

use crate::adversary::Adversary;
use crate::profile::FaultProfile;
use crate::{Options, Role};
use config::{engine_config, swarm_config};
use std::collections::{BTreeMap, BTreeSet};
use threads_protocol::engine::{Config, Host, NewThread, PeerId, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;
use threads_protocol::rng::{ProtocolRng, Rng, seeded};
use threads_protocol::store::memory::{FaultyStore, MemoryStore};
use threads_reducer::db::DocFold;
use threads_reducer::fold::{Convergent, OrderKey};
use xxhash_rust::xxh3::Xxh3;

pub(crate) use store_check::StoreCheck;

/// Length of the fault phase, in simulated ms.
pub const FAULT_PHASE_MS: u64 = 20_000;
/// Mixed into the seed for the offline writer's random stream.
const OFFLINE_STREAM: u64 = 0x0ff1_13e0_0000_0001;
/// Mixed into the seed for the pull window of a swarm configuration: a stream of its own, so
/// the seeds of `regressions.txt` keep drawing the worlds they were recorded with.
const WINDOW_STREAM: u64 = 0x3a1d_0000_0000_0002;
/// The stream that draws a swarm configuration's CID journal size (added after the others, so
/// recorded seeds keep their worlds).
const JOURNAL_STREAM: u64 = 0xc1d0_0000_0000_0003;
/// The stream that draws a swarm configuration's asked page size (added after the others, so
/// recorded seeds keep their worlds).
const PULL_PAGE_STREAM: u64 = 0x9a9e_0000_0000_0004;
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

/// Settle shift of the simulated hosts' threads: blocks of 8 clocks, so that a run of a few
/// hundred records has settled records (in the dependency index) and recent ones (found by
/// their footprints), and moves the frontier often. The daemon's default is 256 clocks.
pub const SIM_SETTLE_SHIFT: u8 = 3;

/// A fresh application.
pub fn app() -> App {
    Convergent::new(DocFold::new()).with_settle_shift(SIM_SETTLE_SHIFT)
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
    /// XXH3-128 over every delivery, operation and fault (a fingerprint for telling runs
    /// apart, not a security boundary: SHA-256 here cost 5 % of a sweep).
    trace: Xxh3,
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
            // CID journals that move into the sorted index often, rarely or at every write.
            let mut journal = seeded(seed ^ JOURNAL_STREAM);
            c.cid_journal_max = [0, 1, 3, 16, 8_192][(journal.next_u64() % 5) as usize];
            // Pages asked smaller than the page limit (as threadsd does), or as large.
            let mut pull_page = seeded(seed ^ PULL_PAGE_STREAM);
            c.pull_page_records = [1, 3, 16, 512][(pull_page.next_u64() % 4) as usize];
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
            trace: Xxh3::new(),
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
        self.trace.update(&self.now.to_be_bytes());
        for p in parts {
            self.trace.update(&(p.len() as u64).to_be_bytes());
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
    pub fn trace_hash(&self) -> [u8; 16] {
        self.trace.digest128().to_be_bytes()
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

    /// The adversary's own log, if there is an adversary.
    pub(crate) fn adversary_log(&self) -> Option<threads_protocol::log_id::LogId> {
        self.adversary.as_ref().map(|a| a.key.public().peer_id())
    }
}
