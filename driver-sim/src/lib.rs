//! `threads-sim`: a deterministic simulator of many ThreadDB hosts in one process.
//!
//! Every host runs the real replication engine (`threads_protocol::engine::Host`) on its own
//! in-memory store; the simulator owns the clock, the network and the faults, all drawn from one
//! seed. A run has a *fault phase* (writes, latency, jitter, loss, duplication, partitions,
//! crashes with restart from the durable store, clock skew, a misbehaving peer), then a *heal*
//! (faults stop, crashed hosts restart), then a *liveness phase* in which honest hosts must
//! converge within a bound. Checkers then verify the invariants of `spec/simulation.md`.
//!
//! The same seed gives the same run, bit for bit: the run's trace hash covers every delivery,
//! write and fault, and [`run`] of one seed always returns the same hash.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adversary;
pub mod checks;
pub mod profile;
pub mod sweep;
pub mod workload;
pub mod world;

pub use checks::Violation;
pub use profile::FaultProfile;
pub use world::World;

use threads_protocol::engine::{Config, Event};

/// What a simulated host does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Holds the read key and writes records.
    Writer,
    /// Holds the read key and only reads.
    Reader,
    /// Holds the service key only (invited by host 0).
    Replicator,
    /// Holds the read key and joins halfway through the fault phase.
    LateJoiner,
    /// A member turned hostile: service key, no read key, sends bad messages.
    Adversary,
}

/// Settings of a run besides its seed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of hosts (at least 3).
    pub hosts: usize,
    /// Number of writes in the fault phase.
    pub ops: usize,
    /// Keep a readable line per event (for `--trace`).
    pub trace: bool,
    /// Use this profile instead of drawing one from the seed.
    pub profile: Option<FaultProfile>,
    /// Adjusts the engine configuration of every host (used to plant deliberate bugs).
    pub configure: Option<fn(&mut Config)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hosts: 5,
            ops: 200,
            trace: false,
            profile: None,
            configure: None,
        }
    }
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The fault profile the seed drew (or was given).
    pub profile: FaultProfile,
    /// Roles of the hosts, by index.
    pub roles: Vec<Role>,
    /// Hash of the whole trace; equal for equal seeds and options.
    pub trace_hash: [u8; 16],
    /// Events simulated.
    pub events: u64,
    /// Acknowledged writes.
    pub acked: usize,
    /// Simulated ms from the heal to convergence, if it happened.
    pub converged_after_ms: Option<u64>,
    /// Work of the document folds of the hosts up at the end, summed (records that arrived
    /// late, records undone and redone).
    pub fold: threads_reducer::fold::FoldStats,
    /// Broken invariants; empty for a good run.
    pub violations: Vec<Violation>,
    /// Readable trace lines, when asked for.
    pub trace: Vec<String>,
}

impl Report {
    /// The trace hash in hex.
    pub fn trace_hex(&self) -> String {
        self.trace_hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Runs one seed and checks every invariant.
pub fn run(seed: u64, opts: &Options) -> Report {
    // The hosts of a world verify the very same record bytes again and again: remember the
    // checks that passed, for this run only (spec/simulation.md §6).
    let _memo = threads_protocol::record::memo::MemoScope::open();
    let mut w = World::new(seed, opts.clone());
    w.run();
    let violations = checks::check(&w);
    Report {
        seed,
        profile: w.profile.clone(),
        roles: w.hosts.iter().map(|h| h.role).collect(),
        trace_hash: w.trace_hash(),
        events: w.events,
        acked: w.acked.len(),
        converged_after_ms: w.converged_at.map(|t| t - w.healed_at),
        fold: w.fold_stats(),
        violations,
        trace: std::mem::take(&mut w.lines),
    }
}

/// Gives each host a role: host 0 and host 1 write; then a replicator, a late joiner and an
/// adversary as the profile asks, and writers or readers for the rest.
pub(crate) fn assign_roles(n: usize, profile: &FaultProfile) -> Vec<Role> {
    let mut roles = vec![Role::Writer, Role::Writer];
    let mut extra = Vec::new();
    if profile.replicator {
        extra.push(Role::Replicator);
    }
    if profile.late_joiner {
        extra.push(Role::LateJoiner);
    }
    if profile.adversary {
        extra.push(Role::Adversary);
    }
    while roles.len() < n {
        let k = roles.len();
        roles.push(if !extra.is_empty() {
            extra.remove(0)
        } else if k % 2 == 0 {
            Role::Reader
        } else {
            Role::Writer
        });
    }
    roles
}

/// A one-line description of an engine event for traces.
pub(crate) fn describe(e: &Event) -> String {
    match e {
        Event::RecordAdded { record, local, .. } => format!(
            "record {} of log {} added ({})",
            record.counter(),
            record.log(),
            if *local { "local" } else { "remote" }
        ),
        Event::RecordRejected {
            counter,
            log,
            reason,
            ..
        } => {
            format!("record {counter} of log {log} rejected: {reason}")
        }
        Event::ApplyFailed {
            counter,
            log,
            error,
            ..
        } => {
            format!("record {counter} of log {log} failed to apply: {error}")
        }
        Event::PeerMisbehaved { peer, reason } => format!("peer {peer} misbehaved: {reason}"),
        Event::StoreFailed { during, error, .. } => format!("store failed {during}: {error}"),
        Event::ThreadAdopted { by, .. } => format!("thread adopted, invited by {by}"),
        Event::LogForked(f) => format!(
            "log {} forked at {} (other branch offered by {})",
            f.log, f.counter, f.from
        ),
    }
}
