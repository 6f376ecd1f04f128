//! Faults done to hosts: storage failures, crashes and restarts from the durable store, and
//! the heal that ends the fault phase.

use super::config::engine_config;
use super::{Ev, World, app};
use crate::Role;
use threads_protocol::engine::{EngineError, Host};
use threads_protocol::rng::{Rng, seeded};
use threads_protocol::store::StoreError;
use threads_protocol::store::memory::{FaultOp, FaultyStore};

impl World {
    /// During the fault phase, makes a host's store fail writes at the profile's rate.
    pub(super) fn arm_storage_faults(&mut self, host: usize) {
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

    /// Drops a host's engine and everything in memory; its durable store survives.
    pub(super) fn crash(&mut self, host: usize) {
        let h = &mut self.hosts[host];
        h.engine = None;
        h.timer = None;
        h.dying = false;
        h.faults.clear();
    }

    /// Ends the fault phase: mends partitions, takes down the hosts that stay down, clears
    /// storage faults and restarts every other crashed honest host.
    pub(super) fn heal(&mut self) {
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

    /// Reopens a crashed host on its durable store (retried shortly if the disk refuses).
    pub(super) fn restart(&mut self, host: usize) {
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
}
