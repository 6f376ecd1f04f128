//! The fold's key spaces: their tags, the prefix one thread has in each, the key of one record
//! in one, and the order keys listed under a prefix.

use super::{ORDER_KEY_LEN, OrderKey, corrupt, thread_tag};
use std::ops::{Bound, ControlFlow};
use threads_protocol::id::ThreadId;
use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError};

/// Key space of the records the fold holds: `21 ‖ tag(thread) ‖ order key` →
/// [`OpEntry`](super::OpEntry) (the operation log), and beside it, under the same order key
/// followed by [`TAG_UNDO`] or [`TAG_FOOTPRINT`], the record's undo log and footprint, so
/// that a write adds its three to one page (`spec/convergence.md` §3).
pub const TAG_OPS: u8 = 0x21;
/// Undo logs: `21 ‖ tag(thread) ‖ order key ‖ 22` → [`UndoLog`](super::UndoLog) (`22 ‖ tag ‖
/// order key` in layout 2).
pub const TAG_UNDO: u8 = 0x22;
/// Key space of rejections: `23 ‖ tag(thread) ‖ order key` → UTF-8 reason.
pub const TAG_REJECTED: u8 = 0x23;
/// Footprints: `21 ‖ tag(thread) ‖ order key ‖ 24` → [`Footprint`](super::Footprint) of the
/// record's current run (present exactly for the records currently applied or rejected;
/// `24 ‖ tag ‖ order key` in layout 2).
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

/// The key of what the fold keeps of one record: its operation-log entry (`TAG_OPS`), undo
/// log (`TAG_UNDO`) or footprint (`TAG_FOOTPRINT`), all under `21 ‖ tag(thread) ‖ order key`,
/// or its rejection (`23 ‖ tag(thread) ‖ order key`).
pub(super) fn keyed(tag: u8, thread: &ThreadId, order: &OrderKey) -> Vec<u8> {
    let beside = matches!(tag, TAG_UNDO | TAG_FOOTPRINT);
    let mut k = prefix(if beside { TAG_OPS } else { tag }, thread);
    k.extend_from_slice(&order.to_bytes());
    if beside {
        k.push(tag);
    }
    k
}

/// A key of the records space (`21 ‖ tag(thread) ‖ ...`) after its prefix: the record's order
/// key and, for its undo log or footprint, their kind; `None` for anything else.
pub(super) fn record_key(rest: &[u8]) -> Option<(OrderKey, Option<u8>)> {
    match rest.len() {
        ORDER_KEY_LEN => Some((OrderKey::from_bytes(rest)?, None)),
        n if n == ORDER_KEY_LEN + 1 => Some((
            OrderKey::from_bytes(&rest[..ORDER_KEY_LEN])?,
            Some(rest[ORDER_KEY_LEN]),
        )),
        _ => None,
    }
}

/// The first key of the records space of `thread` that belongs to no record at or before
/// `order`: a scan from here (excluded) sees only later records.
pub(super) fn after_record(thread: &ThreadId, order: &OrderKey) -> Vec<u8> {
    let mut k = keyed(TAG_OPS, thread, order);
    k.push(0xff);
    k
}

/// Whether the thread holds a record (applied, rejected or pending) after `order`.
pub(super) fn any_record_after(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
) -> Result<bool, StoreError> {
    let records = prefix(TAG_OPS, thread);
    let after = after_record(thread, order);
    let mut later = false;
    txn.scan(
        KeyRange::new(Bound::Excluded(after.as_slice()), Bound::Unbounded),
        Direction::Forward,
        &mut |k, _| {
            later = k.starts_with(&records);
            ControlFlow::Break(())
        },
    )?;
    Ok(later)
}

/// What [`scan_footprints`] hands each footprint to: its order key and bytes.
pub(super) type FootprintVisitor<'a> =
    dyn FnMut(OrderKey, &[u8]) -> Result<ControlFlow<()>, StoreError> + 'a;

/// Visits the stored footprints of `thread` from `from` (a key of its records space) on, in
/// order, skipping the operation-log entries and undo logs among them; `visit` gets each
/// footprint's order key and bytes. Stops when `visit` breaks.
pub(super) fn scan_footprints(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    from: Bound<&[u8]>,
    visit: &mut FootprintVisitor<'_>,
) -> Result<(), StoreError> {
    let records = prefix(TAG_OPS, thread);
    let whole = KeyRange::prefix(&records);
    txn.try_scan(
        KeyRange::new(from, whole.end()),
        Direction::Forward,
        &mut |k, v| {
            let Some(rest) = k.strip_prefix(records.as_slice()) else {
                return Ok(ControlFlow::Break(()));
            };
            match record_key(rest) {
                Some((order, Some(TAG_FOOTPRINT))) => visit(order, v),
                Some(_) => Ok(ControlFlow::Continue(())),
                None => Err(corrupt("order key", "malformed")),
            }
        },
    )
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

/// The order keys stored under `p ‖ order key` in `range` (under the records space, the
/// operation-log entries: the undo logs and footprints beside them are skipped).
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
        let rest = &k[p.len()..];
        if rest.len() == ORDER_KEY_LEN + 1 {
            return Ok(ControlFlow::Continue(())); // a record's undo log or footprint
        }
        let order = OrderKey::from_bytes(rest).ok_or_else(|| corrupt("order key", "malformed"))?;
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
