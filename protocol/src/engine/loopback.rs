//! A small in-process network of hosts with instant delivery, for tests and benchmarks (the
//! simulator in `driver-sim` has the full network model with latency and faults).
//!
//! Messages are delivered in the order they were sent, one at a time, unless the link between
//! the two hosts is cut, in which case they are dropped. Time advances only when nothing is in
//! flight, straight to the next timer. Every loop is bounded.

use super::{Application, Event, Host, Output, PeerId, Time};
use crate::store::Store;
use std::collections::{BTreeSet, VecDeque};

/// One message in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// Sender index.
    pub from: usize,
    /// Receiver index.
    pub to: usize,
    /// Encoded message.
    pub bytes: Vec<u8>,
}

/// Hosts wired together in memory.
pub struct Loopback<S: Store, A: Application> {
    /// The hosts, by index.
    pub hosts: Vec<Host<S, A>>,
    /// Current time.
    pub now: Time,
    /// Messages waiting for delivery.
    pub in_flight: VecDeque<InFlight>,
    /// Events each host emitted, by index.
    pub events: Vec<Vec<Event>>,
    /// Cut links, as (lower index, higher index).
    pub cut: BTreeSet<(usize, usize)>,
    /// Messages delivered so far.
    pub delivered: u64,
    /// Bytes delivered so far.
    pub delivered_bytes: u64,
}

impl<S: Store, A: Application> Loopback<S, A> {
    /// Wires `hosts` together, all links up, at time `now`.
    pub fn new(hosts: Vec<Host<S, A>>, now: Time) -> Self {
        let n = hosts.len();
        Loopback {
            hosts,
            now,
            in_flight: VecDeque::new(),
            events: vec![Vec::new(); n],
            cut: BTreeSet::new(),
            delivered: 0,
            delivered_bytes: 0,
        }
    }

    /// Index of the host with this peer id.
    pub fn index_of(&self, peer: &PeerId) -> Option<usize> {
        self.hosts.iter().position(|h| h.peer_id() == peer)
    }

    /// Cuts (or, with `up`, restores) the link between two hosts.
    pub fn set_link(&mut self, a: usize, b: usize, up: bool) {
        let key = (a.min(b), a.max(b));
        if up {
            self.cut.remove(&key);
        } else {
            self.cut.insert(key);
        }
    }

    /// Moves every pending output of every host into the network and the event lists.
    pub fn collect(&mut self) {
        for i in 0..self.hosts.len() {
            while let Some(out) = self.hosts[i].poll_output() {
                match out {
                    Output::Transmit { to, bytes } => {
                        if let Some(j) = self.index_of(&to) {
                            self.in_flight.push_back(InFlight {
                                from: i,
                                to: j,
                                bytes,
                            });
                        }
                    }
                    Output::Event(e) => self.events[i].push(e),
                }
            }
        }
    }

    /// Delivers the next message in flight; returns false when none is left.
    pub fn deliver_one(&mut self) -> bool {
        self.collect();
        let Some(m) = self.in_flight.pop_front() else {
            return false;
        };
        if !self.cut.contains(&(m.from.min(m.to), m.from.max(m.to))) {
            let from = *self.hosts[m.from].peer_id();
            self.delivered += 1;
            self.delivered_bytes += m.bytes.len() as u64;
            self.hosts[m.to].handle_message(self.now, &from, &m.bytes);
        }
        self.collect();
        true
    }

    /// Delivers messages until none is in flight, at most `max` of them; returns how many.
    pub fn flush(&mut self, max: u64) -> u64 {
        let mut n = 0;
        while n < max && self.deliver_one() {
            n += 1;
        }
        n
    }

    /// Advances time to the earliest timer, at most to `limit`, and fires due timers.
    /// Returns false when no timer is due before `limit`.
    pub fn advance(&mut self, limit: Time) -> bool {
        let next = self.hosts.iter().filter_map(|h| h.poll_timeout()).min();
        match next {
            Some(t) if t <= limit => {
                self.now = self.now.max(t);
                let now = self.now;
                for h in &mut self.hosts {
                    if h.poll_timeout().is_some_and(|d| d <= now) {
                        h.handle_timeout(now);
                    }
                }
                self.collect();
                true
            }
            _ => {
                self.now = self.now.max(limit);
                false
            }
        }
    }

    /// Runs the network until `done` holds with nothing in flight, or until `duration_ms` of
    /// simulated time passed. Returns whether `done` was reached.
    pub fn run_until(&mut self, duration_ms: u64, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now.plus(duration_ms);
        loop {
            self.flush(10_000_000);
            if done(self) {
                return true;
            }
            if !self.advance(end) {
                return done(self);
            }
        }
    }
}
