//! The fault profile of a run. Swarm testing: every seed draws its own mix of faults, so a sweep
//! explores quiet networks, lossy ones, partitioned ones and crashing ones alike.

use rand_core::Rng;
use std::fmt;

/// Which faults a run injects, and how hard. Probabilities are in parts per thousand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultProfile {
    /// Smallest one-way link latency, in ms.
    pub latency_min_ms: u64,
    /// Largest one-way link latency, in ms (each link draws its own in between).
    pub latency_max_ms: u64,
    /// Extra random delay per message, in ms (reorders messages on a link).
    pub jitter_ms: u64,
    /// Chance a message is lost.
    pub loss_permille: u64,
    /// Chance a message is delivered twice.
    pub duplicate_permille: u64,
    /// Number of partitions during the fault phase.
    pub partitions: u32,
    /// Whether partitions may be one-way.
    pub one_way_partitions: bool,
    /// Number of host crashes (each followed by a restart from the durable store).
    pub crashes: u32,
    /// Largest clock offset between hosts, in ms.
    pub max_clock_skew_ms: u64,
    /// Whether a misbehaving peer attacks the others.
    pub adversary: bool,
    /// Whether one host joins late.
    pub late_joiner: bool,
    /// Whether one host is a replicator (service key only).
    pub replicator: bool,
    /// Chance, in parts per million, that a store call that writes (opening a write
    /// transaction, put, delete, commit) fails during the fault phase.
    pub storage_fault_ppm: u64,
    /// Number of crashes *inside* an input: the host's store dies after 0 or 1 more commits,
    /// the input runs on against the dead store, then the host is dropped and later restarted.
    pub crashes_inside: u32,
    /// Largest clock drift of a host, in parts per million (each host draws its own rate,
    /// faster or slower than the simulation's clock).
    pub max_clock_drift_ppm: u64,
    /// Number of clock jumps (a host's clock steps forward or back by up to 5 s).
    pub clock_jumps: u32,
    /// Number of hosts, when the profile chooses it (2 to 9); otherwise the run's shape.
    pub hosts: Option<usize>,
    /// Hosts (never host 0, at most a minority) whose faults never end: they go down at the
    /// heal and stay down; the others must still converge (liveness of a core).
    pub permanent_failures: u32,
    /// Whether the engine configuration is drawn too (page sizes down to 1 record and 1 byte,
    /// small message limits, short and long timers, a log limit at the number of writers,
    /// invitations refused by hosts that are not the replicator).
    pub swarm_config: bool,

    /// Whether writer host 1 is cut off from every other host for most of the fault phase
    /// (from 1–2 s to the last second before the heal) while the others write: it comes back
    /// with records older, in the total order, than most of what the others wrote.
    pub offline_writer: bool,
}

impl FaultProfile {
    /// A profile without any fault: every message arrives once, after a fixed latency.
    pub fn calm() -> Self {
        FaultProfile {
            latency_min_ms: 10,
            latency_max_ms: 10,
            jitter_ms: 0,
            loss_permille: 0,
            duplicate_permille: 0,
            partitions: 0,
            one_way_partitions: false,
            crashes: 0,
            max_clock_skew_ms: 0,
            adversary: false,
            late_joiner: false,
            replicator: false,
            storage_fault_ppm: 0,
            crashes_inside: 0,
            max_clock_drift_ppm: 0,
            clock_jumps: 0,
            hosts: None,
            swarm_config: false,
            permanent_failures: 0,

            offline_writer: false,
        }
    }

    /// Whether the run is calm enough to hold writes to a tight replication bound: no loss,
    /// partition, crash, storage fault, clock jump or adversary.
    pub fn is_calm(&self) -> bool {
        self.loss_permille == 0
            && self.partitions == 0
            && self.crashes == 0
            && self.crashes_inside == 0
            && self.storage_fault_ppm == 0
            && self.clock_jumps == 0
            && self.permanent_failures == 0
            && !self.adversary
            && !self.offline_writer
    }

    /// Draws a profile from the run's RNG.
    pub fn draw(rng: &mut impl Rng) -> Self {
        let mut pick = |n: u64| rng.next_u64() % n;
        let latency_min_ms = 1 + pick(50);
        FaultProfile {
            latency_min_ms,
            latency_max_ms: latency_min_ms + pick(200),
            jitter_ms: pick(4) * pick(100),
            loss_permille: pick(3) * pick(150),
            duplicate_permille: pick(2) * pick(100),
            partitions: (pick(3) * pick(4)) as u32,
            one_way_partitions: pick(2) == 0,
            crashes: (pick(3) * pick(3)) as u32,
            max_clock_skew_ms: pick(2) * pick(10_000),
            adversary: pick(2) == 0,
            late_joiner: pick(2) == 0,
            replicator: pick(3) != 0,
            storage_fault_ppm: pick(2) * pick(3) * pick(15_000),
            crashes_inside: (pick(2) * pick(3)) as u32,
            max_clock_drift_ppm: pick(2) * pick(50_000),
            clock_jumps: (pick(2) * pick(4)) as u32,
            hosts: (pick(2) == 0).then(|| 2 + pick(8) as usize),
            swarm_config: pick(2) == 0,
            permanent_failures: (pick(4) == 0) as u32 * (1 + pick(2) as u32),

            // Drawn from a stream of its own (see `draw_offline_writer`), so that the runs of
            // seeds without an offline writer are the runs they were before it existed.
            offline_writer: false,
        }
    }

    /// Whether the run of `seed` has an offline writer (one seed in three), from a random
    /// stream of its own; the same stream then times the offline period.
    pub fn draw_offline_writer(side: &mut impl Rng) -> bool {
        side.next_u64().is_multiple_of(3)
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency={}..{}ms jitter={}ms loss={}‰ dup={}‰ partitions={}{} crashes={} skew<={}ms \
             adversary={} late_joiner={} replicator={} storage_faults={}ppm crashes_inside={} \
             drift<={}ppm clock_jumps={} hosts={} swarm_config={} down_for_good={} \
             offline_writer={}",
            self.latency_min_ms,
            self.latency_max_ms,
            self.jitter_ms,
            self.loss_permille,
            self.duplicate_permille,
            self.partitions,
            if self.one_way_partitions {
                " (one-way allowed)"
            } else {
                ""
            },
            self.crashes,
            self.max_clock_skew_ms,
            self.adversary,
            self.late_joiner,
            self.replicator,
            self.storage_fault_ppm,
            self.crashes_inside,
            self.max_clock_drift_ppm,
            self.clock_jumps,
            self.hosts.map_or("shape".to_string(), |n| n.to_string()),
            self.swarm_config,
            self.permanent_failures,
            self.offline_writer
        )
    }
}
