//! A write transaction wrapper that remembers, for every key a record writes, the value it had
//! before: the record's undo log.

use super::UndoLog;
use std::collections::BTreeMap;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, Visit, WriteTxn};

/// Passes reads and writes through to the engine's transaction, and records the first-seen
/// previous value of every key written.
pub struct TrackingTxn<'a> {
    inner: &'a mut dyn WriteTxn,
    before: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> TrackingTxn<'a> {
    /// Wraps the engine's transaction.
    pub fn new(inner: &'a mut dyn WriteTxn) -> Self {
        TrackingTxn {
            inner,
            before: BTreeMap::new(),
        }
    }

    fn remember(&mut self, key: &[u8]) -> Result<(), StoreError> {
        if !self.before.contains_key(key) {
            let old = self.inner.get(key)?;
            self.before.insert(key.to_vec(), old);
        }
        Ok(())
    }

    /// The previous values of every key written, in key order.
    pub fn into_undo_log(self) -> UndoLog {
        self.before
            .into_iter()
            .map(|(k, v)| {
                (
                    serde_bytes::ByteBuf::from(k),
                    v.map(serde_bytes::ByteBuf::from),
                )
            })
            .collect()
    }
}

impl ReadTxn for TrackingTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
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
