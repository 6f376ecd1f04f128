//! The index from a record's CID to where the record is stored, in two tiers.
//!
//! CIDs are hashes, so the entries of consecutive records land at random places of the sorted
//! index: on a B-tree store each one dirties a page of its own, and at 100k records that page
//! (copied and written at every commit) cost more than the record itself. So entries are first
//! appended to a journal (`08 ‖ u64 seq`, consecutive keys that fill one page after another),
//! mirrored in memory for lookups, and moved into the sorted index (`05 ‖ cid`) all at once,
//! in key order, by the transaction that would take the journal past
//! [`Config::cid_journal_max`](super::Config::cid_journal_max) entries. A bulk move of many
//! entries shares pages between them; the journal costs a few bytes per record.
//!
//! A CID identifies one record, bound to its thread, so it has one entry, in one tier. The
//! memory mirror changes only after the transaction that wrote the journal commits
//! ([`CidIndex::committed`]), and is rebuilt from the journal when a host opens its store, so
//! it never holds what the store does not (spec/engine.md §3).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use cid::Cid;

use super::layout;
use crate::store::key::{KeyBuf, KeyReader};
use crate::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

/// A journal entry held in memory: its sequence number and the entry's value (where the
/// record lives, as [`layout::cid_target`] encodes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recent {
    seq: u64,
    target: Vec<u8>,
}

/// The two-tier CID index of a host: the journal's entries in memory, by CID bytes.
#[derive(Debug)]
pub(crate) struct CidIndex {
    recent: BTreeMap<Vec<u8>, Recent>,
    next_seq: u64,
    max_recent: usize,
}

/// What a write transaction did to the index, for [`CidIndex::committed`] once it commits.
#[derive(Debug)]
#[must_use = "the index in memory must learn what a committed transaction wrote"]
pub(crate) enum IndexChange {
    /// Entries appended to the journal: (CID bytes, entry).
    Journaled(Vec<(Vec<u8>, Recent)>),
    /// The journal and these entries were moved into the sorted index; the journal is empty.
    Merged,
    /// Entries removed (CID bytes).
    Removed(Vec<Vec<u8>>),
}

impl CidIndex {
    /// Loads the journal of a store; `max_recent` is the most entries it may hold.
    pub(crate) fn load(txn: &dyn ReadTxn, max_recent: usize) -> Result<Self, StoreError> {
        let mut recent = BTreeMap::new();
        let mut next_seq = 0;
        for_each_entry(txn, |cid, entry| {
            next_seq = entry.seq + 1;
            recent.insert(cid, entry);
        })?;
        Ok(CidIndex {
            recent,
            next_seq,
            max_recent,
        })
    }

    /// Where the record with this CID is stored ([`layout::cid_target`] bytes), if it is.
    pub(crate) fn target(
        &self,
        txn: &dyn ReadTxn,
        cid: &Cid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes = cid.to_bytes();
        match self.recent.get(&bytes) {
            Some(r) => Ok(Some(r.target.clone())),
            None => txn.get(&layout::cid_bytes(&bytes)),
        }
    }

    /// Whether a record with this CID is stored.
    pub(crate) fn contains(&self, txn: &dyn ReadTxn, cid: &Cid) -> Result<bool, StoreError> {
        let bytes = cid.to_bytes();
        Ok(self.recent.contains_key(&bytes) || txn.get(&layout::cid_bytes(&bytes))?.is_some())
    }

    /// Adds entries (CID, [`layout::cid_target`]) in `txn`: to the journal, or, when the
    /// journal would hold more than its maximum, into the sorted index together with the
    /// whole journal.
    pub(crate) fn add<T: WriteTxn + ?Sized>(
        &self,
        txn: &mut T,
        entries: Vec<(Cid, Vec<u8>)>,
    ) -> Result<IndexChange, StoreError> {
        let mut new: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (cid, target) in entries {
            new.insert(cid.to_bytes(), target);
        }
        if self.recent.len() + new.len() > self.max_recent {
            let mut merged: BTreeMap<&[u8], &[u8]> = self
                .recent
                .iter()
                .map(|(c, r)| (c.as_slice(), r.target.as_slice()))
                .collect();
            for (c, t) in &new {
                merged.insert(c, t);
            }
            for (c, t) in merged {
                txn.put(&layout::cid_bytes(c), t)?;
            }
            for r in self.recent.values() {
                txn.delete(&layout::cid_journal(r.seq))?;
            }
            return Ok(IndexChange::Merged);
        }
        let mut journaled = Vec::with_capacity(new.len());
        for (seq, (cid, target)) in (self.next_seq..).zip(new) {
            // A CID identifies one record of one thread (records are bound to their thread) and
            // a held record is never stored again; should one be, it keeps one journal entry.
            if let Some(old) = self.recent.get(&cid) {
                txn.delete(&layout::cid_journal(old.seq))?;
            }
            txn.put(&layout::cid_journal(seq), &encode_value(&cid, &target))?;
            journaled.push((cid, Recent { seq, target }));
        }
        Ok(IndexChange::Journaled(journaled))
    }

    /// Removes the entry of a record in `txn`, wherever it is.
    pub(crate) fn remove<T: WriteTxn + ?Sized>(
        &self,
        txn: &mut T,
        cid: &Cid,
        removed: &mut Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let bytes = cid.to_bytes();
        match self.recent.get(&bytes) {
            Some(r) => {
                txn.delete(&layout::cid_journal(r.seq))?;
                removed.push(bytes);
            }
            None => {
                txn.delete(&layout::cid_bytes(&bytes))?;
            }
        }
        Ok(())
    }

    /// Takes in what a transaction that committed did (see [`CidIndex::add`] and
    /// [`CidIndex::remove`]).
    pub(crate) fn committed(&mut self, change: IndexChange) {
        match change {
            IndexChange::Journaled(entries) => {
                for (cid, entry) in entries {
                    self.next_seq = self.next_seq.max(entry.seq + 1);
                    self.recent.insert(cid, entry);
                }
            }
            IndexChange::Merged => self.recent.clear(),
            IndexChange::Removed(cids) => {
                for c in cids {
                    self.recent.remove(&c);
                }
            }
        }
    }

    /// Entries in the journal.
    pub(crate) fn journal_len(&self) -> usize {
        self.recent.len()
    }

    /// Whether the journal in `txn` holds exactly the entries in memory (for invariant checks).
    /// Each stored entry must equal the one in memory under its CID; entries have distinct
    /// sequence numbers, so as many matches as entries in memory mean the same set.
    pub(crate) fn matches_store(&self, txn: &dyn ReadTxn) -> Result<(), String> {
        let (mut stored, mut matched) = (0usize, 0usize);
        for_each_entry(txn, |cid, entry| {
            stored += 1;
            matched += usize::from(self.recent.get(&cid) == Some(&entry));
        })
        .map_err(|e| format!("store: {e}"))?;
        if stored != matched || matched != self.recent.len() {
            return Err(format!(
                "CID journal: {} entries in memory, {stored} stored, {matched} of them the same",
                self.recent.len(),
            ));
        }
        Ok(())
    }
}

/// Calls `visit` with every entry of the journal in `txn`, in journal order.
fn for_each_entry(
    txn: &dyn ReadTxn,
    mut visit: impl FnMut(Vec<u8>, Recent),
) -> Result<(), StoreError> {
    let prefix = [layout::TAG_CID_JOURNAL];
    txn.try_scan(
        KeyRange::prefix(&prefix),
        Direction::Forward,
        &mut |k, v| {
            let (cid, entry) = decode_entry(k, v)?;
            visit(cid, entry);
            Ok(ControlFlow::Continue(()))
        },
    )
}

/// A journal entry's value: `bytes(cid) ‖ target`.
fn encode_value(cid: &[u8], target: &[u8]) -> Vec<u8> {
    let mut v = KeyBuf::with_prefix(&[]).bytes(cid).into_vec();
    v.extend_from_slice(target);
    v
}

/// A journal entry from its key and value.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<(Vec<u8>, Recent), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("CID journal: {what}"));
    let mut k = KeyReader::new(key);
    k.fixed(1)?;
    let seq = k.u64()?;
    if !k.rest().is_empty() {
        return Err(corrupt("key longer than its sequence number"));
    }
    let mut v = KeyReader::new(value);
    let cid = v.bytes()?;
    Cid::try_from(cid.as_slice()).map_err(|e| corrupt(&format!("entry {seq}: {e}")))?;
    Ok((
        cid,
        Recent {
            seq,
            target: v.rest().to_vec(),
        },
    ))
}
