//! In-memory backends: [`MemoryStore`] for tests and the simulator, and (with the `testing`
//! feature) `FaultyStore`, a wrapper around any [`Store`] that fails chosen calls on purpose.

use std::sync::{Arc, Mutex, PoisonError};

use imbl::OrdMap;

use super::{
    Direction, KeyRange, ReadTxn, Store, StoreError, Visit, WriteTxn, WriterGate, WriterTicket,
    check_key, check_value, content_digest,
};

/// Keys and values are shared slices: a write transaction's first change to a B-tree node copies
/// the node (path copying keeps snapshots cheap), and copying `Arc`s costs a reference count
/// each where copying `Vec`s cost an allocation and a memcpy each.
type Bytes = Arc<[u8]>;
type Map = OrdMap<Bytes, Bytes>;

/// Counters over the life of a [`MemoryStore`]'s shared state (all handles together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Write transactions dropped without commit (including failed ones).
    pub aborts: u64,
    /// `put` calls in committed transactions.
    pub puts: u64,
    /// `delete` calls that removed a key, in committed transactions.
    pub deletes: u64,
    /// Key plus value bytes passed to `put` in committed transactions.
    pub bytes_written: u64,
    /// Keys stored now.
    pub keys: u64,
    /// Key plus value bytes stored now.
    pub live_bytes: u64,
}

#[derive(Debug, Default)]
struct Shared {
    committed: Mutex<(Map, MemoryStats)>,
    gate: WriterGate,
}

/// An in-memory [`Store`] over a persistent ordered map.
///
/// Cloning the handle (or calling [`reopen`](Self::reopen)) shares the same committed state, as
/// reopening a disk store would: the simulator models an engine crash by dropping the engine
/// (its uncommitted transactions vanish) and handing a reopened handle to a new one. A read
/// transaction is an O(1) snapshot of the map; a write transaction mutates a private copy and
/// swaps it in on commit. "Durable" here means "committed to the shared state".
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another handle on the same committed state (what survives a crash).
    pub fn reopen(&self) -> Self {
        self.clone()
    }

    /// An independent store that starts with a copy of this one's committed contents
    /// (statistics start from zero, apart from the size of the contents).
    pub fn fork(&self) -> Self {
        let (map, stats) = self.lock().clone();
        let stats = MemoryStats {
            keys: stats.keys,
            live_bytes: stats.live_bytes,
            ..Default::default()
        };
        let shared = Shared {
            committed: Mutex::new((map, stats)),
            gate: WriterGate::new(),
        };
        MemoryStore {
            shared: Arc::new(shared),
        }
    }

    /// Counters for tests and the simulator.
    pub fn stats(&self) -> MemoryStats {
        self.lock().1
    }

    /// [`content_digest`] of the committed contents.
    pub fn digest(&self) -> [u8; 32] {
        let snapshot = MemoryRead {
            map: self.lock().0.clone(),
        };
        // Scanning a snapshot of the in-memory map cannot fail.
        content_digest(&snapshot).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Map, MemoryStats)> {
        // The map and counters are replaced as a whole under the lock, never left half-updated,
        // so the state behind a poisoned lock is still consistent.
        self.shared
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read transaction of [`MemoryStore`]: a frozen snapshot, independent of the store handle.
#[derive(Debug, Clone)]
pub struct MemoryRead {
    map: Map,
}

/// The write transaction of [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryWrite<'a> {
    store: &'a MemoryStore,
    map: Map,
    delta: MemoryStats,
    removed_keys: u64,
    removed_bytes: u64,
    committed: bool,
    _ticket: WriterTicket<'a>,
}

impl Store for MemoryStore {
    type Read<'a> = MemoryRead;
    type Write<'a> = MemoryWrite<'a>;

    fn read(&self) -> Result<MemoryRead, StoreError> {
        Ok(MemoryRead {
            map: self.lock().0.clone(),
        })
    }

    fn write(&self) -> Result<MemoryWrite<'_>, StoreError> {
        let ticket = self.shared.gate.enter()?;
        let map = self.lock().0.clone();
        Ok(MemoryWrite {
            store: self,
            map,
            delta: MemoryStats::default(),
            removed_keys: 0,
            removed_bytes: 0,
            committed: false,
            _ticket: ticket,
        })
    }
}

fn map_get(map: &Map, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    check_key(key)?;
    Ok(map.get(key).map(|v| v.to_vec()))
}

fn map_scan(
    map: &Map,
    range: &KeyRange<'_>,
    dir: Direction,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let Some(bounds) = range.normalized() else {
        return Ok(());
    };
    let mut iter = map.range::<_, [u8]>(bounds);
    let mut step = |(k, v): (&Bytes, &Bytes)| visit(k, v);
    // Whether the visitor stopped early makes no difference to the caller.
    let _stopped = match dir {
        Direction::Forward => iter.try_for_each(&mut step),
        Direction::Reverse => iter.rev().try_for_each(&mut step),
    };
    Ok(())
}

impl ReadTxn for MemoryRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        map_get(&self.map, key)
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        map_scan(&self.map, &range, dir, visit)
    }
}

impl ReadTxn for MemoryWrite<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        map_get(&self.map, key)
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        map_scan(&self.map, &range, dir, visit)
    }
}

impl MemoryWrite<'_> {
    fn forget(&mut self, key: &[u8], old: Option<Bytes>) {
        if let Some(old) = old {
            self.removed_keys += 1;
            self.removed_bytes += (key.len() + old.len()) as u64;
        }
    }
}

impl WriteTxn for MemoryWrite<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(value)?;
        let old = self.map.insert(Bytes::from(key), Bytes::from(value));
        self.forget(key, old);
        let d = &mut self.delta;
        d.puts += 1;
        d.bytes_written += (key.len() + value.len()) as u64;
        d.keys += 1;
        d.live_bytes += (key.len() + value.len()) as u64;
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let old = self.map.remove(key);
        let existed = old.is_some();
        self.forget(key, old);
        if existed {
            self.delta.deletes += 1;
        }
        Ok(existed)
    }

    fn commit(mut self) -> Result<(), StoreError> {
        let mut guard = self.store.lock();
        let (map, stats) = &mut *guard;
        *map = std::mem::take(&mut self.map);
        let d = self.delta;
        stats.commits += 1;
        stats.puts += d.puts;
        stats.deletes += d.deletes;
        stats.bytes_written += d.bytes_written;
        stats.keys = (stats.keys + d.keys).saturating_sub(self.removed_keys);
        stats.live_bytes = (stats.live_bytes + d.live_bytes).saturating_sub(self.removed_bytes);
        self.committed = true;
        Ok(())
    }
}

impl Drop for MemoryWrite<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.store.lock().1.aborts += 1;
        }
    }
}

/// The kinds of store call a fault injector (`FaultyStore`, feature `testing`) can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// [`Store::read`].
    Read,
    /// [`Store::write`].
    Write,
    /// [`ReadTxn::get`], in read or write transactions.
    Get,
    /// [`ReadTxn::scan`], in read or write transactions.
    Scan,
    /// [`WriteTxn::put`].
    Put,
    /// [`WriteTxn::delete`].
    Delete,
    /// [`WriteTxn::commit`].
    Commit,
}

#[cfg(feature = "testing")]
pub use super::faulty::{FaultyRead, FaultyStore, FaultyWrite};
