//! The simulated network and host clocks: delivering messages, sending them with loss,
//! duplication, latency and cuts, moving a host's outputs onto the network, and each host's
//! view of the time.

use super::{CLOCK_BASE_MS, Ev, World};
use crate::Role;
use threads_protocol::engine::message;
use threads_protocol::engine::{EngineError, Event, Misbehaviour, Output, Time};
use threads_protocol::rng::Rng;

impl World {
    /// Hands a message that arrived to its receiver (or to the adversary, which only listens).
    pub(super) fn deliver(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
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
}
