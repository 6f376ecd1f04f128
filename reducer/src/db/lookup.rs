//! Instance look-ups by ID, on one thread or split between several.
//!
//! An index query that returns thousands of instances spends most of its time in look-ups of
//! instance keys scattered over the store (B-tree descents that miss the CPU caches), each
//! independent of the others. When the store gives read transactions on the same snapshot to
//! other threads ([`ReadTxn::sibling`]), `rows_by_ids` hands chunks of the IDs to other threads
//! as the index read yields them, so that the look-ups overlap the index read and each other,
//! and joins the chunks in order: the rows, their order and the error returned are those of a
//! look-up on one thread.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
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

/// IDs looked up together ([`ReadTxn::get_each_with`]): enough for the store to overlap the
/// cache misses of their look-ups.
const GROUP: usize = 16;

/// Calls `found` with each ID of `ids` whose instance exists (under the instance key space
/// `prefix`) and its stored bytes, in the order of `ids`, until `found` breaks or fails. IDs too
/// long for a key cannot name an instance and are skipped. The IDs are looked up in groups
/// ([`GROUP`]); after a break the rest of the group is looked up for nothing.
pub(crate) fn for_each_instance(
    txn: &dyn ReadTxn,
    prefix: &[u8],
    ids: impl Iterator<Item = String>,
    found: &mut Found<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    // One key buffer, cut back to the prefix for each ID; the group's keys end to end.
    let mut key = KeyBuf::with_prefix(prefix);
    let mut keys: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::with_capacity(GROUP);
    let mut group: Vec<Option<String>> = Vec::with_capacity(GROUP);
    let mut ids = ids.peekable();
    while ids.peek().is_some() {
        keys.clear();
        ends.clear();
        group.clear();
        for id in ids.by_ref() {
            key.truncate(prefix.len());
            key = key.str(&id);
            if key.as_bytes().len() > MAX_KEY_LEN {
                continue;
            }
            keys.extend_from_slice(key.as_bytes());
            ends.push(keys.len());
            group.push(Some(id));
            if group.len() == GROUP {
                break;
            }
        }
        let slices: Vec<&[u8]> = ends
            .iter()
            .scan(0, |start, &end| {
                Some(&keys[std::mem::replace(start, end)..end])
            })
            .collect();
        // The stored bytes are handed on where the store keeps them (no copy).
        let mut flow = Ok(ControlFlow::Continue(()));
        txn.get_each_with(&slices, &mut |i, v| {
            if let (Some(bytes), Some(id), Ok(ControlFlow::Continue(()))) =
                (v, group.get_mut(i).and_then(Option::take), &flow)
            {
                flow = found(id, bytes);
            }
        })?;
        if flow?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// IDs handed to a look-up thread at a time: small enough that the threads finish together,
/// large enough that taking one costs nothing next to its look-ups.
const CHUNK: usize = 512;

/// The rows `row` makes of the instances whose IDs `produce` hands to its sink (skipping
/// missing ones and those `row` turns down), in the order produced. Once `produce` has handed
/// over `2 × MIN_LOOKUPS_PER_THREAD` IDs, up to `threads - 1` threads, each in a sibling of
/// `txn`, start looking up chunks of them while `produce` goes on (an index read overlaps the
/// look-ups), and the caller joins them when `produce` is done. The rows, their order and the
/// error returned (`produce`'s, else the first in the order produced) are those of one thread.
pub(crate) fn rows_by_ids<R: Send>(
    txn: &dyn ReadTxn,
    prefix: &[u8],
    threads: usize,
    row: &MakeRow<'_, R>,
    produce: impl FnOnce(&mut dyn FnMut(String)) -> Result<(), StoreError>,
) -> Result<Vec<R>, StoreError> {
    let queue = Queue::default();
    thread::scope(|scope| {
        // Closes the queue however this closure ends, so that no thread waits for ever.
        let _close = CloseOnDrop(&queue);
        let mut workers = Vec::new();
        let mut started = false;
        let mut pending: Vec<String> = Vec::new();
        let mut chunks = 0;
        produce(&mut |id| {
            pending.push(id);
            if !started {
                if pending.len() < 2 * MIN_LOOKUPS_PER_THREAD || threads < 2 {
                    return;
                }
                started = true;
                for _ in 1..threads {
                    // No sibling (a commit came in between) or no thread (the OS refused
                    // one): fewer threads, down to the caller alone.
                    let Some(sibling) = txn.sibling() else { break };
                    let queue = &queue;
                    let spawned = thread::Builder::new()
                        .name("query-lookup".into())
                        .spawn_scoped(scope, move || drain(&*sibling, prefix, queue, row));
                    workers.extend(spawned.ok());
                }
            }
            if pending.len() >= CHUNK {
                let mut full = std::mem::replace(&mut pending, Vec::with_capacity(CHUNK));
                // More than a chunk only when the threads have just started.
                while full.len() > CHUNK {
                    let rest = full.split_off(CHUNK);
                    queue.push(chunks, std::mem::replace(&mut full, rest));
                    chunks += 1;
                }
                queue.push(chunks, full);
                chunks += 1;
            }
        })?;
        if !started {
            return rows_of(txn, prefix, pending, row);
        }
        if !pending.is_empty() {
            queue.push(chunks, pending);
        }
        queue.close(false);
        // The caller looks chunks up too, then gathers every chunk's rows in order.
        let mut done = drain(txn, prefix, &queue, row);
        for worker in workers {
            let part = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            done.extend(part);
        }
        done.sort_unstable_by_key(|(n, _)| *n);
        let mut rows = Vec::with_capacity(
            done.iter()
                .map(|(_, r)| r.as_ref().map_or(0, Vec::len))
                .sum(),
        );
        for (_, part) in done {
            rows.extend(part?);
        }
        Ok(rows)
    })
}

/// Chunks of IDs waiting for a look-up thread, numbered in the order produced.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    chunks: VecDeque<(usize, Vec<String>)>,
    /// No chunk comes any more.
    closed: bool,
    /// Threads waiting for a chunk.
    waiting: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, n: usize, ids: Vec<String>) {
        let mut state = self.lock();
        state.chunks.push_back((n, ids));
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.ready.notify_one();
        }
    }

    /// Ends the queue; `discard` drops the chunks still waiting (the query failed).
    fn close(&self, discard: bool) {
        let mut state = self.lock();
        state.closed = true;
        if discard {
            state.chunks.clear();
        }
        let waiting = state.waiting > 0;
        drop(state);
        // A wake-up is a system call: only when a thread waits (never for a small query).
        if waiting {
            self.ready.notify_all();
        }
    }

    /// The next chunk, waiting for one while the queue is open; `None` once it is closed and
    /// empty.
    fn pop(&self) -> Option<(usize, Vec<String>)> {
        let mut state = self.lock();
        loop {
            if let Some(chunk) = state.chunks.pop_front() {
                return Some(chunk);
            }
            if state.closed {
                return None;
            }
            state.waiting += 1;
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
    }
}

/// Closes its queue, dropping what waits, when dropped: on an error or a panic of the
/// producer; after a normal end the queue is already closed and empty.
struct CloseOnDrop<'q>(&'q Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close(true);
    }
}

/// Looks up chunks from `queue` until it is closed and empty: each chunk's number and rows.
fn drain<R>(
    txn: &dyn ReadTxn,
    prefix: &[u8],
    queue: &Queue,
    row: &MakeRow<'_, R>,
) -> Vec<(usize, Result<Vec<R>, StoreError>)> {
    let mut done = Vec::new();
    while let Some((n, ids)) = queue.pop() {
        done.push((n, rows_of(txn, prefix, ids, row)));
    }
    done
}

/// The rows of `ids`, read on the current thread; stops at the first error.
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

    /// A producer handing over `ids` in order.
    fn handing(ids: &[String]) -> impl FnOnce(&mut dyn FnMut(String)) -> Result<(), StoreError> {
        move |sink| {
            ids.iter().cloned().for_each(sink);
            Ok(())
        }
    }

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
        let one = rows_by_ids(&r, PREFIX, 1, &row, handing(&ids)).unwrap();
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
            let split = rows_by_ids(&r, PREFIX, threads, &row, handing(&ids)).unwrap();
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
            let err = rows_by_ids(&r, PREFIX, threads, &row, handing(&ids)).unwrap_err();
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
        let from_write = rows_by_ids(&w, PREFIX, 4, &row, handing(&ids)).unwrap();
        assert_eq!(
            from_write,
            rows_by_ids(&r, PREFIX, 1, &row, handing(&ids)).unwrap()
        );
    }

    #[test]
    fn the_producers_error_wins_and_no_thread_is_left_waiting() {
        let s = store(6000);
        let r = s.read().unwrap();
        // Fails at ID 3000 too, which the threads have looked up by the time the producer fails.
        let row = |id: String, _: &[u8]| -> Result<Option<String>, StoreError> {
            match id.as_str() {
                "03000" => Err(StoreError::Corrupt("bad row".into())),
                _ => Ok(Some(id)),
            }
        };
        for threads in [1, 2, 4] {
            let err = rows_by_ids(&r, PREFIX, threads, &row, |sink| {
                (0..6000).map(|i| format!("{i:05}")).for_each(sink);
                Err(StoreError::Corrupt("bad index".into()))
            })
            .unwrap_err();
            assert_eq!(
                err,
                StoreError::Corrupt("bad index".into()),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn a_producer_that_panics_after_the_threads_started_unwinds_to_the_caller() {
        let s = store(6000);
        let r = s.read().unwrap();
        let row = |id: String, _: &[u8]| -> Result<Option<String>, StoreError> { Ok(Some(id)) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rows_by_ids(&r, PREFIX, 4, &row, |sink| {
                (0..5000).map(|i| format!("{i:05}")).for_each(sink);
                panic!("producer gave up");
            })
        }));
        assert!(outcome.is_err());
    }

    #[test]
    fn the_setting_defaults_to_the_machine() {
        assert!(query_threads() >= 1);
    }
}
