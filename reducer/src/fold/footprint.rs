//! Footprints and the dependency index: the tokens of the state a run read and wrote, and
//! finding through the index the later records a run conflicts with, to undo only those.

use super::{
    Access, Convergent, Dependency, Fold, OrderKey, TAG_FOOTPRINT, Usage, corrupt,
    dependents_prefix, keyed, orders_after, tracking,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use threads_protocol::engine::ApplyError;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{KeyRange, ReadTxn, StoreError, WriteTxn};

/// Length of a dependency token's hash in footprints and the dependency index.
pub const TOKEN_HASH_LEN: usize = 16;

/// Most distinct tokens a footprint keeps. A run that touches more (a bulk import of many
/// instances) stores the single token "writes the whole thread" instead: its footprint and
/// dependency index entries would otherwise take more room than the state it wrote.
pub const MAX_FOOTPRINT_TOKENS: usize = 64;

/// The dependency tokens of one run: `[[usage, token hash], ...]` in hash order, one entry per
/// token (a token used two ways is [`Usage::Write`]).
pub type Footprint = Vec<(u8, serde_bytes::ByteBuf)>;

/// The hash a dependency token is kept under: its sha2-256, cut to [`TOKEN_HASH_LEN`] bytes.
fn token_hash(token: &[u8]) -> [u8; TOKEN_HASH_LEN] {
    let d = Sha256::digest(token);
    let mut h = [0u8; TOKEN_HASH_LEN];
    h.copy_from_slice(&d[..TOKEN_HASH_LEN]);
    h
}

/// The stored footprint of a record (empty if it has none).
pub(super) fn load_footprint(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
) -> Result<Footprint, StoreError> {
    match txn.get(&keyed(TAG_FOOTPRINT, thread, order))? {
        Some(b) => serde_ipld_dagcbor::from_slice(&b).map_err(|e| corrupt("footprint", e)),
        None => Ok(Vec::new()),
    }
}

impl<F: Fold> Convergent<F> {
    /// The footprint of a run: the implicit read of the whole thread, and the tokens of every
    /// access.
    pub(super) fn footprint(&self, thread: &ThreadId, run: &tracking::Tracked) -> Footprint {
        let mut merged: BTreeMap<[u8; TOKEN_HASH_LEN], Usage> = BTreeMap::new();
        let mut deps = vec![Dependency::read(Vec::new())];
        // Tokens are merged as they come, and a run that has passed the limit stops there: the
        // result (the whole thread, written) cannot change any more, and a bulk import does
        // not map and hash thousands of accesses for nothing.
        let mut over = |deps: &mut Vec<Dependency>| {
            for d in deps.drain(..) {
                merged
                    .entry(token_hash(&d.token))
                    .and_modify(|u| *u = u.join(d.usage))
                    .or_insert(d.usage);
            }
            merged.len() > MAX_FOOTPRINT_TOKENS
        };
        let mut bulk = over(&mut deps);
        for k in run.reads.gets.keys() {
            if bulk {
                break;
            }
            self.fold.dependencies(thread, Access::Get(k), &mut deps);
            bulk = over(&mut deps);
        }
        for (start, end) in &run.reads.scans {
            if bulk {
                break;
            }
            let range = KeyRange::new(
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            );
            self.fold
                .dependencies(thread, Access::Scan(&range), &mut deps);
            bulk = over(&mut deps);
        }
        for (k, _) in &run.undo {
            if bulk {
                break;
            }
            self.fold.dependencies(thread, Access::Write(k), &mut deps);
            bulk = over(&mut deps);
        }
        if bulk {
            // A large run (a bulk import) is summarized as a write of the whole thread: one
            // index entry instead of thousands. Coarser tokens are always correct (they only
            // conflict more); records after it depend on it, and it on every earlier one.
            return vec![(
                Usage::Write as u8,
                serde_bytes::ByteBuf::from(token_hash(&[]).to_vec()),
            )];
        }
        merged
            .into_iter()
            .map(|(h, u)| (u as u8, serde_bytes::ByteBuf::from(h.to_vec())))
            .collect()
    }

    /// The applied records after `order` whose footprint conflicts with `footprint`.
    pub(super) fn conflicts_after(
        &self,
        txn: &dyn ReadTxn,
        thread: &ThreadId,
        order: &OrderKey,
        footprint: &Footprint,
    ) -> Result<BTreeSet<OrderKey>, ApplyError> {
        let mut out = BTreeSet::new();
        for (usage, hash) in footprint {
            let mine = Usage::from_u8(*usage).ok_or_else(|| corrupt("footprint", "usage"))?;
            for theirs in Usage::ALL {
                if mine.conflicts(theirs) {
                    let p = dependents_prefix(thread, theirs as u8, hash);
                    out.extend(orders_after(txn, &p, order)?);
                }
            }
        }
        Ok(out)
    }

    /// Undoes `seeds` and every applied record after one of them that conflicts with it,
    /// transitively, newest first; they become pending.
    pub(super) fn undo_closure(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
        seeds: BTreeSet<OrderKey>,
    ) -> Result<(), ApplyError> {
        let mut closure = BTreeSet::new();
        let mut queue: Vec<OrderKey> = seeds.into_iter().collect();
        while let Some(o) = queue.pop() {
            if !closure.insert(o) {
                continue;
            }
            let footprint = load_footprint(txn, thread, &o)?;
            for c in self.conflicts_after(txn, thread, &o, &footprint)? {
                if !closure.contains(&c) {
                    queue.push(c);
                }
            }
        }
        for o in closure.iter().rev() {
            self.undo(txn, thread, o)?;
        }
        self.pending.entry(*thread).or_default().extend(closure);
        Ok(())
    }
}
