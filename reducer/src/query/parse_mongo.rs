//! Parser for Mongo-style filter documents and find options.
//!
//! Filter: `{"a.b": 5}` (implicit `$eq`), `{"a": {"$gt": 1, "$lt": 9}}`, `$eq $ne $gt $gte $lt
//! $lte $in $nin $exists $not` on fields, `$and $or $nor` at document level. Names are
//! case-sensitive (as in MongoDB). Options: `sort`, `skip`, `limit`, `seek`.
//!
//! Sort specifications: `"a"`, `"-a"`, `{"a": 1}`, `{"a": -1}`, `["a", -1]` or an array of those
//! (`[{"a": 1}, "-b"]`). Directions are `1`, `-1`, `"asc"`, `"desc"`, `"ascending"`,
//! `"descending"`. An object with several fields is rejected: JSON object member order is not
//! preserved here, so it could not say which key is primary.

use serde_json::{Map, Value};

use super::error::QueryError;
use super::model::{CmpOp, FieldPath, Filter, MissingSort, Query, SortKey, Syntax};
use super::parse_threads::{MAX_DEPTH, THREADS_MEMBERS, opt_count, wrong};

/// Member names of the single-document Mongo envelope accepted by [`Query::from_json`].
const ENVELOPE_MEMBERS: [&str; 5] = ["$filter", "$sort", "$skip", "$limit", "$seek"];

/// Options of a Mongo-style find: ordering and the slice of the result to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindOptions {
    /// Sort keys, most significant first (missing fields sort lowest).
    pub sort: Vec<SortKey>,
    /// Results to drop from the front.
    pub skip: u64,
    /// Maximum results; 0 means no limit.
    pub limit: u64,
    /// Start at this instance ID (inclusive), see [`Query::seek`].
    pub seek: Option<String>,
}

impl FindOptions {
    /// Parses `{"sort": spec, "skip": n, "limit": n, "seek": "<id>"}`; all members optional,
    /// others rejected.
    pub fn from_json(v: &Value) -> Result<FindOptions, QueryError> {
        if v.is_null() {
            return Ok(FindOptions::default());
        }
        let obj = v
            .as_object()
            .ok_or_else(|| wrong("the options", "a JSON object"))?;
        let mut opts = FindOptions::default();
        for (k, val) in obj {
            match k.as_str() {
                "sort" => opts.sort = parse_sort(val, "sort")?,
                "skip" => opts.skip = opt_count(Some(val), "skip")?,
                "limit" => opts.limit = opt_count(Some(val), "limit")?,
                "seek" => opts.seek = opt_seek(val, "seek")?,
                other => {
                    return Err(QueryError::UnknownOperator {
                        op: other.to_owned(),
                        at: "the options".to_owned(),
                    });
                }
            }
        }
        Ok(opts)
    }
}

impl Query {
    /// Compiles a Mongo-style filter document with find options.
    pub fn from_mongo(filter: &Value, options: &FindOptions) -> Result<Query, QueryError> {
        let filter = if filter.is_null() {
            Filter::True
        } else {
            doc_filter(filter, "the filter", 0)?
        };
        let mut query = Query {
            filter,
            sort: options.sort.clone(),
            skip: options.skip,
            limit: options.limit,
            seek: options.seek.clone(),
            index: None,
            syntax: Syntax::Mongo,
        };
        query.apply_seek();
        Ok(query)
    }

    /// Compiles a query in either syntax, telling them apart by their members:
    ///
    /// 1. an object with any of `$filter`, `$sort`, `$skip`, `$limit`, `$seek` is a Mongo
    ///    envelope (`{"$filter": {...}, "$sort": ..., "$skip": n, "$limit": n, "$seek": id}`);
    /// 2. an object whose members are all go-threads query members (ignoring case; this
    ///    includes `{}`) is go-threads query JSON;
    /// 3. an object with no go-threads member is a Mongo filter document with default options;
    /// 4. an object mixing go-threads members with others is refused
    ///    ([`QueryError::Ambiguous`]): read as go-threads JSON it would ignore the others, read
    ///    as a Mongo filter it would silently match nothing.
    ///
    /// A Mongo filter on a field named like a go-threads member (`{"limit": 5}`) must therefore
    /// be wrapped: `{"$filter": {"limit": 5}}`.
    pub fn from_json(v: &Value) -> Result<Query, QueryError> {
        let obj = match v {
            Value::Null => return Ok(Query::default()),
            Value::Object(obj) => obj,
            _ => return Err(wrong("the query", "a JSON object")),
        };
        if obj.keys().any(|k| ENVELOPE_MEMBERS.contains(&k.as_str())) {
            return envelope(obj);
        }
        let is_threads = |k: &String| THREADS_MEMBERS.iter().any(|m| m.eq_ignore_ascii_case(k));
        let threads_member = obj.keys().find(|k| is_threads(k));
        let other_member = obj.keys().find(|k| !is_threads(k));
        match (threads_member, other_member) {
            (_, None) => Query::from_threads_json(v),
            (None, Some(_)) => Query::from_mongo(v, &FindOptions::default()),
            (Some(t), Some(o)) => Err(QueryError::Ambiguous {
                threads_member: t.clone(),
                other_member: o.clone(),
            }),
        }
    }

    /// Parses JSON bytes and compiles them with [`Query::from_json`].
    pub fn parse(bytes: &[u8]) -> Result<Query, QueryError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| QueryError::Malformed(e.to_string()))?;
        Query::from_json(&v)
    }
}

fn envelope(obj: &Map<String, Value>) -> Result<Query, QueryError> {
    let mut opts = FindOptions::default();
    let mut filter = &Value::Null;
    for (k, val) in obj {
        match k.as_str() {
            "$filter" => filter = val,
            "$sort" => opts.sort = parse_sort(val, "$sort")?,
            "$skip" => opts.skip = opt_count(Some(val), "$skip")?,
            "$limit" => opts.limit = opt_count(Some(val), "$limit")?,
            "$seek" => opts.seek = opt_seek(val, "$seek")?,
            other => {
                return Err(QueryError::UnknownOperator {
                    op: other.to_owned(),
                    at: "the query envelope".to_owned(),
                });
            }
        }
    }
    Query::from_mongo(filter, &opts)
}

fn opt_seek(v: &Value, at: &str) -> Result<Option<String>, QueryError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(wrong(at, "a string")),
    }
}

/// A filter document: field conditions and `$and` / `$or` / `$nor`, all of which must hold.
fn doc_filter(v: &Value, at: &str, depth: usize) -> Result<Filter, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::TooDeep { max: MAX_DEPTH });
    }
    let obj = v.as_object().ok_or_else(|| wrong(at, "a JSON object"))?;
    let mut parts = Vec::with_capacity(obj.len());
    for (key, val) in obj {
        if key.starts_with('$') {
            if !matches!(key.as_str(), "$and" | "$or" | "$nor") {
                return Err(QueryError::UnknownOperator {
                    op: key.clone(),
                    at: at.to_owned(),
                });
            }
            let arr = match val {
                Value::Array(a) if !a.is_empty() => a,
                _ => {
                    return Err(QueryError::BadOperand {
                        op: key.clone(),
                        at: at.to_owned(),
                        expected: "a non-empty array of filter documents",
                    });
                }
            };
            let mut subs = Vec::with_capacity(arr.len());
            for (i, sub) in arr.iter().enumerate() {
                subs.push(doc_filter(sub, &format!("{key}[{i}]"), depth + 1)?);
            }
            parts.push(match key.as_str() {
                "$and" => Filter::and(subs),
                "$or" => Filter::or(subs),
                _ => Filter::negate(Filter::or(subs)),
            });
        } else {
            let path = FieldPath::parse(key, at)?;
            parts.push(field_condition(path, val, depth)?);
        }
    }
    Ok(Filter::and(parts))
}

/// The condition on one field: an operator object, or a value for implicit equality.
fn field_condition(path: FieldPath, val: &Value, depth: usize) -> Result<Filter, QueryError> {
    match val {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
            operators(&path, ops, &format!("field \"{path}\""), depth)
        }
        other => Ok(Filter::Cmp {
            path,
            op: CmpOp::Eq,
            value: other.clone(),
        }),
    }
}

/// An operator object such as `{"$gte": 1, "$lt": 5}`: all operators must hold.
fn operators(
    path: &FieldPath,
    ops: &Map<String, Value>,
    at: &str,
    depth: usize,
) -> Result<Filter, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::TooDeep { max: MAX_DEPTH });
    }
    if !ops.keys().all(|k| k.starts_with('$')) {
        return Err(QueryError::MixedOperators { at: at.to_owned() });
    }
    let cmp = |op: CmpOp, value: &Value| Filter::Cmp {
        path: path.clone(),
        op,
        value: value.clone(),
    };
    let bad = |op: &str, expected: &'static str| QueryError::BadOperand {
        op: op.to_owned(),
        at: at.to_owned(),
        expected,
    };
    let mut parts = Vec::with_capacity(ops.len());
    for (op, operand) in ops {
        parts.push(match op.as_str() {
            "$eq" => cmp(CmpOp::Eq, operand),
            "$ne" => Filter::negate(cmp(CmpOp::Eq, operand)),
            "$gt" => cmp(CmpOp::Gt, operand),
            "$gte" => cmp(CmpOp::Ge, operand),
            "$lt" => cmp(CmpOp::Lt, operand),
            "$lte" => cmp(CmpOp::Le, operand),
            "$in" | "$nin" => {
                let values = operand.as_array().ok_or_else(|| bad(op, "an array"))?;
                let within = if values.is_empty() {
                    Filter::False
                } else {
                    Filter::In {
                        path: path.clone(),
                        values: values.clone(),
                    }
                };
                if op == "$in" {
                    within
                } else {
                    Filter::negate(within)
                }
            }
            "$exists" => Filter::Exists {
                path: path.clone(),
                exists: operand.as_bool().ok_or_else(|| bad(op, "a boolean"))?,
            },
            "$not" => match operand {
                Value::Object(inner) if !inner.is_empty() => {
                    Filter::negate(operators(path, inner, at, depth + 1)?)
                }
                _ => return Err(bad(op, "a non-empty object of operators")),
            },
            _ => {
                return Err(QueryError::UnknownOperator {
                    op: op.clone(),
                    at: at.to_owned(),
                });
            }
        });
    }
    Ok(Filter::and(parts))
}

/// Parses a sort specification (see the module docs).
pub fn parse_sort(v: &Value, at: &str) -> Result<Vec<SortKey>, QueryError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            // A bare ["a", -1] pair is one key, not two.
            if items.len() == 2 && items[0].is_string() && !items[1].is_string() {
                return Ok(vec![pair(&items[0], &items[1], at)?]);
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| sort_item(item, &format!("{at}[{i}]")))
                .collect()
        }
        other => Ok(vec![sort_item(other, at)?]),
    }
}

fn sort_item(v: &Value, at: &str) -> Result<SortKey, QueryError> {
    let bad = |reason| QueryError::BadSort {
        at: at.to_owned(),
        reason,
    };
    match v {
        Value::String(s) => match s.strip_prefix('-') {
            Some(rest) => key(rest, true, at),
            None => key(s.strip_prefix('+').unwrap_or(s), false, at),
        },
        Value::Object(m) => {
            let mut it = m.iter();
            match (it.next(), it.next()) {
                (Some((path, dir)), None) => key(path, direction(dir).ok_or_else(|| bad(DIR))?, at),
                (None, _) => Err(bad("empty sort object")),
                (Some(_), Some(_)) => Err(bad(
                    "an object with several fields has no defined key order; \
                     use an array such as [{\"a\": 1}, {\"b\": -1}]",
                )),
            }
        }
        Value::Array(p) if p.len() == 2 => pair(&p[0], &p[1], at),
        _ => Err(bad(
            "expected \"field\", \"-field\", {\"field\": 1|-1} or [\"field\", 1|-1]",
        )),
    }
}

const DIR: &str = "direction must be 1, -1, \"asc\" or \"desc\"";

fn pair(path: &Value, dir: &Value, at: &str) -> Result<SortKey, QueryError> {
    let bad = |reason| QueryError::BadSort {
        at: at.to_owned(),
        reason,
    };
    let path = path.as_str().ok_or_else(|| bad("field must be a string"))?;
    key(path, direction(dir).ok_or_else(|| bad(DIR))?, at)
}

/// `Some(desc)` for a valid direction.
fn direction(v: &Value) -> Option<bool> {
    match v {
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(false),
        Value::Number(n) if n.as_f64() == Some(-1.0) => Some(true),
        Value::String(s) => {
            let s = s.to_ascii_lowercase();
            match s.as_str() {
                "asc" | "ascending" => Some(false),
                "desc" | "descending" => Some(true),
                _ => None,
            }
        }
        _ => None,
    }
}

fn key(path: &str, desc: bool, at: &str) -> Result<SortKey, QueryError> {
    Ok(SortKey {
        path: FieldPath::parse(path, at)?,
        desc,
        missing: MissingSort::Lowest,
    })
}
