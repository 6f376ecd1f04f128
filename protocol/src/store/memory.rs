//! In-memory backends: [`MemoryStore`] for tests and the simulator, and (with the `testing`
//! feature) `FaultyStore`, a wrapper around any [`Store`] that fails chosen calls on purpose.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::{Bound, ControlFlow};
use std::sync::{Arc, Mutex, PoisonError};

use self::map_key::MapKey;
use self::tree::{Bytes, Tree};
use super::{
    Bounds, Direction, KeyRange, ReadTxn, Store, StoreError, Visit, WriteTxn, WriterGate,
    WriterTicket, check_key, check_value, content_digest,
};

mod changes;
mod map_key;
mod tree;

pub use self::changes::{ChangeMap, Changes, Layered};

/// The committed map. Values are shared slices: a write transaction's first change to a B-tree
/// node copies the node (path copying keeps snapshots cheap), and copying an `Arc` costs a
/// reference count where copying a `Vec` cost an allocation and a memcpy. Keys are mostly
/// inline ([`MapKey`]).
type Map = Tree;

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
/// transaction is an O(1) snapshot of the map. A write transaction reads through a snapshot and
/// keeps its changes in a private ordered overlay; commit applies the overlay to the committed
/// map under the lock. The snapshot is released first, so when no read transaction holds an
/// older snapshot the map's nodes have one owner and are changed in place instead of copied
/// (path copying on every put cost most of the time of large stores). "Durable" here means
/// "committed to the shared state".
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

/// Changes of a write transaction not yet committed: a value, or `None` for a deletion.
type Overlay = BTreeMap<MapKey, Option<Bytes>>;

/// The write transaction of [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryWrite<'a> {
    store: &'a MemoryStore,
    /// The committed map when the transaction began (no other writer can change it meanwhile).
    base: Map,
    /// This transaction's changes, over `base`.
    overlay: Overlay,
    /// `put` calls, bytes passed to them and deletions of existing keys, for the statistics.
    delta: MemoryStats,
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
        let base = self.lock().0.clone();
        Ok(MemoryWrite {
            store: self,
            base,
            overlay: Overlay::new(),
            delta: MemoryStats::default(),
            committed: false,
            _ticket: ticket,
        })
    }
}

fn map_get(map: &Map, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    check_key(key)?;
    Ok(map.get(key).map(|v| v.to_vec()))
}

/// The start of a scan of `bounds` in `dir`: where the tree's iterator begins.
fn near_end(bounds: Bounds<'_>, dir: Direction) -> Bound<&[u8]> {
    match dir {
        Direction::Forward => bounds.0,
        Direction::Reverse => bounds.1,
    }
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
    let forward = dir == Direction::Forward;
    // Whether the visitor stopped early makes no difference to the caller.
    let _stopped = map
        .range_from(near_end(bounds, dir), forward)
        .try_for_each(|(k, v)| {
            if before_far_end(bounds, dir, k) {
                visit(k, v)
            } else {
                ControlFlow::Break(())
            }
        });
    Ok(())
}

/// Whether `key`, reached by a scan in `dir`, is still inside the far bound of `bounds`.
fn before_far_end(bounds: Bounds<'_>, dir: Direction, key: &[u8]) -> bool {
    match (dir, bounds) {
        (Direction::Forward, (_, Bound::Included(end))) => key <= end,
        (Direction::Forward, (_, Bound::Excluded(end))) => key < end,
        (Direction::Reverse, (Bound::Included(start), _)) => key >= start,
        (Direction::Reverse, (Bound::Excluded(start), _)) => key > start,
        (_, _) => true,
    }
}

impl ReadTxn for MemoryRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        map_get(&self.map, key)
    }

    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        check_key(key)?;
        read(self.map.get(key).map(|v| &v[..]));
        Ok(())
    }

    /// Descends the tree for groups of keys in step, so that their cache misses overlap.
    fn get_each_with(
        &self,
        keys: &[&[u8]],
        read: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| check_key(k))?;
        self.map
            .get_each(keys, &mut |i, v| read(i, v.map(|v| &v[..])));
        Ok(())
    }

    /// A snapshot is an immutable map: its clone is the same snapshot.
    fn sibling(&self) -> Option<Box<dyn ReadTxn + Send + '_>> {
        Some(Box::new(self.clone()))
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
        check_key(key)?;
        match self.overlay.get(key) {
            Some(change) => Ok(change.as_ref().map(|v| v.to_vec())),
            None => Ok(self.base.get(key).map(|v| v.to_vec())),
        }
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        if self.overlay.is_empty() {
            return map_scan(&self.base, &range, dir, visit);
        }
        let Some(bounds) = range.normalized() else {
            return Ok(());
        };
        let base = self
            .base
            .range_from(near_end(bounds, dir), dir == Direction::Forward)
            .map(|(k, v)| (k, &v[..]));
        let base = base.take_while(|(k, _)| before_far_end(bounds, dir, k));
        let overlay = self
            .overlay
            .range::<[u8], _>(bounds)
            .map(|(k, v)| (k.as_slice(), v.as_deref()));
        // Whether the visitor stopped early makes no difference to the caller.
        let _stopped = match dir {
            Direction::Forward => merge(base, overlay, |a, b| a.cmp(b), visit),
            Direction::Reverse => merge(base, overlay.rev(), |a, b| b.cmp(a), visit),
        };
        Ok(())
    }
}

/// Visits the union of a snapshot's pairs and a transaction's overlay, both in the order
/// `order` gives (ascending or descending keys); the overlay wins on equal keys and its
/// deletions hide the snapshot's pairs.
fn merge<'m>(
    base: impl Iterator<Item = (&'m [u8], &'m [u8])>,
    overlay: impl Iterator<Item = (&'m [u8], Option<&'m [u8]>)>,
    order: impl Fn(&[u8], &[u8]) -> std::cmp::Ordering,
    visit: &mut Visit<'_>,
) -> ControlFlow<()> {
    use std::cmp::Ordering;
    let mut base = base.peekable();
    let mut overlay = overlay.peekable();
    loop {
        let next = match (base.peek(), overlay.peek()) {
            (None, None) => return ControlFlow::Continue(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((b, _)), Some((o, _))) => order(b, o),
        };
        match next {
            Ordering::Less => {
                if let Some((k, v)) = base.next() {
                    visit(k, v)?;
                }
            }
            Ordering::Equal | Ordering::Greater => {
                if next == Ordering::Equal {
                    base.next();
                }
                if let Some((k, Some(v))) = overlay.next() {
                    visit(k, v)?;
                }
            }
        }
    }
}

impl WriteTxn for MemoryWrite<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(value)?;
        self.overlay
            .insert(MapKey::from(key), Some(Bytes::from(value)));
        let d = &mut self.delta;
        d.puts += 1;
        d.bytes_written += (key.len() + value.len()) as u64;
        Ok(())
    }

    /// One descent of the overlay (and of the committed map when the overlay does not hold
    /// the key) where a `get` and a `put` take two of the overlay.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let slot = match self.overlay.entry(MapKey::from(key)) {
            Entry::Occupied(change) => match change.get() {
                Some(held) => return Ok(Some(held.to_vec())),
                // Deleted by this transaction: absent in its view.
                None => Entry::Occupied(change),
            },
            Entry::Vacant(slot) => match self.base.get(key) {
                Some(held) => return Ok(Some(held.to_vec())),
                None => Entry::Vacant(slot),
            },
        };
        check_value(value)?;
        let value_bytes = Some(Bytes::from(value));
        match slot {
            Entry::Occupied(mut change) => {
                change.insert(value_bytes);
            }
            Entry::Vacant(slot) => {
                slot.insert(value_bytes);
            }
        }
        let d = &mut self.delta;
        d.puts += 1;
        d.bytes_written += (key.len() + value.len()) as u64;
        Ok(None)
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let existed = match self.overlay.get(key) {
            Some(change) => change.is_some(),
            None => self.base.get(key).is_some(),
        };
        if existed {
            self.delta.deletes += 1;
            self.overlay.insert(MapKey::from(key), None);
        }
        Ok(existed)
    }

    fn commit(mut self) -> Result<(), StoreError> {
        // Release the snapshot first: without other snapshots the committed map's nodes then
        // have one owner and the changes below are made in place.
        drop(std::mem::take(&mut self.base));
        let overlay = std::mem::take(&mut self.overlay);
        let mut guard = self.store.lock();
        let (map, stats) = &mut *guard;
        let (mut added_keys, mut added_bytes) = (0u64, 0u64);
        let (mut removed_keys, mut removed_bytes) = (0u64, 0u64);
        for (key, change) in overlay {
            let klen = key.as_slice().len() as u64;
            let old = match change {
                Some(value) => {
                    added_keys += 1;
                    added_bytes += klen + value.len() as u64;
                    map.insert(key, value)
                }
                None => map.remove(key.as_slice()),
            };
            if let Some(old) = old {
                removed_keys += 1;
                removed_bytes += klen + old.len() as u64;
            }
        }
        let d = self.delta;
        stats.commits += 1;
        stats.puts += d.puts;
        stats.deletes += d.deletes;
        stats.bytes_written += d.bytes_written;
        stats.keys = (stats.keys + added_keys).saturating_sub(removed_keys);
        stats.live_bytes = (stats.live_bytes + added_bytes).saturating_sub(removed_bytes);
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
