//! A write transaction wrapper that remembers, for every key a record writes, the value it had
//! before (the record's undo log), and which keys and ranges the record read (its footprint,
//! see [`super::Access`]).

use super::UndoLog;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, Visit, WriteTxn};

/// A scanned range, with owned bounds.
pub(crate) type OwnedRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Passes reads and writes through to the engine's transaction, records the first-seen
/// previous value of every key written, and the keys and ranges read.
pub struct TrackingTxn<'a> {
    inner: &'a mut dyn WriteTxn,
    before: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    reads: RefCell<Reads>,
}

#[derive(Default)]
pub(crate) struct Reads {
    /// Every key got, once, and whether it was absent the first time it was got before any
    /// write of it (`true`): its undo entry is then "absent" without reading it again.
    pub gets: HashMap<Vec<u8>, bool>,
    pub scans: Vec<OwnedRange>,
}

/// Everything a tracked run did: its undo log, the keys it got, the ranges it scanned.
pub(crate) struct Tracked {
    pub undo: UndoLog,
    pub reads: Reads,
}

impl<'a> TrackingTxn<'a> {
    /// Wraps the engine's transaction.
    pub fn new(inner: &'a mut dyn WriteTxn) -> Self {
        TrackingTxn {
            inner,
            before: BTreeMap::new(),
            reads: RefCell::new(Reads::default()),
        }
    }

    fn remember(&mut self, key: &[u8]) -> Result<(), StoreError> {
        if !self.before.contains_key(key) {
            // A key got as absent and not written since (every write passes here first) is
            // still absent: a fresh create needs no second read of its key.
            let old = if self.reads.get_mut().gets.get(key) == Some(&true) {
                None
            } else {
                self.inner.get(key)?
            };
            self.before.insert(key.to_vec(), old);
        }
        Ok(())
    }

    /// The previous values of every key written, in key order.
    pub fn into_undo_log(self) -> UndoLog {
        self.into_tracked().undo
    }

    pub(crate) fn into_tracked(self) -> Tracked {
        let undo = self
            .before
            .into_iter()
            .map(|(k, v)| {
                (
                    serde_bytes::ByteBuf::from(k),
                    v.map(serde_bytes::ByteBuf::from),
                )
            })
            .collect();
        Tracked {
            undo,
            reads: self.reads.into_inner(),
        }
    }
}

impl ReadTxn for TrackingTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.get(key)?;
        let mut reads = self.reads.borrow_mut();
        if !reads.gets.contains_key(key) {
            let absent = value.is_none() && !self.before.contains_key(key);
            reads.gets.insert(key.to_vec(), absent);
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
        self.reads.borrow_mut().scans.push(owned);
        self.inner.scan(range, dir, visit)
    }
}

impl WriteTxn for TrackingTxn<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.remember(key)?;
        self.inner.put(key, value)
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
