//! Footprints and the dependency index: the tokens of the state a run read and wrote, and
//! finding the later records a run conflicts with (through the index for settled records, by
//! reading the footprints of recent ones), to undo only those.

use super::keys::{after_record, scan_footprints};
use super::recent::{READS_BEFORE_KEEPING, RecentSlot, RecentTokens};
use super::settle::Frontier;
use super::{
    Access, Convergent, Dependency, Fold, ORDER_KEY_LEN, OrderKey, TAG_FOOTPRINT, TAG_OPS, Usage,
    corrupt, dependents_prefix, keyed, orders_after, tracking,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, ControlFlow};
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

/// The dependency index entry of one token of a record's footprint.
pub(super) fn index_entry(thread: &ThreadId, usage: u8, hash: &[u8], order: &OrderKey) -> Vec<u8> {
    let mut k = dependents_prefix(thread, usage, hash);
    k.extend_from_slice(&order.to_bytes());
    k
}

/// Stores a record's footprint and, when the record is `settled`, its entries in the
/// dependency index, together (an undo deletes both together), so that the index holds one
/// entry per token of every footprint of a settled record.
pub(super) fn store_footprint(
    txn: &mut dyn WriteTxn,
    thread: &ThreadId,
    order: &OrderKey,
    footprint: &Footprint,
    settled: bool,
) -> Result<(), StoreError> {
    if settled {
        for (usage, hash) in footprint {
            txn.put(&index_entry(thread, *usage, hash, order), &[])?;
        }
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

    /// Undoes `seeds` and every applied record after one of them that conflicts with it,
    /// transitively, newest first; they become pending. Returns how many of them the fold
    /// held (had a footprint): 0 only when the stored state is inconsistent.
    pub(super) fn undo_closure(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
        seeds: BTreeSet<OrderKey>,
        frontier: Frontier,
    ) -> Result<usize, ApplyError> {
        let mut closure = BTreeSet::new();
        let mut queue: Vec<OrderKey> = seeds.into_iter().collect();
        while let Some(o) = queue.pop() {
            if !closure.insert(o) {
                continue;
            }
            let footprint = load_footprint(txn, thread, &o)?;
            let recent = self.recent.entry(*thread).or_default();
            for c in conflicts_after(txn, thread, &o, &footprint, frontier, recent)? {
                if !closure.contains(&c) {
                    queue.push(c);
                }
            }
        }
        let mut taken_back = 0;
        for o in closure.iter().rev() {
            taken_back += usize::from(self.undo(txn, thread, o)?);
        }
        self.pending.entry(*thread).or_default().extend(closure);
        Ok(taken_back)
    }
}

/// The applied records after `order` whose footprint conflicts with `footprint`: the settled
/// ones through the dependency index, the recent ones (from `frontier` on) by reading their
/// footprints; all of them by reading footprints when only a few follow.
///
/// `recent` is what the open batch knows of the thread's recent footprints: after
/// [`READS_BEFORE_KEEPING`] look-ups that read them from the store, they are kept in it (the
/// caller keeps them up to date, or drops them).
pub(super) fn conflicts_after(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
    footprint: &Footprint,
    frontier: Frontier,
    recent: &mut RecentSlot,
) -> Result<BTreeSet<OrderKey>, ApplyError> {
    let mine = usages(footprint)?;
    if let Some(found) = conflicts_in_later_footprints(txn, thread, order, &mine)? {
        return Ok(found);
    }
    let Some(start) = frontier.start() else {
        return conflicts_in_index(txn, thread, order, footprint);
    };
    // Every record after this one is recent when it is itself: none is in the index.
    let mut out = if order.clock >= start {
        BTreeSet::new()
    } else {
        conflicts_in_index(txn, thread, order, footprint)?
    };
    if recent.tokens.as_ref().is_some_and(|t| t.start() != start) {
        recent.tokens = None;
    }
    if recent.tokens.is_none() && recent.reads >= READS_BEFORE_KEEPING {
        recent.tokens = Some(RecentTokens::read(txn, thread, start)?);
    }
    match &recent.tokens {
        Some(tokens) => tokens.conflicts_after(order, &mine, &mut out),
        None => {
            recent.reads += 1;
            let after = after_record(thread, order);
            let first = [
                super::keys::prefix(TAG_OPS, thread).as_slice(),
                &start.to_be_bytes(),
            ]
            .concat();
            let from = if order.clock >= start {
                Bound::Excluded(after.as_slice())
            } else {
                Bound::Included(first.as_slice())
            };
            out.extend(conflicts_in_footprints(txn, thread, from, &mine)?);
        }
    }
    Ok(out)
}

/// Most records after a placed one whose footprints [`conflicts_in_later_footprints`] reads;
/// with more, the dependency index is asked for the settled ones.
const LATER_FOOTPRINTS_MAX: usize = 32;

/// A footprint's entries with their usages read; an unknown usage is a corrupt store.
fn usages(footprint: &Footprint) -> Result<Vec<(Usage, &[u8])>, StoreError> {
    footprint
        .iter()
        .map(|(usage, hash)| {
            Usage::from_u8(*usage)
                .map(|u| (u, hash.as_slice()))
                .ok_or_else(|| corrupt("footprint", format_args!("usage {usage}")))
        })
        .collect()
}

/// The records after `order` whose stored footprint conflicts with `footprint`, found through
/// the dependency index: one scan per token and conflicting use. Finds settled records only
/// (recent ones have no entries).
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

/// The records after `order` whose footprint conflicts with `mine`, found by reading the
/// footprints of the records after `order`, when there are at most [`LATER_FOOTPRINTS_MAX`]
/// of them (the usual case: a record arrives a little late); `None` when more follow.
fn conflicts_in_later_footprints(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
    mine: &[(Usage, &[u8])],
) -> Result<Option<BTreeSet<OrderKey>>, ApplyError> {
    let records = super::keys::prefix(TAG_OPS, thread);
    let after = after_record(thread, order);
    let whole = KeyRange::prefix(&records);
    // Counted first, keys only: when many records follow (a writer back from a long time
    // offline), reading the first few footprints would be work thrown away. A record has up
    // to three keys; records undone in this batch have one, so the keys visited are bounded
    // too, and past the bound the index is asked, which is always right.
    let (mut footprints, mut keys) = (0, 0);
    txn.scan(
        KeyRange::new(Bound::Excluded(after.as_slice()), whole.end()),
        Direction::Forward,
        &mut |k, _| {
            if !k.starts_with(&records) {
                return ControlFlow::Break(());
            }
            keys += 1;
            if k.last() == Some(&TAG_FOOTPRINT) && k.len() == records.len() + ORDER_KEY_LEN + 1 {
                footprints += 1;
            }
            if footprints > LATER_FOOTPRINTS_MAX || keys > 4 * LATER_FOOTPRINTS_MAX {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        },
    )?;
    if footprints > LATER_FOOTPRINTS_MAX || keys > 4 * LATER_FOOTPRINTS_MAX {
        return Ok(None);
    }
    conflicts_in_footprints(txn, thread, Bound::Excluded(&after), mine).map(Some)
}

/// The records whose footprint (of `thread`, from `from`, a key of its records space, on)
/// conflicts with `mine`.
fn conflicts_in_footprints(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    from: Bound<&[u8]>,
    mine: &[(Usage, &[u8])],
) -> Result<BTreeSet<OrderKey>, ApplyError> {
    let mut out = BTreeSet::new();
    scan_footprints(txn, thread, from, &mut |later, v| {
        let conflict = match footprint_conflicts(mine, v) {
            Some(c) => c,
            // Not in the canonical form the fast path reads: decoded as `load_footprint`
            // would.
            None => {
                let mut conflict = false;
                each_entry(v, |theirs, hash| {
                    conflict |= mine.iter().any(|(u, h)| *h == hash && u.conflicts(theirs));
                    Ok(())
                })?;
                conflict
            }
        };
        if conflict {
            out.insert(later);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Whether a stored footprint (its bytes) shares a token with `mine` in a conflicting use.
/// Reads only the canonical encoding of a footprint ([`canonical_each`]) and returns `None`
/// for anything else, which its caller decodes in full rather than judge bytes another way
/// than `load_footprint` would.
fn footprint_conflicts(mine: &[(Usage, &[u8])], stored: &[u8]) -> Option<bool> {
    let mut conflict = false;
    canonical_each(stored, |theirs, hash| {
        conflict |= mine.iter().any(|(u, h)| *h == hash && u.conflicts(theirs));
    })?;
    Some(conflict)
}

/// Hands `each` the entries of a stored footprint: read in place when it is in the canonical
/// encoding ([`canonical_each`]), else decoded as [`load_footprint`] would.
pub(super) fn each_entry(
    stored: &[u8],
    mut each: impl FnMut(Usage, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut entries = Vec::new();
    if canonical_each(stored, |usage, hash| entries.push((usage, hash))).is_some() {
        return entries.into_iter().try_for_each(|(u, h)| each(u, h));
    }
    let footprint: Footprint =
        serde_ipld_dagcbor::from_slice(stored).map_err(|e| corrupt("footprint", e))?;
    usages(&footprint)?
        .into_iter()
        .try_for_each(|(u, h)| each(u, h))
}

/// Hands `each` the entries of a footprint in its canonical encoding: a DAG-CBOR list (of at
/// most 255 entries) of `[usage, 16-byte hash]`, one byte per usage. `None`, possibly after
/// some entries, for any other bytes.
fn canonical_each<'a>(stored: &'a [u8], mut each: impl FnMut(Usage, &'a [u8])) -> Option<()> {
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
    for _ in 0..n {
        let [0x82, usage, HASH_HEAD, r @ ..] = rest else {
            return None;
        };
        let usage = Usage::from_u8(*usage)?;
        let (hash, r) = r.split_at_checked(TOKEN_HASH_LEN)?;
        rest = r;
        each(usage, hash);
    }
    rest.is_empty().then_some(())
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

    /// The conflicts of `mine` among the stored footprints after `at`, by brute force.
    fn expected(stored: &[Footprint], mine: &Footprint, at: u64) -> BTreeSet<OrderKey> {
        let mine = usages(mine).unwrap();
        (at + 1..stored.len() as u64)
            .filter(|i| {
                usages(&stored[*i as usize])
                    .unwrap()
                    .iter()
                    .any(|(u, h)| mine.iter().any(|(m, mh)| mh == h && m.conflicts(*u)))
            })
            .map(order)
            .collect()
    }

    proptest! {
        /// Whatever the frontier (settled records in the index, recent ones not), and whether
        /// few or many records follow, the conflicts found are exactly those of the stored
        /// footprints; the index alone finds exactly the settled ones.
        #[test]
        fn conflicts_are_found_on_both_sides_of_the_frontier(
            stored in proptest::collection::vec(uses(), 0..90),
            mine in uses(),
            at in 0u64..90,
            shift in proptest::option::of(0u8..5),
        ) {
            let store = MemoryStore::new();
            let t = thread();
            let stored: Vec<Footprint> = stored.iter().map(|u| footprint(u)).collect();
            let highest = stored.len().checked_sub(1).map(|i| order(i as u64).clock);
            let frontier = Frontier::of(shift, highest);
            let mut txn = store.write().unwrap();
            for (i, f) in stored.iter().enumerate() {
                let o = order(i as u64);
                store_footprint(&mut txn, &t, &o, f, frontier.settled(o.clock)).unwrap();
            }
            txn.commit().unwrap();
            let txn = store.read().unwrap();
            let mine = footprint(&mine);
            let want = expected(&stored, &mine, at);
            // Read from the store, and kept in memory (the first look-up of a batch reads).
            let mut slot = RecentSlot::default();
            let found = conflicts_after(&txn, &t, &order(at), &mine, frontier, &mut slot).unwrap();
            prop_assert_eq!(&found, &want);
            slot.reads = READS_BEFORE_KEEPING;
            let kept = conflicts_after(&txn, &t, &order(at), &mine, frontier, &mut slot).unwrap();
            prop_assert_eq!(&kept, &want);
            // Kept up to date: a recent record's footprint removed and stored again.
            if let (Some(tokens), Some(last)) = (slot.tokens.as_mut(), stored.last()) {
                let o = order(stored.len() as u64 - 1);
                if !frontier.settled(o.clock) {
                    tokens.remove(&o, last);
                    tokens.add(&o, last).unwrap();
                }
            }
            let again = conflicts_after(&txn, &t, &order(at), &mine, frontier, &mut slot).unwrap();
            prop_assert_eq!(&again, &want);
            let by_index = conflicts_in_index(&txn, &t, &order(at), &mine).unwrap();
            let settled: BTreeSet<OrderKey> =
                want.into_iter().filter(|o| frontier.settled(o.clock)).collect();
            prop_assert_eq!(by_index, settled);
        }
    }

    #[test]
    fn entries_are_read_in_place_or_decoded() {
        let entries = |bytes: &[u8]| {
            let mut out = Vec::new();
            each_entry(bytes, |u, h| {
                out.push((u, h.to_vec()));
                Ok(())
            })
            .map(|()| out)
        };
        let stored = footprint(&[(b'x', 1), (b'y', 3)]);
        let canonical = super::super::encode(&stored);
        let want: Vec<(Usage, Vec<u8>)> = usages(&stored)
            .unwrap()
            .into_iter()
            .map(|(u, h)| (u, h.to_vec()))
            .collect();
        assert_eq!(entries(&canonical).unwrap(), want);
        // A 15-byte hash is not the form read in place: decoded, with the same result.
        let short: Footprint = vec![(2, serde_bytes::ByteBuf::from(vec![1; 15]))];
        assert_eq!(
            entries(&super::super::encode(&short)).unwrap(),
            vec![(Usage::Mark, vec![1; 15])]
        );
        // Bytes that are no footprint, and an unknown usage, are errors.
        assert!(entries(&[0xff]).is_err());
        let unknown: Footprint = vec![(9, serde_bytes::ByteBuf::from(vec![1; 16]))];
        assert!(entries(&super::super::encode(&unknown)).is_err());
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
