//! Instance ids the embedded API makes for documents created without one.

use threads_protocol::rng::{ProtocolRng, Rng};
use ulid::Ulid;

/// Largest 80-bit random part of a ULID.
const RANDOM_MAX: u128 = (1 << 80) - 1;

/// Makes lowercase ULIDs that grow strictly, as in ULID's monotonic mode: within one
/// millisecond (or when the clock steps back) the random part of the previous id grows by a
/// random step in 1..=2^32. A transaction's creates thus land in key order, and the store packs
/// its pages full instead of splitting them at random places (`spec/storage.md` §7.1).
pub(super) struct InstanceIds {
    rng: ProtocolRng,
    last: Option<Ulid>,
}

impl InstanceIds {
    /// Ids drawn from `rng`.
    pub(super) fn new(rng: ProtocolRng) -> Self {
        InstanceIds { rng, last: None }
    }

    /// The next id, for a document written at `unix_nanos`.
    pub(super) fn next(&mut self, unix_nanos: u64) -> String {
        let ms = unix_nanos / 1_000_000;
        let step = u128::from(self.rng.next_u64() >> 32) + 1;
        let grown = self.last.and_then(|last| {
            let random = last.random();
            (last.timestamp_ms() >= ms && random <= RANDOM_MAX - step)
                .then(|| Ulid::from_parts(last.timestamp_ms(), random + step))
        });
        // A random part too close to its maximum to grow starts afresh (about once in 2^48).
        let id = grown.unwrap_or_else(|| {
            let random = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
            Ulid::from_parts(ms, random)
        });
        self.last = Some(id);
        id.to_string().to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NANOS: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn ids_grow_within_a_millisecond_across_them_and_when_the_clock_steps_back() {
        let mut ids = InstanceIds::new(threads_protocol::rng::seeded(5));
        let made: Vec<String> = [NANOS, NANOS, NANOS + 3_000_000, NANOS - 9_000_000, NANOS]
            .iter()
            .map(|&t| ids.next(t))
            .collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
        assert!(
            made.iter()
                .all(|id| id.len() == 26 && *id == id.to_lowercase())
        );
        // Same millisecond: only the random part differs.
        assert_eq!(made[0][..10], made[1][..10]);
        // An exhausted random part starts afresh in the same millisecond.
        let exhausted = Ulid::from_parts(NANOS / 1_000_000, RANDOM_MAX);
        ids.last = Some(exhausted);
        let fresh = ids.next(NANOS);
        assert_eq!(fresh[..10], made[0][..10]);
        assert_ne!(fresh, exhausted.to_string().to_lowercase());
    }
}
