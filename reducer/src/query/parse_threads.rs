//! Parser for go-threads' query JSON (`queryJSON` of `Find`, the JS client's `Query`).
//!
//! ```text
//! Query     {"ands":[Criterion], "ors":[Query], "sort":{"fieldPath":s,"desc":b},
//!            "seek":"<id>", "limit":n, "skip":n, "index":"<path>"}
//! Criterion {"fieldPath":"a.b", "operation":0..5, "value":{"string":s}|{"bool":b}|{"float":f}}
//! ```
//!
//! Member names match ignoring ASCII case (Go's decoder accepts `Ands` as well as `ands`),
//! unknown members are ignored and `null` members count as absent, as in Go. A name present
//! twice (e.g. `ands` and `Ands`) is an error rather than an arbitrary pick.

use serde_json::Value;

use super::error::QueryError;
use super::model::{CmpOp, FieldPath, Filter, MissingSort, Query, SortKey, Syntax};

/// Maximum nesting of sub-queries (`ors`, `$and`, `$or`, `$nor`, `$not`).
pub const MAX_DEPTH: usize = 64;

/// Member names of a go-threads query, lowercase.
pub(crate) const THREADS_MEMBERS: [&str; 7] =
    ["ands", "ors", "sort", "seek", "limit", "skip", "index"];

impl Query {
    /// Compiles go-threads' query JSON. `null` and `{}` return every instance.
    ///
    /// Match rule (go-threads'): an instance matches when every `ands` criterion holds, or else
    /// when any `ors` sub-query matches; a query with no `ands` matches everything and its
    /// `ors` are only validated. Sub-queries use only their `ands` and `ors`.
    pub fn from_threads_json(v: &Value) -> Result<Query, QueryError> {
        if v.is_null() {
            return Ok(Query::default());
        }
        let [ands, ors, sort, seek, limit, skip, index] = members(v, THREADS_MEMBERS, "the query")?;
        let filter = node_filter(ands, ors, "", 0)?;

        let mut sort_keys = Vec::new();
        if let Some(s) = sort {
            let [path, desc] = members(s, ["fieldpath", "desc"], "sort")?;
            let path = opt_str(path, "sort.fieldPath")?;
            let desc = match desc {
                None => false,
                Some(d) => d.as_bool().ok_or_else(|| wrong("sort.desc", "a boolean"))?,
            };
            if !path.is_empty() {
                let path = FieldPath::parse(path, "sort.fieldPath")?;
                let missing = if path.is_id() {
                    MissingSort::Lowest
                } else {
                    MissingSort::Error
                };
                sort_keys.push(SortKey {
                    path,
                    desc,
                    missing,
                });
            }
        }

        let index = match opt_str(index, "index")? {
            "" => None,
            p => Some(FieldPath::parse(p, "index")?),
        };
        let mut query = Query {
            filter,
            sort: sort_keys,
            skip: opt_count(skip, "skip")?,
            limit: opt_count(limit, "limit")?,
            seek: match opt_str(seek, "seek")? {
                "" => None,
                s => Some(s.to_owned()),
            },
            index: None,
            syntax: Syntax::Threads,
        };
        if let Some(path) = index {
            if !path.is_id() {
                query.filter =
                    Filter::and(vec![Filter::Indexable { path: path.clone() }, query.filter]);
                if query.sort.is_empty() {
                    query.sort.push(SortKey {
                        path: path.clone(),
                        desc: false,
                        missing: MissingSort::Lowest,
                    });
                }
            }
            query.index = Some(path);
        }
        query.apply_seek();
        Ok(query)
    }
}

impl Query {
    /// Adds the `seek` bound to the filter: `_id >= seek`, or `_id <= seek` when the primary
    /// sort key is `_id` descending (so seek always starts a page in result order).
    pub(crate) fn apply_seek(&mut self) {
        let Some(seek) = &self.seek else { return };
        let op = match self.sort.first() {
            Some(k) if k.path.is_id() && k.desc => CmpOp::Le,
            _ => CmpOp::Ge,
        };
        let bound = Filter::Cmp {
            path: FieldPath::id(),
            op,
            value: Value::String(seek.clone()),
        };
        let rest = std::mem::replace(&mut self.filter, Filter::True);
        self.filter = Filter::and(vec![bound, rest]);
    }
}

/// The filter of one (sub-)query from its `ands` and `ors` members.
fn node_filter(
    ands: Option<&Value>,
    ors: Option<&Value>,
    prefix: &str,
    depth: usize,
) -> Result<Filter, QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::TooDeep { max: MAX_DEPTH });
    }
    let mut criteria = Vec::new();
    for (i, c) in opt_array(ands, &join(prefix, "ands"))?.iter().enumerate() {
        criteria.push(criterion(c, &format!("{}[{i}]", join(prefix, "ands")))?);
    }
    let mut subs = Vec::new();
    for (i, q) in opt_array(ors, &join(prefix, "ors"))?.iter().enumerate() {
        let at = format!("{}[{i}]", join(prefix, "ors"));
        if q.is_null() {
            continue;
        }
        let [a, o] = members(q, ["ands", "ors"], &at)?;
        subs.push(node_filter(a, o, &at, depth + 1)?);
    }
    if criteria.is_empty() {
        // go-threads: with no `ands` every instance matches; the `ors` are never consulted.
        return Ok(Filter::True);
    }
    let mut branches = vec![Filter::and(criteria)];
    branches.extend(subs);
    Ok(Filter::or(branches))
}

/// One criterion: a comparison of a field with a typed value.
fn criterion(c: &Value, at: &str) -> Result<Filter, QueryError> {
    let [path, operation, value] = members(c, ["fieldpath", "operation", "value"], at)?;
    let path_at = join(at, "fieldPath");
    let path = FieldPath::parse(opt_str(path, &path_at)?, &path_at)?;
    let op =
        match operation {
            None => CmpOp::Eq,
            Some(Value::Number(n)) => n.as_i64().and_then(CmpOp::from_code).ok_or_else(|| {
                QueryError::UnknownOperation {
                    code: n.to_string(),
                    at: at.to_owned(),
                }
            })?,
            Some(_) => return Err(wrong(&join(at, "operation"), "an integer operation code")),
        };
    let value_at = join(at, "value");
    let Some(value) = value else {
        return Err(QueryError::ValueArity { at: value_at });
    };
    let [s, b, f] = members(value, ["string", "bool", "float"], &value_at)?;
    let operand = match (s, b, f) {
        (Some(s), None, None) => match s {
            Value::String(_) => s.clone(),
            _ => return Err(wrong(&join(&value_at, "string"), "a string")),
        },
        (None, Some(b), None) => match b {
            Value::Bool(_) => b.clone(),
            _ => return Err(wrong(&join(&value_at, "bool"), "a boolean")),
        },
        (None, None, Some(f)) => match f {
            Value::Number(_) => f.clone(),
            _ => return Err(wrong(&join(&value_at, "float"), "a number")),
        },
        _ => return Err(QueryError::ValueArity { at: value_at }),
    };
    if operand.is_boolean() && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return Err(QueryError::BoolOrdering {
            path: path.as_str().to_owned(),
            op: op.name(),
        });
    }
    Ok(Filter::Cmp {
        path,
        op,
        value: operand,
    })
}

/// The members `names` (lowercase) of object `v`, matched ignoring ASCII case; `null` counts
/// as absent, other members are ignored.
fn members<'a, const N: usize>(
    v: &'a Value,
    names: [&str; N],
    at: &str,
) -> Result<[Option<&'a Value>; N], QueryError> {
    let obj = v.as_object().ok_or_else(|| wrong(at, "a JSON object"))?;
    let mut out = [None; N];
    let mut seen = [false; N];
    for (key, val) in obj {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(key)) {
            if std::mem::replace(&mut seen[i], true) {
                return Err(QueryError::DuplicateMember {
                    at: at.to_owned(),
                    member: names[i].to_owned(),
                });
            }
            if !val.is_null() {
                out[i] = Some(val);
            }
        }
    }
    Ok(out)
}

fn opt_array<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a [Value], QueryError> {
    match v {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(wrong(at, "an array")),
    }
}

fn opt_str<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a str, QueryError> {
    match v {
        None => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(wrong(at, "a string")),
    }
}

/// A non-negative integer member (skip, limit); absent is 0.
pub(crate) fn opt_count(v: Option<&Value>, at: &str) -> Result<u64, QueryError> {
    match v {
        None => Ok(0),
        Some(n) => n
            .as_u64()
            .ok_or_else(|| wrong(at, "a non-negative integer")),
    }
}

pub(crate) fn wrong(at: &str, expected: &'static str) -> QueryError {
    QueryError::WrongType {
        at: at.to_owned(),
        expected,
    }
}

fn join(prefix: &str, member: &str) -> String {
    if prefix.is_empty() {
        member.to_owned()
    } else {
        format!("{prefix}.{member}")
    }
}
