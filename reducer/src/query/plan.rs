//! The planner: which index range yields the candidate instances for a query.
//!
//! A plan only narrows the candidates. The executor re-applies the filter ([`Query::matches`])
//! to each candidate, so every valid plan gives the same result; plans differ only in how many
//! instances they read. The store-backed executor leaves out the top-level conjuncts an index
//! plan decides by itself ([`Plan::residual`]): an index read yields exactly the entries in its
//! key ranges, so those conjuncts hold on every candidate.
//!
//! Index contract (the in-memory executor and the store-backed collection layer share it): the
//! index on path `p` holds one entry `encode_index_value(v) -> id` for each instance whose value
//! `v = p.lookup(doc)` is indexable (null, bool, number, string); instances with the field
//! missing, or holding an array or object, have no entry. The implicit `_id` index is the
//! primary key order.
//!
//! Rules:
//!
//! * Only conjuncts of the top-level AND are used ("sargable" conjuncts): on `_id`, `Eq` /
//!   `$in` of strings become [`Plan::IdLookup`], `Gt/Ge/Lt/Le` with a string become
//!   [`Plan::IdRange`] (a non-string operand on `_id` can match nothing: [`Plan::Empty`]); on an
//!   indexed path, `Eq` with a scalar becomes [`Plan::IndexEq`], `$in` of scalars
//!   [`Plan::IndexIn`], and `Gt/Ge/Lt/Le` with a scalar a [`Plan::IndexRange`] limited to that
//!   scalar's type (comparisons never cross types); several ranges on one path are intersected.
//!   `Ne`, `$ne`, `$nin`, `$not`, `$nor`, `$exists` and array/object operands are not sargable.
//! * One OR conjunct (a top-level `ors` / `$or`, with go-threads' `ands` as its first branch)
//!   may become a [`Plan::Union`]: each branch, together with the other sargable conjuncts, is
//!   planned on its own; if any branch needs a full scan, the union is not a candidate.
//! * The cheapest candidate by [`Plan::cost`] wins; ties go to the first found; no candidate
//!   means [`Plan::Scan`].
//! * go-threads' `index` member: that index must exist ([`QueryError::IndexNotFound`]), and
//!   the plan reads that index — its sargable range if there is one, else all of it.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde_json::Value;

use super::encode::{encode_index_value, index_tag};
use super::error::QueryError;
use super::model::{CmpOp, FieldPath, Filter, Query};
use super::parse_threads::MAX_DEPTH;

/// How to produce candidate instances for a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No instance can match; read nothing.
    Empty,
    /// Read every instance in `_id` order.
    Scan,
    /// Read these instance IDs (sorted, distinct).
    IdLookup {
        /// The IDs.
        ids: Vec<String>,
    },
    /// Read the instances whose IDs fall in this range, in `_id` order.
    IdRange {
        /// Lower bound.
        lower: Bound<String>,
        /// Upper bound.
        upper: Bound<String>,
    },
    /// Read the entries of the index on `path` with exactly this key.
    IndexEq {
        /// The indexed path.
        path: FieldPath,
        /// The encoded value.
        key: Vec<u8>,
    },
    /// Read the entries of the index on `path` with any of these keys (sorted, distinct).
    IndexIn {
        /// The indexed path.
        path: FieldPath,
        /// The encoded values.
        keys: Vec<Vec<u8>>,
    },
    /// Read the entries of the index on `path` whose keys fall in this range, in key order.
    IndexRange {
        /// The indexed path.
        path: FieldPath,
        /// Lower bound on encoded keys.
        lower: Bound<Vec<u8>>,
        /// Upper bound on encoded keys.
        upper: Bound<Vec<u8>>,
    },
    /// Read the candidates of each sub-plan; an ID can come from several sub-plans and must be
    /// processed once.
    Union(Vec<Plan>),
}

const SCAN_COST: u64 = 10_000;

impl Plan {
    /// A rough relative cost used to choose among plans (lower is better); [`Plan::Scan`] costs
    /// 10 000.
    pub fn cost(&self) -> u64 {
        let bounded = |b: &Bound<Vec<u8>>| matches!(b, Bound::Included(k) | Bound::Excluded(k) if k.len() > 1);
        match self {
            Plan::Empty => 0,
            Plan::IdLookup { ids } => ids.len() as u64,
            Plan::IndexEq { .. } => 4,
            Plan::IndexIn { keys, .. } => 4 * keys.len() as u64,
            Plan::IdRange { lower, upper } => {
                let sides = [lower, upper]
                    .iter()
                    .filter(|b| !matches!(b, Bound::Unbounded))
                    .count();
                [SCAN_COST, 500, 50][sides]
            }
            Plan::IndexRange { lower, upper, .. } => {
                match u8::from(bounded(lower)) + u8::from(bounded(upper)) {
                    0 => 5_000,
                    1 => 600,
                    _ => 60,
                }
            }
            Plan::Scan => SCAN_COST,
            Plan::Union(parts) => parts.iter().map(Plan::cost).sum(),
        }
    }

    /// Whether the candidates come in ascending `_id` order (so a query ordered by `_id` can
    /// stop reading after `skip + limit` results).
    pub fn yields_id_order(&self) -> bool {
        matches!(
            self,
            Plan::Empty | Plan::Scan | Plan::IdLookup { .. } | Plan::IdRange { .. }
        )
    }

    /// The index path this plan reads, if it reads a secondary index.
    pub fn index_path(&self) -> Option<&FieldPath> {
        match self {
            Plan::IndexEq { path, .. }
            | Plan::IndexIn { path, .. }
            | Plan::IndexRange { path, .. } => Some(path),
            _ => None,
        }
    }

    /// What is left of `filter` to check on the candidates this plan yields, or `None` when
    /// nothing is dropped. An index plan yields exactly the instances whose index key lies in
    /// its key ranges, and an index key is the encoding of the instance's value at the path,
    /// which keeps equality and order within a type (the index contract above); so a top-level
    /// conjunct on that path whose own key range holds all of the plan's is true of every
    /// candidate and need not be checked again. Dropping only whole top-level conjuncts keeps
    /// the rest of the filter, and every other plan, as they are.
    pub fn residual(&self, filter: &Filter) -> Option<Filter> {
        let (path, ranges) = self.key_ranges()?;
        let parts = match filter {
            Filter::And(parts) => parts.as_slice(),
            other => std::slice::from_ref(other),
        };
        let kept: Vec<Filter> = parts
            .iter()
            .filter(|c| !holds_in(path, &ranges, c))
            .cloned()
            .collect();
        (kept.len() < parts.len()).then(|| Filter::and(kept))
    }

    /// The index this plan reads and the ranges of encoded values it reads from it: what the
    /// store-backed reader reads, and what [`Plan::residual`] reasons about, from one place.
    pub(crate) fn key_ranges(&self) -> Option<(&FieldPath, Vec<ValueRange>)> {
        let exactly = |k: &Vec<u8>| (Bound::Included(k.clone()), Bound::Included(k.clone()));
        match self {
            Plan::IndexEq { path, key } => Some((path, vec![exactly(key)])),
            Plan::IndexIn { path, keys } => Some((path, keys.iter().map(exactly).collect())),
            Plan::IndexRange { path, lower, upper } => {
                Some((path, vec![(lower.clone(), upper.clone())]))
            }
            Plan::Empty
            | Plan::Scan
            | Plan::IdLookup { .. }
            | Plan::IdRange { .. }
            | Plan::Union(_) => None,
        }
    }
}

/// Whether `conjunct` is true of every instance whose value at `path` (an indexed path) has an
/// index key within one of `ranges`.
fn holds_in(path: &FieldPath, ranges: &[ValueRange], conjunct: &Filter) -> bool {
    match conjunct {
        Filter::Cmp { path: p, op, value } if p == path => {
            let own = encode_index_value(value)
                .zip(index_tag(value))
                .and_then(|(key, tag)| cmp_range(*op, key, tag));
            own.is_some_and(|own| {
                ranges
                    .iter()
                    .all(|r| intersect(r.clone(), own.clone()) == *r)
            })
        }
        Filter::In { path: p, values } if p == path => {
            let keys: Vec<Vec<u8>> = values.iter().filter_map(encode_index_value).collect();
            ranges.iter().all(|r| match r {
                (Bound::Included(lo), Bound::Included(hi)) => lo == hi && keys.contains(lo),
                _ => false,
            })
        }
        // Only values with an index key have index entries.
        Filter::Indexable { path: p } => p == path,
        _ => false,
    }
}

/// Chooses the plan for `query`; `is_indexed` says which paths have a secondary index (`_id`
/// always has one).
pub fn plan(query: &Query, is_indexed: impl Fn(&FieldPath) -> bool) -> Result<Plan, QueryError> {
    let ix: &dyn Fn(&FieldPath) -> bool = &is_indexed;
    let mut cands = candidates(&query.filter, ix, 0);
    if let Some(hint) = query.index.as_ref().filter(|p| !p.is_id()) {
        if !ix(hint) {
            return Err(QueryError::IndexNotFound {
                path: hint.as_str().to_owned(),
            });
        }
        cands.retain(|p| *p == Plan::Empty || p.index_path() == Some(hint));
        return Ok(best(cands).unwrap_or_else(|| Plan::IndexRange {
            path: hint.clone(),
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }));
    }
    Ok(best(cands).unwrap_or(Plan::Scan))
}

/// Every plan the planner considers valid for `query` (always including [`Plan::Scan`]),
/// ignoring the `index` member's preference. Each of them yields a superset of the matching
/// instances; tests run them all to check that they agree.
pub fn candidate_plans(query: &Query, is_indexed: impl Fn(&FieldPath) -> bool) -> Vec<Plan> {
    let mut all = vec![Plan::Scan];
    for p in candidates(&query.filter, &is_indexed, 0) {
        if !all.contains(&p) {
            all.push(p);
        }
    }
    all
}

fn best(cands: Vec<Plan>) -> Option<Plan> {
    let mut best: Option<Plan> = None;
    for c in cands {
        if best.as_ref().is_none_or(|b| c.cost() < b.cost()) {
            best = Some(c);
        }
    }
    best.filter(|b| b.cost() < SCAN_COST)
}

/// All non-scan candidate plans for a filter.
fn candidates(f: &Filter, ix: &dyn Fn(&FieldPath) -> bool, depth: usize) -> Vec<Plan> {
    match f {
        Filter::And(parts) => conj_candidates(parts, ix, depth),
        other => conj_candidates(std::slice::from_ref(other), ix, depth),
    }
}

/// A range of encoded index values (lower and upper bound).
pub(crate) type ValueRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);
type IdBounds = (Bound<String>, Bound<String>);

fn conj_candidates(parts: &[Filter], ix: &dyn Fn(&FieldPath) -> bool, depth: usize) -> Vec<Plan> {
    let mut out = Vec::new();
    let mut ranges: BTreeMap<&FieldPath, (ValueRange, usize)> = BTreeMap::new();
    let mut id_range: Option<(IdBounds, usize)> = None;
    let mut union_done = false;
    for part in parts {
        match part {
            Filter::False => return vec![Plan::Empty],
            Filter::Cmp { path, op, value } if path.is_id() => match (op, value) {
                (CmpOp::Ne, _) => {}
                (CmpOp::Eq, Value::String(s)) => out.push(Plan::IdLookup {
                    ids: vec![s.clone()],
                }),
                (_, Value::String(s)) => {
                    let r = id_bounds(*op, s);
                    out.push(Plan::IdRange {
                        lower: r.0.clone(),
                        upper: r.1.clone(),
                    });
                    id_range = Some(match id_range {
                        None => (r, 1),
                        Some((acc, n)) => (intersect(acc, r), n + 1),
                    });
                }
                _ => out.push(Plan::Empty),
            },
            Filter::Cmp { path, op, value } if ix(path) => {
                let (Some(key), Some(tag)) = (encode_index_value(value), index_tag(value)) else {
                    continue;
                };
                if *op == CmpOp::Eq {
                    out.push(Plan::IndexEq {
                        path: path.clone(),
                        key,
                    });
                    continue;
                }
                let Some(r) = cmp_range(*op, key, tag) else {
                    continue;
                };
                out.push(index_range(path, r.clone()));
                let slot = ranges
                    .entry(path)
                    .or_insert(((Bound::Unbounded, Bound::Unbounded), 0));
                slot.0 = intersect(slot.0.clone(), r);
                slot.1 += 1;
            }
            Filter::In { path, values } if path.is_id() => {
                let mut ids: Vec<String> = values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                ids.sort();
                ids.dedup();
                out.push(if ids.is_empty() {
                    Plan::Empty
                } else {
                    Plan::IdLookup { ids }
                });
            }
            Filter::In { path, values } if ix(path) => {
                let keys: Option<Vec<Vec<u8>>> = values.iter().map(encode_index_value).collect();
                if let Some(mut keys) = keys {
                    keys.sort();
                    keys.dedup();
                    out.push(Plan::IndexIn {
                        path: path.clone(),
                        keys,
                    });
                }
            }
            Filter::Indexable { path } if !path.is_id() && ix(path) => {
                out.push(index_range(path, (Bound::Unbounded, Bound::Unbounded)));
            }
            Filter::Or(branches) if !union_done && depth < MAX_DEPTH => {
                union_done = true;
                let others: Vec<&Filter> = parts
                    .iter()
                    .filter(|p| !matches!(p, Filter::Or(_)))
                    .collect();
                if let Some(u) = union_plan(&others, branches, ix, depth + 1) {
                    out.push(u);
                }
            }
            _ => {}
        }
    }
    for (path, (r, n)) in ranges {
        if n > 1 {
            out.push(index_range(path, r));
        }
    }
    if let Some(((lower, upper), n)) = id_range
        && n > 1
    {
        out.push(if range_is_empty(&lower, &upper) {
            Plan::Empty
        } else {
            Plan::IdRange { lower, upper }
        });
    }
    out
}

/// A union over the branches of an OR conjunct, each planned with the other conjuncts.
fn union_plan(
    others: &[&Filter],
    branches: &[Filter],
    ix: &dyn Fn(&FieldPath) -> bool,
    depth: usize,
) -> Option<Plan> {
    let mut parts = Vec::new();
    for b in branches {
        let mut conj: Vec<Filter> = others.iter().map(|f| (*f).clone()).collect();
        conj.push(b.clone());
        let f = Filter::and(conj);
        let found = match best(candidates(&f, ix, depth))? {
            Plan::Union(inner) => inner,
            p => vec![p],
        };
        for p in found {
            if p != Plan::Empty && !parts.contains(&p) {
                parts.push(p);
            }
        }
    }
    Some(match parts.len() {
        0 => Plan::Empty,
        1 => parts.pop().unwrap_or(Plan::Empty),
        _ => Plan::Union(parts),
    })
}

/// The index keys of the values of one type that satisfy `op` against the value encoded as
/// `key` with type tag `tag` (comparisons never cross types); `None` for `Ne`, which is no
/// range.
fn cmp_range(op: CmpOp, key: Vec<u8>, tag: u8) -> Option<ValueRange> {
    Some(match op {
        CmpOp::Ne => return None,
        CmpOp::Eq => (Bound::Included(key.clone()), Bound::Included(key)),
        CmpOp::Gt => (Bound::Excluded(key), Bound::Excluded(vec![tag + 1])),
        CmpOp::Ge => (Bound::Included(key), Bound::Excluded(vec![tag + 1])),
        CmpOp::Lt => (Bound::Included(vec![tag]), Bound::Excluded(key)),
        CmpOp::Le => (Bound::Included(vec![tag]), Bound::Included(key)),
    })
}

fn index_range(path: &FieldPath, (lower, upper): ValueRange) -> Plan {
    if range_is_empty(&lower, &upper) {
        Plan::Empty
    } else {
        Plan::IndexRange {
            path: path.clone(),
            lower,
            upper,
        }
    }
}

fn id_bounds(op: CmpOp, s: &str) -> IdBounds {
    let s = s.to_owned();
    match op {
        CmpOp::Gt => (Bound::Excluded(s), Bound::Unbounded),
        CmpOp::Ge => (Bound::Included(s), Bound::Unbounded),
        CmpOp::Lt => (Bound::Unbounded, Bound::Excluded(s)),
        CmpOp::Le => (Bound::Unbounded, Bound::Included(s)),
        CmpOp::Eq => (Bound::Included(s.clone()), Bound::Included(s)),
        CmpOp::Ne => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// The intersection of two ranges.
fn intersect<T: Ord>(a: (Bound<T>, Bound<T>), b: (Bound<T>, Bound<T>)) -> (Bound<T>, Bound<T>) {
    (tighter(a.0, b.0, true), tighter(a.1, b.1, false))
}

/// The tighter of two lower (`lower == true`) or upper bounds.
fn tighter<T: Ord>(x: Bound<T>, y: Bound<T>, lower: bool) -> Bound<T> {
    use Bound::*;
    match (x, y) {
        (Unbounded, b) | (b, Unbounded) => b,
        (x, y) => {
            let (kx, ky) = (bound_key(&x), bound_key(&y));
            match kx.cmp(&ky) {
                std::cmp::Ordering::Equal => {
                    if matches!(x, Excluded(_)) {
                        x
                    } else {
                        y
                    }
                }
                std::cmp::Ordering::Less => {
                    if lower {
                        y
                    } else {
                        x
                    }
                }
                std::cmp::Ordering::Greater => {
                    if lower {
                        x
                    } else {
                        y
                    }
                }
            }
        }
    }
}

fn bound_key<T>(b: &Bound<T>) -> Option<&T> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

/// Whether no key lies between `lower` and `upper`. Executors must treat such ranges as empty
/// (a `BTreeMap` range over them would panic).
pub fn range_is_empty<T: Ord>(lower: &Bound<T>, upper: &Bound<T>) -> bool {
    match (lower, upper) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}
