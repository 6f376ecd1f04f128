//! The storage interface: one synchronous, ordered key-value store with read and write
//! transactions, modelled on LMDB.
//!
//! The replication engine and the document reducer write through the *same* [`WriteTxn`], so a
//! record, its log head and the state it produces commit together or not at all. Two backends
//! implement [`Store`]: [`memory::MemoryStore`] here (tests, simulator) and `LmdbStore` in the
//! daemon crate. Both pass the suite in [`conformance`]. The full contract is written down in
//! `spec/storage.md`; the short version:
//!
//! * keys are compared as unsigned bytes; keys are 1..=[`MAX_KEY_LEN`] bytes, values
//!   0..=[`MAX_VALUE_LEN`] bytes, anything else is rejected with an error (never truncated);
//! * a [`ReadTxn`] from [`Store::read`] sees one consistent committed snapshot;
//! * at most one [`WriteTxn`] exists at a time; it sees its own pending writes, and either
//!   [`WriteTxn::commit`] makes all of them visible (and durable, per backend) at once, or
//!   dropping it discards all of them;
//! * after an error from a write transaction the caller must drop it (the backends may refuse
//!   every later call on it), except for rejected arguments ([`StoreError::is_invalid_input`]),
//!   which are detected before anything happens.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::{self, ThreadId};

use sha2::{Digest, Sha256};

pub mod conformance;
#[cfg(feature = "testing")]
mod faulty;
pub mod key;
pub mod memory;

/// Longest key accepted, in bytes. This is LMDB's default compile-time limit; the memory store
/// enforces it too so that code tested in the simulator also runs on disk.
pub const MAX_KEY_LEN: usize = 511;

/// Largest value accepted, in bytes (1 GiB). Far above anything the engine stores; it exists
/// so that a runaway value fails loudly instead of exhausting memory or the map.
pub const MAX_VALUE_LEN: usize = 1 << 30;

/// Why a storage operation failed. Messages say what happened and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is empty or longer than [`MAX_KEY_LEN`]; a caller bug, nothing was changed.
    #[error("invalid key of {len} bytes: keys must be 1..={max} bytes", max = MAX_KEY_LEN)]
    InvalidKey {
        /// Length of the rejected key.
        len: usize,
    },
    /// The value is longer than [`MAX_VALUE_LEN`]; a caller bug, nothing was changed.
    #[error("value of {len} bytes is too large: the limit is {max} bytes", max = MAX_VALUE_LEN)]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
    },
    /// The store has no room left (LMDB map full, disk full). The transaction must be dropped;
    /// raise the map size or free disk space, then retry.
    #[error("storage is full: {0}")]
    Full(String),
    /// The operation cannot proceed now (a second write transaction on the same thread, a store
    /// already open elsewhere in this process). Finish or drop the other user first.
    #[error("storage is busy: {0}")]
    Busy(String),
    /// Stored bytes do not have the expected form; the store needs repair or restoring.
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure (I/O error, LMDB error), with what was being done.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A failure injected on purpose by `memory::FaultyStore` (feature `testing`).
    #[error("injected storage fault on {op:?} call #{call}")]
    Injected {
        /// The kind of operation that failed.
        op: memory::FaultOp,
        /// Which call of that kind failed (1-based, counted since the store was created).
        call: u64,
    },
}

impl StoreError {
    /// Whether the error is a rejected argument ([`InvalidKey`](Self::InvalidKey),
    /// [`ValueTooLarge`](Self::ValueTooLarge)). Those are detected before anything happens and
    /// leave the transaction usable; after any other error a write transaction must be dropped.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            StoreError::InvalidKey { .. } | StoreError::ValueTooLarge { .. }
        )
    }
}

/// The callback of [`ReadTxn::scan`]: gets each key and value, returns whether to go on.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// The visitor of [`ReadTxn::try_scan`]: a [`Visit`] that may fail, which ends the scan.
pub type TryVisit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StoreError> + 'a;

/// Owned key-value pairs, as returned by [`scan_collect`].
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A start and an end bound over keys, as returned by [`KeyRange::normalized`].
pub type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Which way a scan walks the key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending byte order.
    Forward,
    /// Descending byte order.
    Reverse,
}

/// A range of keys for [`ReadTxn::scan`]: a start and an end [`Bound`] in byte order.
///
/// Bounds may be any byte strings (empty, longer than [`MAX_KEY_LEN`], inverted); a range that
/// contains no valid key simply scans nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange<'a> {
    start: Bound<Cow<'a, [u8]>>,
    end: Bound<Cow<'a, [u8]>>,
}

fn borrow_bound<'b>(b: &'b Bound<Cow<'_, [u8]>>) -> Bound<&'b [u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn cow_bound(b: Bound<&[u8]>) -> Bound<Cow<'_, [u8]>> {
    b.map(Cow::Borrowed)
}

impl<'a> KeyRange<'a> {
    /// A range with arbitrary bounds.
    pub fn new(start: Bound<&'a [u8]>, end: Bound<&'a [u8]>) -> Self {
        KeyRange {
            start: cow_bound(start),
            end: cow_bound(end),
        }
    }

    /// Every key.
    pub fn all() -> Self {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key that starts with `prefix` (every key if `prefix` is empty).
    pub fn prefix(prefix: &'a [u8]) -> Self {
        let end = match prefix_successor(prefix) {
            Some(next) => Bound::Excluded(Cow::Owned(next)),
            None => Bound::Unbounded,
        };
        KeyRange {
            start: Bound::Included(Cow::Borrowed(prefix)),
            end,
        }
    }

    /// Every key `>= key`.
    pub fn starting_at(key: &'a [u8]) -> Self {
        Self::new(Bound::Included(key), Bound::Unbounded)
    }

    /// Every key `> key`.
    pub fn after(key: &'a [u8]) -> Self {
        Self::new(Bound::Excluded(key), Bound::Unbounded)
    }

    /// Every key `< key`.
    pub fn before(key: &'a [u8]) -> Self {
        Self::new(Bound::Unbounded, Bound::Excluded(key))
    }

    /// Every key in the half-open interval `[start, end)`.
    pub fn between(start: &'a [u8], end: &'a [u8]) -> Self {
        Self::new(Bound::Included(start), Bound::Excluded(end))
    }

    /// The start bound.
    pub fn start(&self) -> Bound<&[u8]> {
        borrow_bound(&self.start)
    }

    /// The end bound.
    pub fn end(&self) -> Bound<&[u8]> {
        borrow_bound(&self.end)
    }

    /// Whether `key` lies inside the bounds (byte order).
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = match self.start() {
            Bound::Included(s) => key >= s,
            Bound::Excluded(s) => key > s,
            Bound::Unbounded => true,
        };
        let below = match self.end() {
            Bound::Included(e) => key <= e,
            Bound::Excluded(e) => key < e,
            Bound::Unbounded => true,
        };
        above && below
    }

    /// Bounds rewritten so that they only mention valid keys (1..=[`MAX_KEY_LEN`] bytes) and
    /// are never inverted, selecting exactly the same valid keys; `None` when no valid key can
    /// be in the range. Backends call this before handing bounds to an ordered map or cursor,
    /// which may reject empty or overlong bounds or panic on inverted ones.
    pub fn normalized(&self) -> Option<Bounds<'_>> {
        // A valid key never equals an overlong bound `k`; it compares to `k` exactly as it
        // compares to `k[..MAX_KEY_LEN]`, except that it is smaller when equal to that prefix.
        let start = match self.start() {
            Bound::Included([]) | Bound::Excluded([]) | Bound::Unbounded => Bound::Unbounded,
            Bound::Included(k) | Bound::Excluded(k) if k.len() > MAX_KEY_LEN => {
                Bound::Excluded(&k[..MAX_KEY_LEN])
            }
            b => b,
        };
        let end = match self.end() {
            Bound::Included([]) | Bound::Excluded([]) => return None,
            Bound::Included(k) | Bound::Excluded(k) if k.len() > MAX_KEY_LEN => {
                Bound::Included(&k[..MAX_KEY_LEN])
            }
            b => b,
        };
        let (s, s_incl) = match start {
            Bound::Included(s) => (s, true),
            Bound::Excluded(s) => (s, false),
            Bound::Unbounded => return Some((start, end)),
        };
        let (e, e_incl) = match end {
            Bound::Included(e) => (e, true),
            Bound::Excluded(e) => (e, false),
            Bound::Unbounded => return Some((start, end)),
        };
        if s > e || (s == e && !(s_incl && e_incl)) {
            return None;
        }
        Some((start, end))
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None` if
/// there is none (`prefix` is empty or all `0xff`). Used to turn a prefix into a range end.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut next = prefix[..=last].to_vec();
    next[last] += 1;
    Some(next)
}

/// Checks a key against the contract ([`StoreError::InvalidKey`]). Backends call this first.
pub fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidKey { len: key.len() });
    }
    Ok(())
}

/// Checks a value against the contract ([`StoreError::ValueTooLarge`]). Backends call this first.
pub fn check_value(value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLarge { len: value.len() });
    }
    Ok(())
}

/// A key-value store with LMDB's transaction model. Handles are typically cheap to clone and
/// shared by everything that works on one repository.
pub trait Store {
    /// A read transaction borrowed from this store.
    type Read<'a>: ReadTxn
    where
        Self: 'a;
    /// A write transaction borrowed from this store.
    type Write<'a>: WriteTxn
    where
        Self: 'a;

    /// Opens a read transaction on the latest committed state; it keeps seeing that snapshot,
    /// whatever commits later. Keep read transactions short: LMDB cannot reuse pages a reader
    /// may still see.
    fn read(&self) -> Result<Self::Read<'_>, StoreError>;

    /// Opens the single write transaction. Blocks while another thread holds one; returns
    /// [`StoreError::Busy`] if the calling thread already holds one (waiting would deadlock).
    /// Write transactions must be finished on the thread that opened them.
    fn write(&self) -> Result<Self::Write<'_>, StoreError>;
}

/// Reading operations, shared by read and write transactions. Object safe, so that the engine
/// can hand `&mut dyn WriteTxn` (or `&dyn ReadTxn`) to application hooks.
pub trait ReadTxn {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Calls `read` with the value stored under `key` (`None` when there is none), lent
    /// without a copy where the store can: a query parses each instance it returns straight
    /// from the store's memory. The default copies through [`get`](Self::get).
    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        read(self.get(key)?.as_deref());
        Ok(())
    }

    /// Calls `read` with the position in `keys` and the value (`None` when there is none) of
    /// each key, in the order of `keys`, lent as by [`get_with`](Self::get_with): for many
    /// look-ups at once (an index query's instances). A store can overlap their cache misses
    /// (the memory store descends its tree for several keys in step); the default looks them up
    /// one by one. An invalid key fails the call, possibly before any value is read.
    fn get_each_with(
        &self,
        keys: &[&[u8]],
        read: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<(), StoreError> {
        for (i, key) in keys.iter().enumerate() {
            self.get_with(key, &mut |v| read(i, v))?;
        }
        Ok(())
    }

    /// Another read transaction on exactly this one's snapshot, that another thread can use
    /// while this one is in use: a large query splits its look-ups between threads with it.
    /// `None` (the default) when the store cannot give one now, e.g. LMDB after a later commit,
    /// or for a write transaction; callers then read on one thread.
    fn sibling(&self) -> Option<Box<dyn ReadTxn + Send + '_>> {
        None
    }

    /// Calls `visit` with each key-value pair in `range`, in key byte order (`dir`), until the
    /// range is exhausted or `visit` returns [`ControlFlow::Break`].
    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError>;

    /// [`scan`](Self::scan) with a visitor that can fail (a pair that does not decode): the
    /// scan ends at the visitor's first error, which is returned.
    fn try_scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut TryVisit<'_>,
    ) -> Result<(), StoreError> {
        let mut failure = None;
        self.scan(range, dir, &mut |k, v| {
            visit(k, v).unwrap_or_else(|e| {
                failure = Some(e);
                ControlFlow::Break(())
            })
        })?;
        failure.map_or(Ok(()), Err)
    }
}

/// Writing operations. Reads through a write transaction see its own pending writes.
pub trait WriteTxn: ReadTxn {
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Stores `value` under `key` if the key holds nothing (and returns `None`); if it holds a
    /// value, returns that value and writes nothing. For writers that expect a key to be new
    /// but must know what it held (the fold's undo log): stores with a native form (LMDB's
    /// no-overwrite put) do it in one look-up where a `get` and a `put` take two.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(key)? {
            Some(old) => Ok(Some(old)),
            None => self.put(key, value).map(|()| None),
        }
    }

    /// Removes `key`; returns whether it existed (as seen by this transaction).
    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError>;

    /// Makes every write of this transaction visible to later transactions, atomically. On
    /// error nothing of the transaction is visible. Dropping a transaction without committing
    /// aborts it and leaves no trace.
    fn commit(self) -> Result<(), StoreError>
    where
        Self: Sized;
}

/// Collects up to `limit` pairs of `range`, in `dir` order.
pub fn scan_collect<T: ReadTxn + ?Sized>(
    txn: &T,
    range: KeyRange<'_>,
    dir: Direction,
    limit: usize,
) -> Result<Entries, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    txn.scan(range, dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        if out.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(out)
}

/// Collects up to `limit` pairs whose key starts with `prefix`, in ascending key order.
pub fn scan_prefix_collect<T: ReadTxn + ?Sized>(
    txn: &T,
    prefix: &[u8],
    limit: usize,
) -> Result<Entries, StoreError> {
    scan_collect(txn, KeyRange::prefix(prefix), Direction::Forward, limit)
}

/// A deterministic digest of everything `txn` sees: SHA2-256 over every pair in ascending key
/// order, each encoded as `len(key) u64 BE ‖ key ‖ len(value) u64 BE ‖ value`. Equal digests
/// mean equal contents, whichever backend or history produced them.
pub fn content_digest<T: ReadTxn + ?Sized>(txn: &T) -> Result<[u8; 32], StoreError> {
    let mut hasher = Sha256::new();
    txn.scan(KeyRange::all(), Direction::Forward, &mut |k, v| {
        hasher.update((k.len() as u64).to_be_bytes());
        hasher.update(k);
        hasher.update((v.len() as u64).to_be_bytes());
        hasher.update(v);
        ControlFlow::Continue(())
    })?;
    Ok(hasher.finalize().into())
}

/// Admits one writer at a time within a process, and turns the self-deadlock of opening a
/// second write transaction on the same thread into [`StoreError::Busy`]. Shared by backends.
#[derive(Debug, Default)]
pub struct WriterGate {
    owner: Mutex<Option<ThreadId>>,
    released: Condvar,
}

/// Proof of holding a [`WriterGate`]; dropping it lets the next writer in. Not `Send`: the
/// writer must finish on the thread that entered.
#[derive(Debug)]
pub struct WriterTicket<'a> {
    gate: &'a WriterGate,
    _not_send: PhantomData<*const ()>,
}

impl WriterGate {
    /// A gate with no writer inside.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no other thread is writing, then admits the caller.
    pub fn enter(&self) -> Result<WriterTicket<'_>, StoreError> {
        let me = thread::current().id();
        // The guarded state is a plain Option that is never left half-updated, so a poisoned
        // lock (a panic elsewhere while holding it) is safe to keep using.
        let mut owner = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match *owner {
                None => {
                    *owner = Some(me);
                    return Ok(WriterTicket {
                        gate: self,
                        _not_send: PhantomData,
                    });
                }
                Some(holder) if holder == me => {
                    return Err(StoreError::Busy(
                        "this thread already holds the write transaction; commit or drop it \
                         before opening another"
                            .into(),
                    ));
                }
                Some(_) => {
                    owner = self
                        .released
                        .wait(owner)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

impl Drop for WriterTicket<'_> {
    fn drop(&mut self) {
        *self
            .gate
            .owner
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.gate.released.notify_one();
    }
}
