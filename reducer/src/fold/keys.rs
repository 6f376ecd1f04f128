//! The fold's key spaces: their tags, the prefix one thread has in each, the key of one record
//! in one, and the order keys listed under a prefix.

use super::{OrderKey, corrupt, thread_tag};
use std::ops::{Bound, ControlFlow};
use threads_protocol::id::ThreadId;
use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError};

/// Key space of the operation log: `21 ‖ tag(thread) ‖ order key` →
/// [`OpEntry`](super::OpEntry).
pub const TAG_OPS: u8 = 0x21;
/// Key space of undo logs: `22 ‖ tag(thread) ‖ order key` → [`UndoLog`](super::UndoLog).
pub const TAG_UNDO: u8 = 0x22;
/// Key space of rejections: `23 ‖ tag(thread) ‖ order key` → UTF-8 reason.
pub const TAG_REJECTED: u8 = 0x23;
/// Key space of footprints: `24 ‖ tag(thread) ‖ order key` → [`Footprint`](super::Footprint)
/// of the record's current run (present exactly for the records currently applied or
/// rejected).
pub const TAG_FOOTPRINT: u8 = 0x24;
/// Key space of the dependency index: `25 ‖ tag(thread) ‖ usage ‖ token hash ‖ order key` →
/// empty, one entry per token of every stored [`Footprint`](super::Footprint) of a settled
/// record (recent records have none until they settle: `spec/convergence.md` §3.2).
pub const TAG_DEPENDENTS: u8 = 0x25;
/// Key space of the folded state: `30 ‖ thread tag ‖ ...`, owned by the [`Fold`](super::Fold).
pub const TAG_STATE: u8 = 0x30;

/// `tag ‖ thread_tag(thread)`: the prefix of every key of one key space of the fold that
/// belongs to `thread` (operation log, undo logs, rejections, footprints, dependency index,
/// state).
pub fn prefix(tag: u8, thread: &ThreadId) -> Vec<u8> {
    KeyBuf::new(tag).fixed(&thread_tag(thread)).into_vec()
}

/// The key of a record's operation-log entry.
pub fn op_key(thread: &ThreadId, order: &OrderKey) -> Vec<u8> {
    keyed(TAG_OPS, thread, order)
}

/// `tag ‖ tag(thread) ‖ order key`: the key of one record in one key space of the fold.
pub(super) fn keyed(tag: u8, thread: &ThreadId, order: &OrderKey) -> Vec<u8> {
    let mut k = prefix(tag, thread);
    k.extend_from_slice(&order.to_bytes());
    k
}

/// `25 ‖ tag(thread) ‖ usage ‖ hash`: the dependency index entries of one token and use.
pub(super) fn dependents_prefix(thread: &ThreadId, usage: u8, hash: &[u8]) -> Vec<u8> {
    let mut k = prefix(TAG_DEPENDENTS, thread);
    k.push(usage);
    k.extend_from_slice(hash);
    k
}

/// The prefix under which the fold keeps the state of `thread`.
pub fn state_prefix(thread: &ThreadId) -> Vec<u8> {
    prefix(TAG_STATE, thread)
}

/// The order keys stored under `p ‖ order key` in `range`.
fn orders_in(
    txn: &dyn ReadTxn,
    p: &[u8],
    range: KeyRange<'_>,
) -> Result<Vec<OrderKey>, StoreError> {
    let mut out = Vec::new();
    txn.try_scan(range, Direction::Forward, &mut |k, _| {
        if !k.starts_with(p) {
            return Ok(ControlFlow::Break(()));
        }
        let order =
            OrderKey::from_bytes(&k[p.len()..]).ok_or_else(|| corrupt("order key", "malformed"))?;
        out.push(order);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// The order keys stored under `p ‖ order key` after `order`.
pub(super) fn orders_after(
    txn: &dyn ReadTxn,
    p: &[u8],
    order: &OrderKey,
) -> Result<Vec<OrderKey>, StoreError> {
    let mut start = p.to_vec();
    start.extend_from_slice(&order.to_bytes());
    let whole = KeyRange::prefix(p);
    orders_in(txn, p, KeyRange::new(Bound::Excluded(&start), whole.end()))
}
