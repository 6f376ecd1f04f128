//! The schedule of a run, drawn once at the start: joins, writes, partitions, crashes, clock
//! jumps, the offline writer, the hosts that never come back, the heal and the first check.

use super::{CHECK_EVERY_MS, Ev, FAULT_PHASE_MS, World};
use crate::Role;
use threads_protocol::rng::Rng;

impl World {
    /// Draws the whole schedule of a world of `n` hosts from its random streams.
    pub(super) fn schedule_everything(&mut self, n: usize) {
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
}
