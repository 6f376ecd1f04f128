//! Per-peer outbound budgets: how many sync bytes may be in flight to one peer (sent and not
//! yet acknowledged, or waiting for a connection). A slow or dead peer can make the node hold
//! at most one budget's worth of messages; beyond it, messages are dropped (sync repairs them).

use std::collections::HashMap;
use std::hash::Hash;

/// Bytes in flight per peer, against a fixed limit, and per message.
#[derive(Debug)]
pub(crate) struct Budgets<P, M> {
    limit: usize,
    used: HashMap<P, usize>,
    messages: HashMap<M, (P, usize)>,
}

impl<P: Copy + Eq + Hash, M: Eq + Hash> Budgets<P, M> {
    pub fn new(limit: usize) -> Self {
        Budgets {
            limit,
            used: HashMap::new(),
            messages: HashMap::new(),
        }
    }

    /// Whether a message of `len` bytes to `peer` fits. A peer with nothing in flight always
    /// gets one message, however large (the message size limit bounds it).
    pub fn fits(&self, peer: &P, len: usize) -> bool {
        let used = self.used.get(peer).copied().unwrap_or(0);
        used == 0 || used + len <= self.limit
    }

    /// Counts a message as in flight.
    pub fn charge(&mut self, peer: P, message: M, len: usize) {
        *self.used.entry(peer).or_default() += len;
        self.messages.insert(message, (peer, len));
    }

    /// The message was answered or failed: its bytes are free again. Returns its size.
    pub fn settle(&mut self, message: &M) -> Option<usize> {
        let (peer, len) = self.messages.remove(message)?;
        if let Some(used) = self.used.get_mut(&peer) {
            *used = used.saturating_sub(len);
            if *used == 0 {
                self.used.remove(&peer);
            }
        }
        Some(len)
    }

    /// Bytes in flight to `peer`.
    pub fn used(&self, peer: &P) -> usize {
        self.used.get(peer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_peer_holds_at_most_its_budget() {
        let mut b: Budgets<u8, u32> = Budgets::new(100);
        assert!(b.fits(&1, 500), "an idle peer always gets one message");
        b.charge(1, 0, 60);
        assert!(b.fits(&1, 40));
        assert!(!b.fits(&1, 41));
        assert!(b.fits(&2, 100), "budgets are per peer");
        // A peer that never answers: everything beyond the budget is refused.
        let mut held = b.used(&1);
        for m in 1..1000 {
            if b.fits(&1, 10) {
                b.charge(1, m, 10);
            }
            held = held.max(b.used(&1));
        }
        assert_eq!(held, 100);
        assert_eq!(b.settle(&0), Some(60));
        assert_eq!(b.used(&1), 40);
        assert_eq!(b.settle(&0), None, "settled once");
        for m in 1..5 {
            b.settle(&m);
        }
        assert_eq!(b.used(&1), 0);
        assert!(b.used.is_empty());
    }
}
