//! The one internal representation both query syntaxes compile to: a filter expression tree,
//! an ordering, and skip / limit / seek.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use super::compare::{compare_values, type_rank};
use super::encode::encode_index_value;
use super::error::QueryError;

/// The name of the instance ID field; it has an implicit unique index.
pub const ID_FIELD: &str = "_id";

/// A dotted path into a JSON document (`"a.b"` is member `b` of member `a`).
///
/// Paths walk objects only (as go-threads does): a segment never indexes into an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    raw: String,
    /// The length of the first segment (`raw[..first]`), kept because filters ask for it for
    /// every instance they read.
    first: usize,
}

impl FieldPath {
    /// Parses a dotted path; empty paths and empty segments are rejected (`at` says where the
    /// path came from, for the error message).
    pub fn parse(raw: &str, at: &str) -> Result<Self, QueryError> {
        let reason = if raw.is_empty() {
            Some("the path is empty")
        } else if raw.split('.').any(str::is_empty) {
            Some("a path segment is empty")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(QueryError::BadPath {
                path: raw.to_owned(),
                at: at.to_owned(),
                reason,
            }),
            None => Ok(FieldPath {
                raw: raw.to_owned(),
                first: raw.find('.').unwrap_or(raw.len()),
            }),
        }
    }

    /// The `_id` path.
    pub fn id() -> Self {
        FieldPath {
            raw: ID_FIELD.to_owned(),
            first: ID_FIELD.len(),
        }
    }

    /// The path as written (dotted).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True for the instance ID path `_id`.
    pub fn is_id(&self) -> bool {
        self.raw == ID_FIELD
    }

    /// The value at this path, or `None` when a segment is missing or a non-object is crossed.
    ///
    /// The collection layer must use this same function when it writes index entries.
    pub fn lookup<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.raw
            .split('.')
            .try_fold(doc, |cur, seg| cur.as_object()?.get(seg))
    }

    /// The first segment: the top-level member the path starts at.
    pub fn first_segment(&self) -> &str {
        &self.raw[..self.first]
    }

    /// [`Self::lookup`] from the value of the top-level member ([`Self::first_segment`]) on.
    pub fn lookup_below<'a>(&self, member: &'a Value) -> Option<&'a Value> {
        match self.raw.get(self.first + 1..) {
            None => Some(member),
            Some(rest) => rest
                .split('.')
                .try_fold(member, |cur, seg| cur.as_object()?.get(seg)),
        }
    }
}

/// What a filter reads values from: a whole document, or the members of one that it needs.
pub trait Fields {
    /// The value at `path`, as [`FieldPath::lookup`] finds it in the whole document.
    fn field(&self, path: &FieldPath) -> Option<&Value>;
}

impl Fields for Value {
    fn field(&self, path: &FieldPath) -> Option<&Value> {
        path.lookup(self)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A comparison operator; the discriminants are go-threads' wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// Equal.
    Eq = 0,
    /// Not equal, go-threads flavour: the field must exist and have the value's type.
    Ne = 1,
    /// Greater than.
    Gt = 2,
    /// Less than.
    Lt = 3,
    /// Greater than or equal.
    Ge = 4,
    /// Less than or equal.
    Le = 5,
}

impl CmpOp {
    /// The operator for a go-threads operation code, if the code is known.
    pub fn from_code(code: i64) -> Option<CmpOp> {
        Some(match code {
            0 => CmpOp::Eq,
            1 => CmpOp::Ne,
            2 => CmpOp::Gt,
            3 => CmpOp::Lt,
            4 => CmpOp::Ge,
            5 => CmpOp::Le,
            _ => return None,
        })
    }

    /// The go-threads name of the operator (`Eq`, `Ne`, ...), for messages.
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "Eq",
            CmpOp::Ne => "Ne",
            CmpOp::Gt => "Gt",
            CmpOp::Lt => "Lt",
            CmpOp::Ge => "Ge",
            CmpOp::Le => "Le",
        }
    }

    /// Whether `ord` (field value compared to the operand) satisfies the operator.
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Ge => ord != Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
        }
    }
}

/// A filter expression over one document.
///
/// Leaf predicates are false when the field is missing: a missing field never matches a
/// comparison (not even [`CmpOp::Ne`]); Mongo's `$ne` / `$nin`, which do match missing fields,
/// compile to [`Filter::Not`] around [`CmpOp::Eq`] / [`Filter::In`].
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches everything.
    True,
    /// Matches nothing.
    False,
    /// All of the sub-filters match.
    And(Vec<Filter>),
    /// At least one sub-filter matches.
    Or(Vec<Filter>),
    /// The sub-filter does not match.
    Not(Box<Filter>),
    /// The field exists, has the same type rank as `value`, and compares to it as `op` says.
    Cmp {
        /// The field.
        path: FieldPath,
        /// The comparison.
        op: CmpOp,
        /// The operand.
        value: Value,
    },
    /// The field exists and equals one of `values`.
    In {
        /// The field.
        path: FieldPath,
        /// The accepted values.
        values: Vec<Value>,
    },
    /// The field exists (any value, including null) iff `exists`.
    Exists {
        /// The field.
        path: FieldPath,
        /// Whether it must exist.
        exists: bool,
    },
    /// The field holds a value that an index stores (see
    /// [`encode_index_value`](super::encode_index_value)); made by go-threads' `index` member.
    Indexable {
        /// The field.
        path: FieldPath,
    },
}

impl Filter {
    /// Conjunction, flattened and constant-folded.
    pub fn and(parts: Vec<Filter>) -> Filter {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p {
                Filter::True => {}
                Filter::False => return Filter::False,
                Filter::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::True,
            1 => out.pop().unwrap_or(Filter::True),
            _ => Filter::And(out),
        }
    }

    /// Disjunction, flattened and constant-folded.
    pub fn or(parts: Vec<Filter>) -> Filter {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p {
                Filter::False => {}
                Filter::True => return Filter::True,
                Filter::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::False,
            1 => out.pop().unwrap_or(Filter::False),
            _ => Filter::Or(out),
        }
    }

    /// Negation, constant-folded.
    pub fn negate(inner: Filter) -> Filter {
        match inner {
            Filter::True => Filter::False,
            Filter::False => Filter::True,
            Filter::Not(x) => *x,
            other => Filter::Not(Box::new(other)),
        }
    }

    /// Evaluates the filter against a document.
    pub fn eval(&self, doc: &Value) -> bool {
        self.eval_fields(doc)
    }

    /// Evaluates the filter against whatever holds the fields it reads.
    pub fn eval_fields<F: Fields + ?Sized>(&self, doc: &F) -> bool {
        match self {
            Filter::True => true,
            Filter::False => false,
            Filter::And(parts) => parts.iter().all(|p| p.eval_fields(doc)),
            Filter::Or(parts) => parts.iter().any(|p| p.eval_fields(doc)),
            Filter::Not(inner) => !inner.eval_fields(doc),
            Filter::Cmp { path, op, value } => match doc.field(path) {
                Some(found) if type_rank(found) == type_rank(value) => {
                    op.holds(compare_values(found, value))
                }
                _ => false,
            },
            Filter::In { path, values } => match doc.field(path) {
                Some(found) => values
                    .iter()
                    .any(|v| compare_values(found, v) == Ordering::Equal),
                None => false,
            },
            Filter::Exists { path, exists } => doc.field(path).is_some() == *exists,
            Filter::Indexable { path } => doc
                .field(path)
                .is_some_and(|v| encode_index_value(v).is_some()),
        }
    }
}

/// How a sort key orders instances that do not have the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingSort {
    /// Fail the query (go-threads: "sorting field doesn't correspond to instance type").
    Error,
    /// Missing sorts below every value: first ascending, last descending (Mongo-style).
    Lowest,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The field; `_id` sorts by instance ID.
    pub path: FieldPath,
    /// Descending instead of ascending.
    pub desc: bool,
    /// What to do with instances that lack the field.
    pub missing: MissingSort,
}

/// Which syntax a query was written in (kept for diagnostics; semantics are in the fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// go-threads' query JSON (`ands`, `ors`, `sort`, ...).
    Threads,
    /// A Mongo-style filter document with options.
    Mongo,
}

/// A compiled query: what matches, in which order, and which slice of the result to return.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The filter, including the `seek` bound on `_id` and the `index` member's condition.
    pub filter: Filter,
    /// Sort keys, most significant first; ties (and an empty list) order by ascending `_id`.
    pub sort: Vec<SortKey>,
    /// Results to drop from the front of the ordered result.
    pub skip: u64,
    /// Maximum results to return; 0 means no limit.
    pub limit: u64,
    /// The `seek` instance ID, if any (already part of `filter`).
    pub seek: Option<String>,
    /// go-threads' `index` member: the index the caller asked to iterate.
    pub index: Option<FieldPath>,
    /// The syntax the query came from.
    pub syntax: Syntax,
}

impl Default for Query {
    /// The query that returns every instance in `_id` order.
    fn default() -> Self {
        Query {
            filter: Filter::True,
            sort: Vec::new(),
            skip: 0,
            limit: 0,
            seek: None,
            index: None,
            syntax: Syntax::Threads,
        }
    }
}

impl Query {
    /// Whether the stored instance `doc` with ID `id` satisfies the filter (including `seek`).
    ///
    /// `_id` conditions are evaluated against `id`, whatever `doc["_id"]` holds.
    pub fn matches(&self, id: &str, doc: &Value) -> bool {
        self.filter.eval(&with_id(id, doc))
    }

    /// Whether the result order is ascending `_id` (no sort keys, or exactly `_id` ascending).
    pub fn id_ordered(&self) -> bool {
        match self.sort.as_slice() {
            [] => true,
            [k] => k.path.is_id() && !k.desc,
            _ => false,
        }
    }
}

/// `doc` with its `_id` member set to `id` (borrowed when it already is).
fn with_id<'a>(id: &str, doc: &'a Value) -> Cow<'a, Value> {
    match doc {
        Value::Object(map) if map.get(ID_FIELD).and_then(Value::as_str) != Some(id) => {
            let mut map = map.clone();
            map.insert(ID_FIELD.to_owned(), Value::String(id.to_owned()));
            Cow::Owned(Value::Object(map))
        }
        _ => Cow::Borrowed(doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s, "test").unwrap()
    }

    #[test]
    fn paths() {
        assert!(FieldPath::parse("", "x").is_err());
        assert!(FieldPath::parse("a..b", "x").is_err());
        assert!(FieldPath::parse(".a", "x").is_err());
        let doc = json!({"a": {"b": [1], "c": null}});
        assert_eq!(p("a.b").lookup(&doc), Some(&json!([1])));
        assert_eq!(p("a.c").lookup(&doc), Some(&json!(null)));
        assert_eq!(p("a.b.0").lookup(&doc), None);
        assert_eq!(p("z").lookup(&doc), None);
    }

    #[test]
    fn folding() {
        assert_eq!(Filter::and(vec![]), Filter::True);
        assert_eq!(Filter::or(vec![]), Filter::False);
        assert_eq!(
            Filter::and(vec![Filter::True, Filter::False]),
            Filter::False
        );
        assert_eq!(Filter::or(vec![Filter::False, Filter::True]), Filter::True);
        assert_eq!(Filter::negate(Filter::negate(Filter::True)), Filter::True);
    }

    #[test]
    fn ne_needs_field_and_type() {
        let f = Filter::Cmp {
            path: p("a"),
            op: CmpOp::Ne,
            value: json!(1),
        };
        assert!(f.eval(&json!({"a": 2})));
        assert!(!f.eval(&json!({"a": "x"})));
        assert!(!f.eval(&json!({})));
    }

    #[test]
    fn id_comes_from_the_key() {
        let q = Query {
            filter: Filter::Cmp {
                path: FieldPath::id(),
                op: CmpOp::Eq,
                value: json!("k"),
            },
            ..Query::default()
        };
        assert!(q.matches("k", &json!({})));
        assert!(q.matches("k", &json!({"_id": "other"})));
        assert!(!q.matches("j", &json!({"_id": "k"})));
    }
}
