//! Query execution: the ordering/paging stage shared by every executor, and a small in-memory
//! executor that simulates index scans with `BTreeMap`s (the reference the store-backed
//! collection layer mirrors, and what the tests run).
//!
//! Pipeline: [`plan`](super::plan()) → candidate IDs from the plan → [`Query::matches`] on the
//! stored instance → the caller's read filter (may hide or rewrite the instance) →
//! [`order_and_page`] (sort, then skip, then limit). Skip and limit therefore count only
//! instances that the reader can see, and sort + limit is the true top N.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde_json::Value;

use super::compare::compare_values;
use super::encode::encode_index_value;
use super::error::QueryError;
use super::model::{FieldPath, MissingSort, Query, SortKey};
use super::plan::{Plan, plan, range_is_empty};

/// An in-memory secondary index: encoded value → IDs of the instances holding it.
pub type MemIndex = BTreeMap<Vec<u8>, BTreeSet<String>>;

/// A result row: instance ID and the JSON the reader sees.
pub type Row = (String, Value);

/// What [`order_and_page`] needs of a row's document: the values it is sorted by.
pub trait SortValues {
    /// The value at each sort key's path (`None` where the document lacks it); `_id` keys are
    /// answered from the row's ID, so implementations may return anything for them.
    fn sort_values(&self, sort: &[SortKey]) -> Vec<Option<Value>>;
}

impl SortValues for Value {
    fn sort_values(&self, sort: &[SortKey]) -> Vec<Option<Value>> {
        sort.iter().map(|k| k.path.lookup(self).cloned()).collect()
    }
}

impl SortValues for Box<serde_json::value::RawValue> {
    /// Parses the JSON text once per row; only sorted queries pay it.
    fn sort_values(&self, sort: &[SortKey]) -> Vec<Option<Value>> {
        match serde_json::from_str::<Value>(self.get()) {
            Ok(doc) => doc.sort_values(sort),
            Err(_) => vec![None; sort.len()],
        }
    }
}

/// Sorts `rows` (already matched and read-filtered) by the query's sort keys, then ascending
/// ID, and returns `limit` rows after the first `skip`. Rows hold a parsed document ([`Row`])
/// or JSON text.
///
/// With a limit this keeps a bounded heap of `skip + limit` rows: O(n log k) time, O(k) memory.
/// Fails only for a go-threads-syntax sort field that a row lacks.
pub fn order_and_page<D, I>(query: &Query, rows: I) -> Result<Vec<(String, D)>, QueryError>
where
    D: SortValues,
    I: IntoIterator<Item = (String, D)>,
{
    let skip = usize::try_from(query.skip).unwrap_or(usize::MAX);
    let sort = query.sort.as_slice();
    // Without sort keys or paging the answer is the rows in ascending ID order, which is the
    // order most plans produce them in (an index equality, a scan): no ranking needed, and the
    // stable sort finds rows already in order in one pass.
    if sort.is_empty() && skip == 0 && query.limit == 0 {
        let mut rows: Vec<(String, D)> = rows.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(rows);
    }
    // A go-threads sort field missing in some row fails the query; the error names the smallest
    // such ID so that it does not depend on the order the plan produced the rows in.
    let mut missing: Option<(String, String)> = None;
    let ranked = rows.into_iter().map(|(id, doc)| {
        let r = rank(sort, id, doc);
        if let Some(path) = r.missing_error
            && missing.as_ref().is_none_or(|(_, id)| r.id < *id)
        {
            missing = Some((path.to_owned(), r.id.clone()));
        }
        r
    });
    let mut sorted: Vec<Ranked<D>> = if query.limit == 0 {
        let mut all: Vec<Ranked<D>> = ranked.collect();
        all.sort_by(|a, b| cmp_ranked(sort, a, b));
        all
    } else {
        let k = usize::try_from(query.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(skip);
        let mut heap = BinaryHeap::with_capacity(k.min(1024).saturating_add(1));
        for row in ranked {
            heap.push(HeapItem { sort, row });
            if heap.len() > k {
                heap.pop();
            }
        }
        heap.into_sorted_vec().into_iter().map(|h| h.row).collect()
    };
    if let Some((path, id)) = missing {
        return Err(QueryError::SortFieldMissing { path, id });
    }
    let limit = match query.limit {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    Ok(sorted
        .drain(..)
        .skip(skip)
        .take(limit)
        .map(|r| (r.id, r.doc))
        .collect())
}

/// How many read-filtered rows the caller may stop after, when the plan already yields them in
/// the final order (ascending `_id`) and the query has a limit; `None` means read them all.
pub fn stop_after(query: &Query, plan: &Plan) -> Option<usize> {
    if query.limit == 0 || !query.id_ordered() || !plan.yields_id_order() {
        return None;
    }
    let n = query.skip.saturating_add(query.limit);
    Some(usize::try_from(n).unwrap_or(usize::MAX))
}

/// A row with its sort keys extracted.
struct Ranked<'q, D> {
    keys: Vec<Option<Value>>,
    id: String,
    doc: D,
    /// The path of a sort key that must exist but is missing in this row.
    missing_error: Option<&'q str>,
}

fn rank<D: SortValues>(sort: &[SortKey], id: String, doc: D) -> Ranked<'_, D> {
    let mut keys = if sort.is_empty() {
        Vec::new()
    } else {
        doc.sort_values(sort)
    };
    let mut missing_error = None;
    for (k, v) in sort.iter().zip(keys.iter_mut()) {
        if k.path.is_id() {
            *v = Some(Value::String(id.clone()));
        }
        if v.is_none() && k.missing == MissingSort::Error && missing_error.is_none() {
            missing_error = Some(k.path.as_str());
        }
    }
    Ranked {
        keys,
        id,
        doc,
        missing_error,
    }
}

fn cmp_ranked<D>(sort: &[SortKey], a: &Ranked<'_, D>, b: &Ranked<'_, D>) -> Ordering {
    for ((k, x), y) in sort.iter().zip(&a.keys).zip(&b.keys) {
        let o = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare_values(x, y),
        };
        let o = if k.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.id.as_bytes().cmp(b.id.as_bytes())
}

/// Heap entry ordered by result order (the heap's top is the last row in result order).
struct HeapItem<'q, D> {
    sort: &'q [SortKey],
    row: Ranked<'q, D>,
}

impl<D> PartialEq for HeapItem<'_, D> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<D> Eq for HeapItem<'_, D> {}

impl<D> PartialOrd for HeapItem<'_, D> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<D> Ord for HeapItem<'_, D> {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_ranked(self.sort, &self.row, &other.row)
    }
}

/// Builds the in-memory index on `path` under the index contract (one entry per instance whose
/// value at `path` is indexable).
pub fn build_index(docs: &BTreeMap<String, Value>, path: &FieldPath) -> MemIndex {
    let mut index = MemIndex::new();
    for (id, doc) in docs {
        if let Some(key) = path.lookup(doc).and_then(encode_index_value) {
            index.entry(key).or_default().insert(id.clone());
        }
    }
    index
}

/// The candidate IDs a plan yields, in plan order, each once. A plan naming an index that is
/// not in `indexes` yields nothing.
pub fn plan_candidates(
    plan: &Plan,
    docs: &BTreeMap<String, Value>,
    indexes: &BTreeMap<String, MemIndex>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    collect(plan, docs, indexes, &mut seen, &mut out);
    out
}

fn collect(
    plan: &Plan,
    docs: &BTreeMap<String, Value>,
    indexes: &BTreeMap<String, MemIndex>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) {
    let mut push = |id: &String| {
        if docs.contains_key(id) && seen.insert(id.clone()) {
            out.push(id.clone());
        }
    };
    let index = |p: &FieldPath| indexes.get(p.as_str());
    match plan {
        Plan::Empty => {}
        Plan::Scan => docs.keys().for_each(push),
        Plan::IdLookup { ids } => ids.iter().for_each(push),
        Plan::IdRange { lower, upper } => {
            if !range_is_empty(lower, upper) {
                docs.range::<String, _>((lower.clone(), upper.clone()))
                    .for_each(|(id, _)| push(id));
            }
        }
        Plan::IndexEq { path, key } => {
            if let Some(ids) = index(path).and_then(|ix| ix.get(key)) {
                ids.iter().for_each(push);
            }
        }
        Plan::IndexIn { path, keys } => {
            if let Some(ix) = index(path) {
                keys.iter()
                    .filter_map(|k| ix.get(k))
                    .flatten()
                    .for_each(push);
            }
        }
        Plan::IndexRange { path, lower, upper } => {
            if let Some(ix) = index(path).filter(|_| !range_is_empty(lower, upper)) {
                ix.range::<Vec<u8>, _>((lower.clone(), upper.clone()))
                    .flat_map(|(_, ids)| ids)
                    .for_each(push);
            }
        }
        Plan::Union(parts) => {
            for p in parts {
                collect(p, docs, indexes, seen, out);
            }
        }
    }
}

/// Runs `query` with a given plan over in-memory instances: candidates → [`Query::matches`] →
/// `read_filter` (returns the JSON the reader sees, or `None` to hide the instance) →
/// [`order_and_page`].
pub fn run_plan_in_memory(
    docs: &BTreeMap<String, Value>,
    indexes: &BTreeMap<String, MemIndex>,
    query: &Query,
    plan: &Plan,
    read_filter: &mut dyn FnMut(&str, &Value) -> Option<Value>,
) -> Result<Vec<Row>, QueryError> {
    let mut rows = Vec::new();
    let stop = stop_after(query, plan);
    for id in plan_candidates(plan, docs, indexes) {
        if stop.is_some_and(|n| rows.len() >= n) {
            break;
        }
        let Some(doc) = docs.get(&id) else { continue };
        if !query.matches(&id, doc) {
            continue;
        }
        if let Some(seen) = read_filter(&id, doc) {
            rows.push((id, seen));
        }
    }
    order_and_page(query, rows)
}

/// Plans and runs `query` over in-memory instances with no read filter. `indexes` maps an
/// indexed path (dotted) to its index, e.g. from [`build_index`].
pub fn run_in_memory(
    docs: &BTreeMap<String, Value>,
    indexes: &BTreeMap<String, MemIndex>,
    query: &Query,
) -> Result<Vec<Row>, QueryError> {
    let plan = plan(query, |p| indexes.contains_key(p.as_str()))?;
    run_plan_in_memory(docs, indexes, query, &plan, &mut |_, d| Some(d.clone()))
}

/// The same as [`run_in_memory`], with a read filter.
pub fn run_in_memory_filtered(
    docs: &BTreeMap<String, Value>,
    indexes: &BTreeMap<String, MemIndex>,
    query: &Query,
    read_filter: &mut dyn FnMut(&str, &Value) -> Option<Value>,
) -> Result<Vec<Row>, QueryError> {
    let plan = plan(query, |p| indexes.contains_key(p.as_str()))?;
    run_plan_in_memory(docs, indexes, query, &plan, read_filter)
}
