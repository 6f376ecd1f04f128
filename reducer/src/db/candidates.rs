//! The candidates of a query plan, read from the store: instances by ID range or ID look-up,
//! or the IDs an index yields and their instances. Each candidate reaches the caller once, with
//! its stored bytes lent from the store, in the plan's order.

use std::collections::BTreeSet;
use std::ops::{Bound, ControlFlow};

use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, prefix_successor};

use super::keys::{Keys, id_after, split_index_entry};
use super::lookup;
use crate::query::plan::range_is_empty;
use crate::query::raw::{Prefilter, Verdict};
use crate::query::{Plan, Query};

/// Receives each candidate: its ID, its stored bytes, and what the prefilter found (`Parse`
/// when it did not look); says whether to go on.
pub(super) type Visitor<'v> =
    dyn FnMut(String, &[u8], Verdict) -> Result<ControlFlow<()>, StoreError> + 'v;

/// Produces the candidates of a plan from the store.
pub(super) struct Source<'a> {
    pub(super) txn: &'a dyn ReadTxn,
    pub(super) keys: &'a Keys,
    pub(super) collection: &'a str,
    /// IDs already produced, when the plan can produce one twice (unions).
    pub(super) seen: Option<BTreeSet<String>>,
    /// The query and its prefilter: scans skip the instances it rules out.
    pub(super) prefilter: Option<(&'a Query, &'a Prefilter)>,
}

/// Passes a candidate on, once.
fn emit(
    seen: &mut Option<BTreeSet<String>>,
    id: String,
    bytes: &[u8],
    verdict: Verdict,
    visit: &mut Visitor<'_>,
) -> Result<ControlFlow<()>, StoreError> {
    if let Some(seen) = seen
        && !seen.insert(id.clone())
    {
        return Ok(ControlFlow::Continue(()));
    }
    visit(id, bytes, verdict)
}

impl Source<'_> {
    /// Passes each candidate of `plan` to `visit`, until it breaks.
    pub(super) fn candidates(
        &mut self,
        plan: &Plan,
        visit: &mut Visitor<'_>,
    ) -> Result<ControlFlow<()>, StoreError> {
        match plan {
            Plan::Empty => Ok(ControlFlow::Continue(())),
            Plan::Scan => self.id_range(&Bound::Unbounded, &Bound::Unbounded, visit),
            Plan::IdRange { lower, upper } => self.id_range(lower, upper, visit),
            Plan::IdLookup { ids } => self.by_ids(ids.iter().cloned(), visit),
            Plan::IndexEq { .. } | Plan::IndexIn { .. } | Plan::IndexRange { .. } => {
                let mut ids = Vec::new();
                self.index_plan_ids(plan, &mut |id| ids.push(id))?;
                self.by_ids(ids.into_iter(), visit)
            }
            Plan::Union(parts) => {
                for p in parts {
                    if self.candidates(p, visit)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            }
        }
    }

    /// Instances whose IDs fall within the bounds, in ID order.
    fn id_range(
        &mut self,
        lower: &Bound<String>,
        upper: &Bound<String>,
        visit: &mut Visitor<'_>,
    ) -> Result<ControlFlow<()>, StoreError> {
        if range_is_empty(lower, upper) {
            return Ok(ControlFlow::Continue(()));
        }
        let prefix = self.keys.instances(self.collection);
        let start = match lower {
            Bound::Included(id) | Bound::Excluded(id) => {
                KeyBuf::with_prefix(&prefix).str(id).into_vec()
            }
            Bound::Unbounded => prefix.clone(),
        };
        let end = prefix_successor(&prefix);
        let range = KeyRange::new(
            Bound::Included(&start),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        // What the caller's visitor said last (the scan also stops past `upper`).
        let mut flow = ControlFlow::Continue(());
        let seen = &mut self.seen;
        let unbounded = matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded));
        let pre = self.prefilter;
        self.txn.try_scan(range, Direction::Forward, &mut |k, v| {
            // On a full scan without `_id` conditions, the ID is decoded only for instances
            // that pass the prefilter.
            let mut verdict = Verdict::Parse;
            if unbounded
                && let Some((query, pre)) = pre
                && !pre.reads_id()
            {
                verdict = pre.check(query, None, v);
                if verdict == Verdict::Skip {
                    return Ok(ControlFlow::Continue(()));
                }
            }
            let id = id_after(&prefix, k)?;
            if !within(lower, upper, &id) {
                return Ok(if above(upper, &id) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                });
            }
            if verdict == Verdict::Parse
                && let Some((query, pre)) = pre
            {
                verdict = pre.check(query, Some(&id), v);
                if verdict == Verdict::Skip {
                    return Ok(ControlFlow::Continue(()));
                }
            }
            flow = emit(seen, id, v, verdict, visit)?;
            Ok(flow)
        })?;
        Ok(flow)
    }

    /// Instances by ID, in the given order, skipping missing ones.
    pub(super) fn by_ids(
        &mut self,
        ids: impl Iterator<Item = String>,
        visit: &mut Visitor<'_>,
    ) -> Result<ControlFlow<()>, StoreError> {
        let prefix = self.keys.instances(self.collection);
        let seen = &mut self.seen;
        lookup::for_each_instance(self.txn, &prefix, ids, &mut |id, bytes| {
            emit(seen, id, bytes, Verdict::Parse, visit)
        })
    }

    /// Hands `sink` the IDs an index plan (equality, `$in`, range) reads from its index, in
    /// the order it reads them; nothing for other plans (see [`reads_index`]).
    pub(super) fn index_plan_ids(
        &self,
        plan: &Plan,
        sink: &mut dyn FnMut(String),
    ) -> Result<(), StoreError> {
        let Some((path, ranges)) = plan.key_ranges() else {
            return Ok(());
        };
        for (lower, upper) in &ranges {
            self.index_ids(path.as_str(), lower, upper, sink)?;
        }
        Ok(())
    }

    /// Hands `sink` the IDs of the entries of an index whose encoded values fall within the
    /// bounds, in value then ID order.
    fn index_ids(
        &self,
        path: &str,
        lower: &Bound<Vec<u8>>,
        upper: &Bound<Vec<u8>>,
        sink: &mut dyn FnMut(String),
    ) -> Result<(), StoreError> {
        if range_is_empty(lower, upper) {
            return Ok(());
        }
        let prefix = self.keys.index(self.collection, path);
        let join = |k: &[u8]| {
            let mut out = prefix.clone();
            out.extend_from_slice(k);
            out
        };
        let start = match lower {
            Bound::Included(k) | Bound::Excluded(k) => join(k),
            Bound::Unbounded => prefix.clone(),
        };
        let end = match upper {
            Bound::Included(k) | Bound::Excluded(k) => prefix_successor(&join(k)),
            Bound::Unbounded => prefix_successor(&prefix),
        };
        let range = KeyRange::new(
            Bound::Included(&start),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        self.txn.try_scan(range, Direction::Forward, &mut |k, _| {
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                return Ok(ControlFlow::Break(()));
            };
            let (value, id) = split_index_entry(rest)?;
            if within(lower, upper, value) {
                sink(id);
            } else if above(upper, value) {
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(())
    }
}

/// Whether `plan` reads an index (equality, `$in`, range): its candidates are the IDs
/// [`Source::index_plan_ids`] yields, looked up.
pub(super) fn reads_index(plan: &Plan) -> bool {
    matches!(
        plan,
        Plan::IndexEq { .. } | Plan::IndexIn { .. } | Plan::IndexRange { .. }
    )
}

/// Whether `x` lies within the bounds.
fn within<T: Ord + ?Sized, B: std::borrow::Borrow<T>>(
    lower: &Bound<B>,
    upper: &Bound<B>,
    x: &T,
) -> bool {
    let lo = match lower {
        Bound::Included(b) => x >= b.borrow(),
        Bound::Excluded(b) => x > b.borrow(),
        Bound::Unbounded => true,
    };
    lo && !above(upper, x)
}

/// Whether `x` lies above the upper bound.
fn above<T: Ord + ?Sized, B: std::borrow::Borrow<T>>(upper: &Bound<B>, x: &T) -> bool {
    match upper {
        Bound::Included(b) => x > b.borrow(),
        Bound::Excluded(b) => x >= b.borrow(),
        Bound::Unbounded => false,
    }
}
