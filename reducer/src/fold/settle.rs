//! Settling: a thread's most recent records stay out of the dependency index and enter it a
//! block of clocks at a time (`spec/convergence.md` §3.2). A write then adds its footprint
//! next to the thread's other recent footprints instead of one index entry per token at
//! random places of the index, which on LMDB is a page (and a separate disk write) each.
//! [`Convergent`] keeps each thread's frontier for the open batch and raises it here.

use super::footprint::{each_entry, index_entry};
use super::keys::{TAG_OPS, prefix, record_key, scan_footprints};
use super::layout::claim_thread_tag;
use super::{Convergent, Fold, corrupt, recent};
use std::ops::{Bound, ControlFlow};
use threads_protocol::engine::ApplyError;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

/// The settle shift of new threads: records settle in blocks of 2^8 = 256 clocks.
pub const SETTLE_SHIFT: u8 = 8;

/// Which of a thread's records are in the dependency index: those whose clock is below the
/// thread's highest clock rounded down to a multiple of 2^shift (the *settled* ones). A
/// function of the records held, so every replica and strategy indexes the same records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Frontier {
    /// The thread's settle shift; `None` for a thread first folded by layout 2, whose records
    /// are all indexed.
    shift: Option<u8>,
    /// The highest clock in the thread's operation log (records applied, rejected or pending).
    highest: Option<u64>,
}

impl Frontier {
    /// A frontier of this shift and highest clock.
    pub(super) fn of(shift: Option<u8>, highest: Option<u64>) -> Frontier {
        Frontier { shift, highest }
    }

    /// The frontier of `thread` as stored: its highest clock is read from the operation log.
    pub(super) fn load(
        txn: &dyn ReadTxn,
        thread: &ThreadId,
        shift: Option<u8>,
    ) -> Result<Frontier, StoreError> {
        let ops = prefix(TAG_OPS, thread);
        let mut highest = Ok(None);
        txn.scan(KeyRange::prefix(&ops), Direction::Reverse, &mut |k, _| {
            highest = record_key(&k[ops.len()..])
                .map(|(o, _)| Some(o.clock))
                .ok_or_else(|| corrupt("order key", "malformed"));
            ControlFlow::Break(())
        })?;
        Ok(Frontier::of(shift, highest?))
    }

    /// The first clock that is not settled; `None` when every record is indexed.
    pub(super) fn start(&self) -> Option<u64> {
        let shift = self.shift?;
        Some(self.highest.map_or(0, |h| (h >> shift) << shift))
    }

    /// Whether a record of this clock is in the dependency index.
    pub(super) fn settled(&self, clock: u64) -> bool {
        self.start().is_none_or(|start| clock < start)
    }

    /// The frontier once a record of `clock` is in the operation log.
    pub(super) fn with(self, clock: u64) -> Frontier {
        Frontier {
            highest: Some(self.highest.map_or(clock, |h| h.max(clock))),
            ..self
        }
    }
}

impl<F: Fold> Convergent<F> {
    /// The settle frontier of `thread` in the open batch; the first time, the thread's tag is
    /// claimed (with this wrapper's shift if it is new) and its highest clock read.
    pub(super) fn frontier(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
    ) -> Result<Frontier, ApplyError> {
        if let Some(f) = self.frontiers.get(thread) {
            return Ok(*f);
        }
        let shift = claim_thread_tag(txn, thread, self.settle_shift)?;
        let f = Frontier::load(txn, thread, shift)?;
        self.frontiers.insert(*thread, f);
        Ok(f)
    }

    /// The recent footprints of `thread` the open batch keeps in memory, if it does.
    pub(super) fn kept_recent(&mut self, thread: &ThreadId) -> Option<&mut recent::RecentTokens> {
        self.recent.get_mut(thread)?.tokens.as_mut()
    }

    /// Records that a record of `clock` is now in the operation log of `thread`; when that
    /// moves the frontier, the records it passed settle into the dependency index.
    pub(super) fn raise(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
        clock: u64,
    ) -> Result<(), ApplyError> {
        let before = self.frontier(txn, thread)?;
        let after = before.with(clock);
        if let (Some(from), Some(to)) = (before.start(), after.start())
            && to > from
        {
            settle(txn, thread, from, to)?;
            self.recent.remove(thread);
        }
        self.frontiers.insert(*thread, after);
        Ok(())
    }
}

/// Puts in the dependency index the entries of every stored footprint of `thread` whose clock is
/// in `from..to`: the block of records that settled.
pub(super) fn settle(
    txn: &mut dyn WriteTxn,
    thread: &ThreadId,
    from: u64,
    to: u64,
) -> Result<(), StoreError> {
    let records = prefix(TAG_OPS, thread);
    let start = [records.as_slice(), &from.to_be_bytes()].concat();
    let mut block = Vec::new();
    scan_footprints(txn, thread, Bound::Included(&start), &mut |order, v| {
        if order.clock >= to {
            return Ok(ControlFlow::Break(()));
        }
        each_entry(v, |usage, hash| {
            block.push(index_entry(thread, usage as u8, hash, &order));
            Ok(())
        })?;
        Ok(ControlFlow::Continue(()))
    })?;
    tracing::debug!(
        entries = block.len(),
        from,
        to,
        "records settle into the dependency index"
    );
    // In key order: neighbouring entries share their pages.
    block.sort_unstable();
    for entry in &block {
        txn.put(entry, &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn frontier(shift: Option<u8>, highest: Option<u64>) -> Frontier {
        Frontier::of(shift, highest)
    }

    #[test]
    fn records_below_the_highest_block_are_settled() {
        let f = frontier(Some(8), Some(600));
        assert_eq!(f.start(), Some(512));
        assert!(f.settled(511) && !f.settled(512) && !f.settled(600) && !f.settled(9000));
        assert_eq!(f.with(700).start(), Some(512));
        assert_eq!(f.with(768).start(), Some(768));
        assert_eq!(f.with(3).start(), Some(512), "a late record moves nothing");
        // Nothing held yet: nothing settled.
        assert_eq!(frontier(Some(8), None).start(), Some(0));
        assert!(!frontier(Some(8), None).settled(0));
        // Shift 0: everything below the highest clock.
        assert_eq!(frontier(Some(0), Some(5)).start(), Some(5));
        // The largest shift and the largest clock.
        assert_eq!(frontier(Some(63), Some(u64::MAX)).start(), Some(1 << 63));
        assert_eq!(frontier(Some(0), Some(u64::MAX)).start(), Some(u64::MAX));
    }

    #[test]
    fn a_thread_of_layout_two_indexes_everything() {
        let f = frontier(None, Some(600));
        assert_eq!(f.start(), None);
        assert!(f.settled(600) && f.settled(u64::MAX) && f.with(10_000).settled(10_000));
    }
}
