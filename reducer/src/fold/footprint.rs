//! Footprints and the dependency index: the tokens of the state a run read and wrote, and
//! finding through the index the later records a run conflicts with, to undo only those.

use super::{
    Access, Convergent, Dependency, Fold, OrderKey, TAG_FOOTPRINT, Usage, corrupt,
    dependents_prefix, keyed, orders_after, tracking,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use threads_protocol::engine::ApplyError;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

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

/// Stores a record's footprint and its entries in the dependency index, together (an undo
/// deletes both together), so that the index holds one entry per token of every footprint.
pub(super) fn store_footprint(
    txn: &mut dyn WriteTxn,
    thread: &ThreadId,
    order: &OrderKey,
    footprint: &Footprint,
) -> Result<(), StoreError> {
    let order_bytes = order.to_bytes();
    for (usage, hash) in footprint {
        let mut k = dependents_prefix(thread, *usage, hash);
        k.extend_from_slice(&order_bytes);
        txn.put(&k, &[])?;
    }
    txn.put(
        &keyed(TAG_FOOTPRINT, thread, order),
        &super::encode(footprint),
    )
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
        for k in &run.reads.gets {
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
        match conflicts_in_later_footprints(txn, thread, order, footprint)? {
            Some(found) => Ok(found),
            None => conflicts_in_index(txn, thread, order, footprint),
        }
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

/// Most records after a placed one whose footprints [`conflicts_in_later_footprints`] reads;
/// with more, the dependency index is asked instead.
const LATER_FOOTPRINTS_MAX: usize = 32;

/// The records after `order` whose stored footprint conflicts with `footprint`, found through
/// the dependency index: one scan per token and conflicting use.
fn conflicts_in_index(
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

/// The same set as [`conflicts_in_index`], found by reading the footprints of the records
/// after `order`, when there are at most [`LATER_FOOTPRINTS_MAX`] of them (the
/// usual case: a record arrives a little late). The index holds exactly one entry per token
/// of every stored footprint (a run writes both, an undo deletes both), so the two agree.
/// `None` (ask the index) when more records follow, or when a footprint is not in the form
/// [`footprint_conflicts`] reads.
fn conflicts_in_later_footprints(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
    footprint: &Footprint,
) -> Result<Option<BTreeSet<OrderKey>>, ApplyError> {
    let mut mine = Vec::with_capacity(footprint.len());
    for (usage, hash) in footprint {
        match Usage::from_u8(*usage) {
            Some(u) => mine.push((u, hash.as_slice())),
            None => return Ok(None),
        }
    }
    let footprints = super::keys::prefix(TAG_FOOTPRINT, thread);
    let start = keyed(TAG_FOOTPRINT, thread, order);
    let whole = KeyRange::prefix(&footprints);
    let later = || KeyRange::new(std::ops::Bound::Excluded(start.as_slice()), whole.end());
    // Counted first, without reading them: when many records follow (a writer back from a
    // long time offline), reading the first few footprints would be work thrown away.
    let mut count = 0;
    txn.scan(later(), Direction::Forward, &mut |k, _| {
        if !k.starts_with(&footprints) || count > LATER_FOOTPRINTS_MAX {
            return ControlFlow::Break(());
        }
        count += 1;
        ControlFlow::Continue(())
    })?;
    if count > LATER_FOOTPRINTS_MAX {
        return Ok(None);
    }
    let (mut out, mut direct) = (BTreeSet::new(), true);
    txn.try_scan(later(), Direction::Forward, &mut |k, v| {
        let Some(rest) = k.strip_prefix(footprints.as_slice()) else {
            return Ok(ControlFlow::Break(()));
        };
        let later = OrderKey::from_bytes(rest).ok_or_else(|| corrupt("order key", "malformed"))?;
        match footprint_conflicts(&mine, v) {
            Some(true) => {
                out.insert(later);
            }
            Some(false) => {}
            None => {
                direct = false;
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(direct.then_some(out))
}

/// Whether a stored footprint (its bytes) shares a token with `mine` in a conflicting use.
/// Reads only the canonical encoding of a footprint (a list of `[usage, 16-byte hash]`, one
/// byte per usage) and returns `None` for anything else, so that its caller falls back to the
/// index rather than judge bytes another way than `load_footprint` would.
fn footprint_conflicts(mine: &[(Usage, &[u8])], stored: &[u8]) -> Option<bool> {
    const HASH_HEAD: u8 = 0x40 | TOKEN_HASH_LEN as u8;
    let (&head, mut rest) = stored.split_first()?;
    let n = match head {
        0x80..=0x97 => usize::from(head - 0x80),
        0x98 => {
            let (&n, r) = rest.split_first()?;
            rest = r;
            if n < 24 {
                return None;
            }
            usize::from(n)
        }
        _ => return None,
    };
    let mut conflict = false;
    for _ in 0..n {
        let [0x82, usage, HASH_HEAD, r @ ..] = rest else {
            return None;
        };
        let theirs = Usage::from_u8(*usage)?;
        let (hash, r) = r.split_at_checked(TOKEN_HASH_LEN)?;
        rest = r;
        conflict |= mine.iter().any(|(u, h)| *h == hash && u.conflicts(theirs));
    }
    rest.is_empty().then_some(conflict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use threads_protocol::id::{ThreadId, Variant};
    use threads_protocol::store::Store;
    use threads_protocol::store::memory::MemoryStore;

    fn order(n: u64) -> OrderKey {
        OrderKey {
            clock: n / 3,
            log: [n as u8; threads_protocol::log_id::LogId::LEN],
            counter: n,
        }
    }

    /// A footprint over a small set of tokens (so that records share them), in hash order.
    fn footprint(uses: &[(u8, u8)]) -> Footprint {
        let mut merged = std::collections::BTreeMap::new();
        for (token, usage) in uses {
            merged.insert(token_hash(&[*token]), *usage);
        }
        merged
            .into_iter()
            .map(|(h, u)| (u, serde_bytes::ByteBuf::from(h.to_vec())))
            .collect()
    }

    fn thread() -> ThreadId {
        ThreadId::new(Variant::Raw, &[7; 32]).expect("a thread id")
    }

    fn uses() -> impl Strategy<Value = Vec<(u8, u8)>> {
        proptest::collection::vec((0u8..6, 1u8..=3), 0..5)
    }

    proptest! {
        /// Reading the later footprints finds exactly the records the dependency index finds,
        /// and is used whenever few enough records follow.
        #[test]
        fn later_footprints_and_the_index_find_the_same_conflicts(
            stored in proptest::collection::vec(uses(), 0..45),
            mine in uses(),
            at in 0u64..45,
        ) {
            let store = MemoryStore::new();
            let t = thread();
            let mut txn = store.write().unwrap();
            for (i, u) in stored.iter().enumerate() {
                store_footprint(&mut txn, &t, &order(i as u64), &footprint(u)).unwrap();
            }
            txn.commit().unwrap();
            let txn = store.read().unwrap();
            let mine = footprint(&mine);
            let by_index = conflicts_in_index(&txn, &t, &order(at), &mine).unwrap();
            let later = (stored.len() as u64).saturating_sub(at + 1) as usize;
            match conflicts_in_later_footprints(&txn, &t, &order(at), &mine).unwrap() {
                Some(direct) => {
                    prop_assert!(later <= LATER_FOOTPRINTS_MAX);
                    prop_assert_eq!(direct, by_index);
                }
                None => prop_assert!(later > LATER_FOOTPRINTS_MAX),
            }
        }
    }

    #[test]
    fn a_footprint_in_another_form_is_left_to_the_index() {
        let hash = token_hash(b"x");
        let mine = [(Usage::Write, &hash[..])];
        let canonical = super::super::encode(&footprint(&[(b'x', 1)]));
        assert_eq!(footprint_conflicts(&mine, &canonical), Some(true));
        let read = [(Usage::Read, &hash[..])];
        assert_eq!(footprint_conflicts(&read, &canonical), Some(false));
        // A usage in two bytes, an unknown usage, a short hash, a trailing byte, a list
        // length in two bytes: not read here.
        let mut long_usage = canonical.clone();
        long_usage.splice(2..3, [0x18, 0x01]);
        let mut unknown = canonical.clone();
        unknown[2] = 0x04;
        let short: Footprint = vec![(1, serde_bytes::ByteBuf::from(vec![1; 15]))];
        let short = super::super::encode(&short);
        let trailing = [canonical.as_slice(), &[0]].concat();
        let long_len = [&[0x98, 0x01][..], &canonical[1..]].concat();
        for bytes in [long_usage, unknown, short, trailing, long_len] {
            assert_eq!(footprint_conflicts(&mine, &bytes), None, "{bytes:02x?}");
        }
    }
}
