//! A write transaction wrapper that remembers, for every key a record writes, the value it had
//! before (the record's undo log), and which keys and ranges the record read (its footprint,
//! see [`super::Access`]).

use super::UndoLog;
use foldhash::HashMap;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::ops::Bound;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, Visit, WriteTxn};

/// A scanned range, with owned bounds.
pub(crate) type OwnedRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Passes reads and writes through to the engine's transaction, records the first-seen
/// previous value of every key written, and the keys and ranges read.
///
/// Every key the run touches has one entry in one hash map (a 1,000-instance create touches
/// thousands of keys sharing long prefixes, which ordered maps compare byte by byte on every
/// step); the undo log is sorted once, at the end.
pub struct TrackingTxn<'a> {
    inner: &'a mut dyn WriteTxn,
    seen: RefCell<Seen>,
}

/// What the run did with each key, and the ranges it scanned.
#[derive(Default)]
struct Seen {
    keys: KeyMap,
    scans: Vec<OwnedRange>,
}

/// Each key a run touched, with its use; emptied after a run and handed to the next one
/// ([`TrackingTxn::reusing`]), so that a large record's map does not grow through every
/// doubling again.
#[derive(Default)]
pub(crate) struct KeyMap(HashMap<Vec<u8>, KeyUse>);

impl std::fmt::Debug for KeyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyMap({} keys, room for {})",
            self.0.len(),
            self.0.capacity()
        )
    }
}

/// A map that held more keys than this is not kept for the next run (its memory is freed).
const KEPT_MAP_KEYS: usize = 1 << 16;

/// One key's part in a run.
struct KeyUse {
    /// Got at least once: part of the run's reads.
    got: bool,
    /// Got as absent before any write of it: its undo entry is "absent" without a second read.
    known_absent: bool,
    /// The value before the run's first write of the key, once it is written.
    before: Option<Option<Vec<u8>>>,
}

impl KeyUse {
    /// A key first touched by a write, over `before`.
    fn written(before: Option<Vec<u8>>) -> Self {
        KeyUse {
            got: false,
            known_absent: false,
            before: Some(before),
        }
    }
}

/// The keys and ranges a run read.
#[derive(Default)]
pub(crate) struct Reads {
    /// Every key got, once, in no particular order.
    pub gets: Vec<Vec<u8>>,
    pub scans: Vec<OwnedRange>,
}

/// Everything a tracked run did: its undo log, the keys it got, the ranges it scanned.
pub(crate) struct Tracked {
    pub undo: UndoLog,
    pub reads: Reads,
    /// The run's key map, emptied, for the next run.
    pub spare: KeyMap,
}

impl<'a> TrackingTxn<'a> {
    /// Wraps the engine's transaction.
    pub fn new(inner: &'a mut dyn WriteTxn) -> Self {
        Self::reusing(inner, KeyMap::default())
    }

    /// Wraps the engine's transaction, tracking keys in `spare` (an earlier run's emptied map,
    /// see [`Tracked::spare`]).
    pub(crate) fn reusing(inner: &'a mut dyn WriteTxn, spare: KeyMap) -> Self {
        debug_assert!(spare.0.is_empty(), "a spare key map comes empty");
        TrackingTxn {
            inner,
            seen: RefCell::new(Seen {
                keys: spare,
                scans: Vec::new(),
            }),
        }
    }

    /// Records the value `key` holds before the run's first write of it, if this is that
    /// first write.
    fn remember(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let keys = &mut self.seen.get_mut().keys.0;
        match keys.get_mut(key) {
            Some(k) => {
                if k.before.is_none() {
                    // Nothing when a get found it absent and nothing wrote it since (every
                    // write passes through here), else what the store says.
                    let old = if k.known_absent {
                        None
                    } else {
                        self.inner.get(key)?
                    };
                    k.before = Some(old);
                }
            }
            None => {
                let old = self.inner.get(key)?;
                keys.insert(key.to_vec(), KeyUse::written(old));
            }
        }
        Ok(())
    }

    /// The previous values of every key written, in key order.
    pub fn into_undo_log(self) -> UndoLog {
        self.into_tracked().undo
    }

    pub(crate) fn into_tracked(self) -> Tracked {
        let mut seen = self.seen.into_inner();
        let mut undo = Vec::new();
        let mut gets = Vec::new();
        for (key, used) in seen.keys.0.drain() {
            match (used.got, used.before) {
                (true, Some(old)) => {
                    gets.push(key.clone());
                    undo.push((key, old));
                }
                (true, None) => gets.push(key),
                (false, Some(old)) => undo.push((key, old)),
                (false, None) => {}
            }
        }
        // Key order lets the stored log share its keys' prefixes (see `undo::encode`).
        undo.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let undo = undo
            .into_iter()
            .map(|(k, v)| {
                (
                    serde_bytes::ByteBuf::from(k),
                    v.map(serde_bytes::ByteBuf::from),
                )
            })
            .collect();
        let spare = if seen.keys.0.capacity() > KEPT_MAP_KEYS {
            KeyMap::default()
        } else {
            seen.keys
        };
        Tracked {
            undo,
            reads: Reads {
                gets,
                scans: seen.scans,
            },
            spare,
        }
    }
}

impl ReadTxn for TrackingTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.get(key)?;
        let mut seen = self.seen.borrow_mut();
        match seen.keys.0.get_mut(key) {
            // Touched before: if it was written first, it is not known absent whatever it
            // holds now, so only `got` changes.
            Some(k) => k.got = true,
            None => {
                seen.keys.0.insert(
                    key.to_vec(),
                    KeyUse {
                        got: true,
                        known_absent: value.is_none(),
                        before: None,
                    },
                );
            }
        }
        Ok(value)
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let owned = (
            range.start().map(<[u8]>::to_vec),
            range.end().map(<[u8]>::to_vec),
        );
        self.seen.borrow_mut().scans.push(owned);
        self.inner.scan(range, dir, visit)
    }
}

impl WriteTxn for TrackingTxn<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let TrackingTxn { inner, seen } = self;
        match seen.get_mut().keys.0.entry(key.to_vec()) {
            Entry::Vacant(vacant) => {
                // A key the run has not touched: most are new (a create's instance and index
                // entries), which one no-overwrite put writes and proves absent together.
                let old = inner.put_if_absent(key, value)?;
                let written = old.is_none();
                vacant.insert(KeyUse::written(old));
                if written {
                    return Ok(());
                }
            }
            Entry::Occupied(_) => self.remember(key)?,
        }
        self.inner.put(key, value)
    }

    /// A key the run has not touched takes one no-overwrite put of the store, as in `put`;
    /// a held value counts as got (the run read it), a write as any first write.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.seen.get_mut().keys.0.contains_key(key) {
            return match self.get(key)? {
                Some(held) => Ok(Some(held)),
                None => self.put(key, value).map(|()| None),
            };
        }
        let held = self.inner.put_if_absent(key, value)?;
        let used = match held {
            None => KeyUse::written(None),
            Some(_) => KeyUse {
                got: true,
                known_absent: false,
                before: None,
            },
        };
        self.seen.get_mut().keys.0.insert(key.to_vec(), used);
        Ok(held)
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        self.remember(key)?;
        self.inner.delete(key)
    }

    /// Does nothing: the engine commits the transaction this one wraps.
    fn commit(self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_protocol::store::Store;
    use threads_protocol::store::memory::MemoryStore;

    fn put_new(t: &mut TrackingTxn<'_>, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        t.put_if_absent(key, value).expect("put_if_absent")
    }

    /// `put_if_absent` through the tracking transaction: what it writes enters the undo log with
    /// the value before, what it finds held counts as read, and keys touched before take the
    /// transaction's own view.
    #[test]
    fn put_if_absent_tracks_reads_and_first_writes() {
        let store = MemoryStore::new();
        let mut w = store.write().expect("write");
        w.put(b"held", b"old").expect("put");
        w.commit().expect("commit");
        let mut w = store.write().expect("write");
        let mut t = TrackingTxn::new(&mut w);
        assert_eq!(put_new(&mut t, b"new", b"1"), None, "untouched and absent");
        assert_eq!(put_new(&mut t, b"held", b"2"), Some(b"old".to_vec()));
        assert_eq!(
            put_new(&mut t, b"new", b"3"),
            Some(b"1".to_vec()),
            "its own write"
        );
        assert!(t.delete(b"held").expect("delete"));
        assert_eq!(put_new(&mut t, b"held", b"4"), None, "deleted in the run");
        assert_eq!(t.get(b"held").expect("get"), Some(b"4".to_vec()));
        let tracked = t.into_tracked();
        let undo: Vec<(&[u8], Option<&[u8]>)> = tracked
            .undo
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_ref().map(|v| v.as_slice())))
            .collect();
        let expected: [(&[u8], Option<&[u8]>); 2] = [(b"held", Some(b"old")), (b"new", None)];
        assert_eq!(
            undo, expected,
            "each written key once, with its value before the run"
        );
        let mut gets = tracked.reads.gets;
        gets.sort();
        assert_eq!(gets, [b"held".to_vec(), b"new".to_vec()]);
    }
}
