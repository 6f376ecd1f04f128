//! Connection trimming with low and high water marks and a grace period, as go-threads'
//! `connLowWater`, `connHighWater` and `connGracePeriod` configure it: when more than the high
//! mark are open, the oldest connections past their grace period are closed until the low mark
//! is reached.

use libp2p::swarm::ConnectionId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Open connections in the order they were established.
#[derive(Debug)]
pub(crate) struct ConnManager {
    low: usize,
    high: usize,
    grace: Duration,
    open: BTreeMap<ConnectionId, Instant>,
}

impl ConnManager {
    pub fn new(low: usize, high: usize, grace: Duration) -> Self {
        ConnManager {
            low: low.min(high),
            high,
            grace,
            open: BTreeMap::new(),
        }
    }

    pub fn opened(&mut self, id: ConnectionId, at: Instant) {
        self.open.insert(id, at);
    }

    pub fn closed(&mut self, id: ConnectionId) {
        self.open.remove(&id);
    }

    /// Connections to close now: none while at most `high` are open; otherwise the oldest
    /// ones past the grace period, until `low` would remain.
    pub fn trim_now(&mut self, now: Instant) -> Vec<ConnectionId> {
        if self.open.len() <= self.high {
            return Vec::new();
        }
        let excess = self.open.len() - self.low;
        let mut by_age: Vec<(Instant, ConnectionId)> =
            self.open.iter().map(|(id, at)| (*at, *id)).collect();
        by_age.sort();
        let victims: Vec<ConnectionId> = by_age
            .into_iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) >= self.grace)
            .take(excess)
            .map(|(_, id)| id)
            .collect();
        for id in &victims {
            self.open.remove(id);
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_oldest_past_grace_down_to_low_water() {
        let start = Instant::now();
        let mut m = ConnManager::new(2, 4, Duration::from_secs(10));
        for i in 0..5 {
            m.opened(
                ConnectionId::new_unchecked(i),
                start + Duration::from_secs(i as u64),
            );
        }
        // Over the high mark but everyone is within grace.
        assert!(m.trim_now(start + Duration::from_secs(5)).is_empty());
        // Later: the three oldest go, two remain.
        let gone = m.trim_now(start + Duration::from_secs(60));
        assert_eq!(
            gone,
            (0..3).map(ConnectionId::new_unchecked).collect::<Vec<_>>()
        );
        assert!(m.trim_now(start + Duration::from_secs(60)).is_empty());
        m.closed(ConnectionId::new_unchecked(4));
        assert_eq!(m.open.len(), 1);
    }
}
