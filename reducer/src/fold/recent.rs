//! The tokens of a thread's recent records (`spec/convergence.md` §3.2), held in memory while a
//! batch folds many late records: each of them would otherwise read every recent footprint
//! again (a writer back from offline brings hundreds of records, each before all of them).

use super::footprint::{Footprint, TOKEN_HASH_LEN, each_entry};
use super::keys::{TAG_OPS, prefix, scan_footprints};
use super::{OrderKey, Usage, corrupt};
use std::collections::{BTreeSet, HashMap};
use std::ops::{Bound, ControlFlow};
use threads_protocol::id::ThreadId;
use threads_protocol::store::{ReadTxn, StoreError};

/// Look-ups in one batch that read the recent footprints from the store before the batch keeps
/// them in memory: a late record with a few dependents does not pay for building the map.
pub(super) const READS_BEFORE_KEEPING: u32 = 4;

/// The recent records' footprints of one thread, by token hash: exactly the footprints stored
/// for records at or after `start` (the frontier they were read for), kept so by the fold,
/// which adds and removes entries as it stores and deletes footprints.
#[derive(Debug, Default)]
pub(super) struct RecentTokens {
    start: u64,
    /// The records using each token, by use (read, mark, write): a look-up skips the uses
    /// that do not conflict with its own (every record reads the whole thread's token).
    by_hash: HashMap<[u8; TOKEN_HASH_LEN], [Vec<OrderKey>; 3]>,
}

/// The slot of a use in [`RecentTokens::by_hash`].
fn slot(usage: Usage) -> usize {
    match usage {
        Usage::Read => 0,
        Usage::Mark => 1,
        Usage::Write => 2,
    }
}

/// A token hash as a map key; a hash of another length is not one this fold wrote.
fn key(hash: &[u8]) -> Result<[u8; TOKEN_HASH_LEN], StoreError> {
    hash.try_into().map_err(|_| {
        corrupt(
            "footprint",
            format_args!("a token hash of {} bytes", hash.len()),
        )
    })
}

/// What a batch knows of one thread's recent footprints.
#[derive(Debug, Default)]
pub(super) struct RecentSlot {
    /// Look-ups that read the footprints from the store.
    pub reads: u32,
    /// The footprints in memory, once kept.
    pub tokens: Option<RecentTokens>,
}

impl RecentTokens {
    /// Reads the footprints of `thread`'s records from clock `start` on.
    pub(super) fn read(
        txn: &dyn ReadTxn,
        thread: &ThreadId,
        start: u64,
    ) -> Result<RecentTokens, StoreError> {
        let records = prefix(TAG_OPS, thread);
        let from = [records.as_slice(), &start.to_be_bytes()].concat();
        let mut tokens = RecentTokens {
            start,
            by_hash: HashMap::new(),
        };
        scan_footprints(txn, thread, Bound::Included(&from), &mut |order, v| {
            each_entry(v, |usage, hash| tokens.insert(order, usage, hash))?;
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(tokens)
    }

    /// The frontier these footprints were read for.
    pub(super) fn start(&self) -> u64 {
        self.start
    }

    fn insert(&mut self, order: OrderKey, usage: Usage, hash: &[u8]) -> Result<(), StoreError> {
        self.by_hash.entry(key(hash)?).or_default()[slot(usage)].push(order);
        Ok(())
    }

    /// A recent record's footprint was stored.
    pub(super) fn add(
        &mut self,
        order: &OrderKey,
        footprint: &Footprint,
    ) -> Result<(), StoreError> {
        for (usage, hash) in footprint {
            let usage = Usage::from_u8(*usage)
                .ok_or_else(|| corrupt("footprint", format_args!("usage {usage}")))?;
            self.insert(*order, usage, hash)?;
        }
        Ok(())
    }

    /// A recent record's footprint was deleted.
    pub(super) fn remove(&mut self, order: &OrderKey, footprint: &Footprint) {
        for (usage, hash) in footprint {
            let (Some(usage), Ok(hash)) = (Usage::from_u8(*usage), key(hash)) else {
                continue; // never added
            };
            if let Some(uses) = self.by_hash.get_mut(&hash) {
                uses[slot(usage)].retain(|o| o != order);
            }
        }
    }

    /// Adds to `out` the recent records after `order` that share a token with `mine` in a
    /// conflicting use.
    pub(super) fn conflicts_after(
        &self,
        order: &OrderKey,
        mine: &[(Usage, &[u8])],
        out: &mut BTreeSet<OrderKey>,
    ) {
        for (usage, hash) in mine {
            let Some(uses) = key(hash).ok().and_then(|h| self.by_hash.get(&h)) else {
                continue;
            };
            for theirs in Usage::ALL {
                if usage.conflicts(theirs) {
                    out.extend(uses[slot(theirs)].iter().filter(|o| *o > order));
                }
            }
        }
    }
}
