//! The read side: collection look-ups, `get`, `has` and `find` over a thread's folded state.
//!
//! `find` runs the query pipeline of [`crate::query`] against the store: [`plan()`] with the
//! collection's indexes, candidates read from the instance key space (scan, `_id` look-up or
//! range) or from index entries (equality, `$in`, range, union), [`Query::matches`] on each
//! stored instance (less the conjuncts an index plan decides by itself, [`Plan::residual`]),
//! the collection's read filter, then [`order_and_page`]. Every plan yields a superset of the
//! matches, so results do not depend on which indexes exist. [`find_json`] gives
//! the same rows as JSON text, without parsing instances that nothing needs parsed. Candidates
//! come from `candidates`; an index query with thousands of them looks them up on several
//! threads ([`super::lookup`]).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde_json::Value;
use serde_json::value::RawValue;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{Direction, KeyRange, MAX_KEY_LEN, ReadTxn, StoreError};

use super::apply::{config_key, load_config, load_instance};
use super::candidates::{Source, reads_index};
use super::event::CollectionConfig;
use super::keys::Keys;
use super::lookup;
use super::scripts::Scripts;
use crate::query::exec::{SortValues, order_and_page, stop_after};
use crate::query::raw::{Prefilter, Verdict};
use crate::query::{Plan, Query, QueryError, plan};

/// A result row: instance ID and the JSON the reader sees.
pub type Row = crate::query::exec::Row;

/// A result row of [`find_json`]: instance ID and the JSON text the reader sees.
pub type JsonRow = (String, Box<RawValue>);

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The collection does not exist.
    #[error("collection not found: \"{0}\"")]
    CollectionNotFound(String),
    /// The instance does not exist or the read filter hides it.
    #[error("instance not found: \"{0}\"")]
    InstanceNotFound(String),
    /// The query is invalid, names a missing index, or cannot be ordered.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The store failed or holds malformed data.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A collection's definition.
pub fn collection_info(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    name: &str,
) -> Result<CollectionConfig, DbError> {
    load_config(txn, &Keys::new(thread), name)?
        .ok_or_else(|| DbError::CollectionNotFound(name.to_owned()))
}

/// The stored config of collection `name`, unparsed (`None` when there is no such
/// collection).
pub fn collection_config_bytes(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    name: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    match config_key(&Keys::new(thread), name) {
        Some(key) => txn.get(&key),
        None => Ok(None),
    }
}

/// Whether collection `name` exists (its config is not parsed).
pub fn collection_exists(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    name: &str,
) -> Result<bool, StoreError> {
    let Some(key) = config_key(&Keys::new(thread), name) else {
        return Ok(false);
    };
    let mut found = false;
    txn.get_with(&key, &mut |v| found = v.is_some())?;
    Ok(found)
}

/// Every collection's definition, by name.
pub fn list_collections(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
) -> Result<Vec<CollectionConfig>, DbError> {
    let prefix = Keys::new(thread).collections();
    let mut out = Vec::new();
    txn.try_scan(
        KeyRange::prefix(&prefix),
        Direction::Forward,
        &mut |_, v| {
            let config = serde_json::from_slice(v)
                .map_err(|e| StoreError::Corrupt(format!("collection config: {e}")))?;
            out.push(config);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// The stored instance, unfiltered (`None` if there is none).
pub fn stored(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    collection: &str,
    id: &str,
) -> Result<Option<Value>, DbError> {
    if !collection_exists(txn, thread, collection)? {
        return Err(DbError::CollectionNotFound(collection.to_owned()));
    }
    Ok(read_instance(txn, &Keys::new(thread), collection, id)?)
}

/// The instance as `reader` sees it through the read filter; "instance not found" when it is
/// missing or hidden.
pub fn get(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    collection: &str,
    id: &str,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<Value, DbError> {
    let config = collection_info(txn, thread, collection)?;
    read_instance(txn, &Keys::new(thread), collection, id)?
        .and_then(|doc| visible(&config, doc, reader, scripts))
        .ok_or_else(|| DbError::InstanceNotFound(id.to_owned()))
}

/// Whether every one of `ids` exists and is visible to `reader`.
pub fn has(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    collection: &str,
    ids: &[&str],
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<bool, DbError> {
    let config = collection_info(txn, thread, collection)?;
    let keys = Keys::new(thread);
    for id in ids {
        let seen = read_instance(txn, &keys, collection, id)?
            .and_then(|doc| visible(&config, doc, reader, scripts));
        if seen.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `query` on a collection for `reader`, with the plan the planner picks for the
/// collection's indexes.
pub fn find(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    collection: &str,
    query: &Query,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<Vec<Row>, DbError> {
    let config = collection_info(txn, thread, collection)?;
    let plan = plan_for(&config, query)?;
    run(txn, thread, &config, query, &plan, reader, scripts)
}

/// [`find`], with each result as JSON text instead of a parsed [`Value`]: the same rows, in the
/// same order (parsing each gives [`find`]'s). Instances the read filter does not rewrite are
/// the stored text, and the filter is decided on the members it reads, so a query that neither
/// sorts nor meets a read filter parses no whole instance. What the daemon sends to clients.
pub fn find_json(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    collection: &str,
    query: &Query,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<Vec<JsonRow>, DbError> {
    let config = collection_info(txn, thread, collection)?;
    let plan = plan_for(&config, query)?;
    run(txn, thread, &config, query, &plan, reader, scripts)
}

/// The plan for `query` with the collection's indexes.
fn plan_for(config: &CollectionConfig, query: &Query) -> Result<Plan, QueryError> {
    let indexed: BTreeSet<&str> = config.indexes.iter().map(|s| s.path.as_str()).collect();
    plan(query, |p| indexed.contains(p.as_str()))
}

/// Runs `query` with a given plan (for tests and diagnostics). A plan that reads an index the
/// collection does not have yields nothing from that index.
pub fn find_with_plan(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    collection: &str,
    query: &Query,
    plan: &Plan,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<Vec<Row>, DbError> {
    let config = collection_info(txn, thread, collection)?;
    run(txn, thread, &config, query, plan, reader, scripts)
}

/// The form a query's rows hold their instances in: a parsed [`Value`] or JSON text.
trait RowDoc: SortValues + Sized {
    /// Whether to decide the filter on the raw members before parsing (worth it only when the
    /// row does not need the parsed instance anyway).
    const PREFILTER: bool;
    /// The row of a stored instance (its JSON text) that matches and that no read filter
    /// rewrites.
    fn from_stored(text: &str) -> Result<Self, serde_json::Error>;
    /// The row of a document already parsed (or a read filter's output).
    fn from_value(doc: Value) -> Result<Self, serde_json::Error>;
    /// Whether the row holds a JSON object.
    fn is_object(&self) -> bool;
}

impl RowDoc for Value {
    const PREFILTER: bool = false;
    fn from_stored(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
    fn from_value(doc: Value) -> Result<Self, serde_json::Error> {
        Ok(doc)
    }
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
}

impl RowDoc for Box<RawValue> {
    const PREFILTER: bool = true;
    /// Checks that the text is JSON (a corrupt store fails the query, with the error
    /// [`find`]'s parse gives) and copies it.
    fn from_stored(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<&RawValue>(text)
            .map(ToOwned::to_owned)
            .map_err(|e| serde_json::from_str::<Value>(text).err().unwrap_or(e))
    }
    fn from_value(doc: Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(&doc)
    }
    /// The text starts with `{` (a `RawValue` holds no leading white space).
    fn is_object(&self) -> bool {
        self.get().starts_with('{')
    }
}

fn run<D: RowDoc + Send>(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    config: &CollectionConfig,
    query: &Query,
    plan: &Plan,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<Vec<(String, D)>, DbError> {
    let keys = Keys::new(thread);
    let stop = stop_after(query, plan);
    let narrowed = plan.residual(&query.filter).map(|filter| Query {
        filter,
        ..query.clone()
    });
    let check = RowCheck::new(query, narrowed.as_ref());
    let rewrites = !config.read_filter.is_empty();
    let mut src = Source {
        txn,
        keys: &keys,
        collection: &config.name,
        seen: matches!(plan, Plan::Union(_)).then(BTreeSet::new),
        prefilter: check.prefilter.as_ref().map(|p| (check.query, p)),
    };
    let mut rows: Vec<(String, D)> = Vec::new();
    if !rewrites && stop.is_none() && reads_index(plan) {
        // An index plan read to the end, without a read filter (which runs on this thread's
        // JavaScript engine), may look its instances up on several threads, starting while
        // the index is still being read.
        let prefix = keys.instances(&config.name);
        let row = |id: String, bytes: &[u8]| plain_row(&check, id, bytes, Verdict::Parse);
        rows = lookup::rows_by_ids(txn, &prefix, lookup::query_threads(), &row, |sink| {
            src.index_plan_ids(plan, sink)
        })?;
    } else {
        let mut visit = |id: String, bytes: &[u8], verdict: Verdict| {
            if stop.is_some_and(|n| rows.len() >= n) {
                return Ok(ControlFlow::Break(()));
            }
            let row = if rewrites {
                filtered_row(config, &check, id, bytes, verdict, reader, scripts)?
            } else {
                plain_row(&check, id, bytes, verdict)?
            };
            rows.extend(row);
            Ok(ControlFlow::Continue(()))
        };
        let _stopped = src.candidates(plan, &mut visit)?;
    }
    Ok(order_and_page(query, rows)?)
}

/// How a query's rows are checked: against what the plan leaves of the filter
/// ([`Plan::residual`]; sorting and paging follow the whole query), with its prefilter.
struct RowCheck<'q> {
    /// The query with the filter left to check.
    query: &'q Query,
    prefilter: Option<Prefilter>,
    /// The plan decided conjuncts on fields by itself. Those are false on anything but an
    /// object, so a stored instance that is not one (only a damaged store holds such) is no
    /// match, as under the whole filter.
    objects_only: bool,
}

impl<'q> RowCheck<'q> {
    fn new(query: &'q Query, narrowed: Option<&'q Query>) -> Self {
        let query = narrowed.unwrap_or(query);
        RowCheck {
            query,
            prefilter: Prefilter::new(query),
            objects_only: narrowed.is_some(),
        }
    }
}

/// The row of a stored instance of a collection without a read filter, or `None` when the
/// query rules it out. `verdict` is what the prefilter found, if it looked.
fn plain_row<D: RowDoc>(
    check: &RowCheck<'_>,
    id: String,
    bytes: &[u8],
    verdict: Verdict,
) -> Result<Option<(String, D)>, StoreError> {
    let text = stored_text(bytes)?;
    let verdict = match (&check.prefilter, verdict) {
        (_, Verdict::Skip | Verdict::Match) => verdict,
        // A filter that reads nothing matches every instance.
        (None, Verdict::Parse) => Verdict::Match,
        (Some(pre), Verdict::Parse) if D::PREFILTER => pre.check(check.query, Some(&id), bytes),
        (Some(_), Verdict::Parse) => Verdict::Parse,
    };
    let doc = match verdict {
        Verdict::Skip => return Ok(None),
        Verdict::Match => D::from_stored(text).map_err(corrupt_instance)?,
        Verdict::Parse => {
            let doc: Value = serde_json::from_str(text).map_err(corrupt_instance)?;
            if !check.query.matches(&id, &doc) {
                return Ok(None);
            }
            D::from_value(doc).map_err(corrupt_instance)?
        }
    };
    if check.objects_only && !doc.is_object() {
        return Ok(None);
    }
    Ok(Some((id, doc)))
}

/// The row `reader` sees of a stored instance of a collection with a read filter, or `None`
/// when the query rules it out or the filter hides it.
fn filtered_row<D: RowDoc>(
    config: &CollectionConfig,
    check: &RowCheck<'_>,
    id: String,
    bytes: &[u8],
    verdict: Verdict,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Result<Option<(String, D)>, StoreError> {
    let text = stored_text(bytes)?;
    if verdict == Verdict::Skip {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(text).map_err(corrupt_instance)?;
    if check.objects_only && !doc.is_object() {
        return Ok(None);
    }
    if verdict != Verdict::Match && !check.query.matches(&id, &doc) {
        return Ok(None);
    }
    let Some(seen) = visible(config, doc, reader, scripts) else {
        return Ok(None);
    };
    let doc =
        D::from_value(seen).map_err(|e| StoreError::Corrupt(format!("read filter output: {e}")))?;
    Ok(Some((id, doc)))
}

/// The stored JSON of an instance as text.
fn stored_text(bytes: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes).map_err(corrupt_instance)
}

fn corrupt_instance(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("instance: {e}"))
}

/// The JSON `reader` sees of `doc`, or `None` when the read filter hides it.
fn visible(
    config: &CollectionConfig,
    doc: Value,
    reader: Option<&str>,
    scripts: &mut Scripts,
) -> Option<Value> {
    if config.read_filter.is_empty() {
        Some(doc)
    } else {
        scripts.filter(&config.read_filter, reader, &doc)
    }
}

/// The stored JSON text of an instance of `collection` (assumed to exist), unfiltered and
/// unparsed (checked to be JSON, as a corrupt instance fails a read).
pub fn read_instance_json(
    txn: &dyn ReadTxn,
    keys: &Keys,
    collection: &str,
    id: &str,
) -> Result<Option<Box<RawValue>>, StoreError> {
    let key = keys.instance(collection, id);
    if key.len() > MAX_KEY_LEN {
        return Ok(None);
    }
    let mut doc = None;
    txn.get_with(&key, &mut |v| {
        doc = v.map(|b| {
            <Box<RawValue> as RowDoc>::from_stored(stored_text(b)?).map_err(corrupt_instance)
        });
    })?;
    doc.transpose()
}

/// The stored instance of `collection` (assumed to exist), unfiltered.
pub fn read_instance(
    txn: &dyn ReadTxn,
    keys: &Keys,
    collection: &str,
    id: &str,
) -> Result<Option<Value>, StoreError> {
    let key = keys.instance(collection, id);
    if key.len() > MAX_KEY_LEN {
        return Ok(None);
    }
    load_instance(txn, &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_row_is_an_object_whatever_white_space_surrounds_it() {
        for (text, object) in [
            (" \n{\"a\":1} ", true),
            ("{}", true),
            ("\t[1]", false),
            ("\"{\"", false),
        ] {
            let row = <Box<RawValue> as RowDoc>::from_stored(text).unwrap();
            assert_eq!(row.is_object(), object, "{text:?}");
            let parsed = <Value as RowDoc>::from_stored(text).unwrap();
            assert_eq!(parsed.is_object(), object, "{text:?}");
        }
    }
}
