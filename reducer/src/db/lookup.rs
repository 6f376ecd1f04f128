//! Instance look-ups by ID, on one thread or split between several.
//!
//! An index query that returns thousands of instances spends most of its time in look-ups of
//! instance keys scattered over the store (B-tree descents that miss the CPU caches), each
//! independent of the others. When the store gives read transactions on the same snapshot to
//! other threads ([`ReadTxn::sibling`]), `rows_by_ids` cuts the IDs into contiguous parts,
//! looks each part up on its own thread and joins the parts in order: the rows, their order and
//! the first error are those of a look-up on one thread.

use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;

use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{MAX_KEY_LEN, ReadTxn, StoreError};

/// Fewest look-ups worth giving a thread of its own: below this, starting the thread costs a
/// noticeable share of the work (a look-up at 1M instances takes about a microsecond).
pub const MIN_LOOKUPS_PER_THREAD: usize = 1024;

/// Most threads the automatic setting uses, whatever the machine has.
const AUTO_MAX_THREADS: usize = 8;

/// The process-wide setting of [`set_query_threads`]; 0 is automatic.
static QUERY_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads one query may use for its instance look-ups, for the whole process
/// (like a global thread-pool size): 1 keeps every query on its caller's thread, 0 (the
/// default) means the machine's available parallelism, at most 8. Results never depend on it.
pub fn set_query_threads(threads: usize) {
    QUERY_THREADS.store(threads, Ordering::Relaxed);
}

/// How many threads one query may use for its look-ups now (at least 1).
pub fn query_threads() -> usize {
    match QUERY_THREADS.load(Ordering::Relaxed) {
        0 => {
            // Asking the OS reads cgroup files (tens of microseconds): once per process.
            static AUTO: OnceLock<usize> = OnceLock::new();
            *AUTO.get_or_init(|| {
                thread::available_parallelism()
                    .map_or(1, NonZeroUsize::get)
                    .min(AUTO_MAX_THREADS)
            })
        }
        n => n,
    }
}

/// Receives an instance found by ID and its stored bytes; says whether to go on.
pub(crate) type Found<'f> = dyn FnMut(String, &[u8]) -> Result<ControlFlow<()>, StoreError> + 'f;

/// Makes the row of an instance found by ID from its stored bytes (`None`: no row). Shared by
/// the look-up threads.
pub(crate) type MakeRow<'r, R> = dyn Fn(String, &[u8]) -> Result<Option<R>, StoreError> + Sync + 'r;

/// Calls `found` with each ID of `ids` whose instance exists (under the instance key space
/// `prefix`) and its stored bytes, in the order of `ids`, until `found` breaks or fails. IDs too
/// long for a key cannot name an instance and are skipped.
pub(crate) fn for_each_instance(
    txn: &dyn ReadTxn,
    prefix: &[u8],
    ids: impl Iterator<Item = String>,
    found: &mut Found<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    // One key buffer, cut back to the prefix for each ID.
    let mut key = KeyBuf::with_prefix(prefix);
    for id in ids {
        key.truncate(prefix.len());
        key = key.str(&id);
        if key.as_bytes().len() > MAX_KEY_LEN {
            continue;
        }
        // The stored bytes are handed on where the store keeps them (no copy).
        let mut id = Some(id);
        let mut flow = Ok(ControlFlow::Continue(()));
        txn.get_with(key.as_bytes(), &mut |v| {
            if let (Some(bytes), Some(id)) = (v, id.take()) {
                flow = found(id, bytes);
            }
        })?;
        if flow?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The rows `row` makes of the instances of `ids` (skipping missing ones and those it turns
/// down), in the order of `ids`, using up to `threads` threads when there are enough IDs and the
/// store gives siblings of `txn`. Stops at the first error in that order.
pub(crate) fn rows_by_ids<R: Send>(
    txn: &dyn ReadTxn,
    prefix: &[u8],
    mut ids: Vec<String>,
    threads: usize,
    row: &MakeRow<'_, R>,
) -> Result<Vec<R>, StoreError> {
    let parts = threads.min(ids.len() / MIN_LOOKUPS_PER_THREAD).max(1);
    // Contiguous parts, cut from the end so that each is moved out without copying IDs.
    let size = ids.len().div_ceil(parts);
    let mut rest: Vec<Vec<String>> = (1..parts)
        .rev()
        .map(|k| ids.split_off((k * size).min(ids.len())))
        .collect();
    rest.reverse();
    let first = ids;
    // Each part waits in a slot, so that the caller can still take it when no thread starts.
    let slots: Vec<Mutex<Vec<String>>> = rest.into_iter().map(Mutex::new).collect();
    thread::scope(|scope| {
        let workers: Vec<_> = slots
            .iter()
            .map(|slot| {
                let sibling = txn.sibling()?;
                thread::Builder::new()
                    .name("query-lookup".into())
                    .spawn_scoped(scope, move || rows_of(&*sibling, prefix, take(slot), row))
                    .ok()
            })
            .collect();
        let mut rows = rows_of(txn, prefix, first, row)?;
        for (slot, worker) in slots.iter().zip(workers) {
            let part = match worker {
                Some(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // No sibling (a commit came in between) or no thread (the OS refused one):
                // the caller reads this part too.
                None => rows_of(txn, prefix, take(slot), row),
            };
            rows.extend(part?);
        }
        Ok(rows)
    })
}

/// The IDs left in a part's slot.
fn take(slot: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *slot.lock().unwrap_or_else(PoisonError::into_inner))
}

/// One part of [`rows_by_ids`], read on the current thread.
fn rows_of<R>(
    txn: &dyn ReadTxn,
    prefix: &[u8],
    ids: Vec<String>,
    row: &MakeRow<'_, R>,
) -> Result<Vec<R>, StoreError> {
    let mut rows = Vec::with_capacity(ids.len());
    let _never_stops = for_each_instance(txn, prefix, ids.into_iter(), &mut |id, bytes| {
        rows.extend(row(id, bytes)?);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_protocol::store::memory::MemoryStore;
    use threads_protocol::store::{Store, WriteTxn};

    const PREFIX: &[u8] = b"i/";

    /// A store holding instances `0000`..`n` (every seventh missing), each valued by its ID.
    fn store(n: usize) -> MemoryStore {
        let s = MemoryStore::new();
        let mut w = s.write().unwrap();
        for i in (0..n).filter(|i| i % 7 != 3) {
            let id = format!("{i:05}");
            let key = KeyBuf::with_prefix(PREFIX).str(&id).into_vec();
            w.put(&key, id.as_bytes()).unwrap();
        }
        w.commit().unwrap();
        s
    }

    #[test]
    fn every_split_gives_the_rows_of_one_thread_in_order() {
        let s = store(5000);
        let r = s.read().unwrap();
        // Backwards, with unknown IDs and an overlong one among them.
        let mut ids: Vec<String> = (0..5200).rev().map(|i| format!("{i:05}")).collect();
        ids.insert(10, "x".repeat(MAX_KEY_LEN));
        // Turns down IDs ending in 5, keeps the others with their stored bytes.
        let row = |id: String, bytes: &[u8]| -> Result<Option<(String, Vec<u8>)>, StoreError> {
            Ok((!id.ends_with('5')).then(|| (id, bytes.to_vec())))
        };
        let one = rows_by_ids(&r, PREFIX, ids.clone(), 1, &row).unwrap();
        assert_eq!(
            one.len(),
            (0..5000).filter(|i| i % 7 != 3 && i % 10 != 5).count()
        );
        assert!(one.iter().all(|(id, bytes)| id.as_bytes() == bytes));
        assert!(
            one.windows(2).all(|w| w[0].0 > w[1].0),
            "order of the IDs kept"
        );
        for threads in [2, 3, 4, 7, 64] {
            let split = rows_by_ids(&r, PREFIX, ids.clone(), threads, &row).unwrap();
            assert_eq!(split, one, "{threads} threads");
        }
    }

    #[test]
    fn the_first_error_in_id_order_is_returned() {
        let s = store(4200);
        let r = s.read().unwrap();
        let ids: Vec<String> = (0..4200).map(|i| format!("{i:05}")).collect();
        // Fails at two IDs in different parts: the earlier one must win.
        let row = |id: String, _: &[u8]| -> Result<Option<String>, StoreError> {
            match id.as_str() {
                "01000" | "04000" => Err(StoreError::Corrupt(format!("bad {id}"))),
                _ => Ok(Some(id)),
            }
        };
        for threads in [1, 2, 4] {
            let err = rows_by_ids(&r, PREFIX, ids.clone(), threads, &row).unwrap_err();
            assert_eq!(
                err,
                StoreError::Corrupt("bad 01000".into()),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn a_store_without_siblings_reads_every_part_on_the_caller() {
        let s = store(3000);
        let r = s.read().unwrap();
        let ids: Vec<String> = (0..3000).map(|i| format!("{i:05}")).collect();
        let row = |id: String, _: &[u8]| -> Result<Option<String>, StoreError> { Ok(Some(id)) };
        // A write transaction gives no sibling.
        let w = s.write().unwrap();
        let from_write = rows_by_ids(&w, PREFIX, ids.clone(), 4, &row).unwrap();
        assert_eq!(from_write, rows_by_ids(&r, PREFIX, ids, 1, &row).unwrap());
    }

    #[test]
    fn the_setting_defaults_to_the_machine() {
        assert!(query_threads() >= 1);
    }
}
