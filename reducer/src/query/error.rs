//! Typed query errors.
//!
//! Queries come from clients, so every failure is a value, never a panic. Messages start with
//! `invalid query:` when the query itself is wrong (the API layer maps those to
//! `InvalidArgument`), name the place in the query that is wrong (a member such as `ands[1].value`
//! or a field such as `field "a.b"`) and, where one is involved, the operator.

use thiserror::Error;

/// Why a query could not be parsed, planned or finished.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query bytes are not JSON.
    #[error("invalid query: malformed JSON: {0}")]
    Malformed(String),
    /// A member has the wrong JSON type (`at` names the member).
    #[error("invalid query: {at} must be {expected}")]
    WrongType {
        /// Where in the query.
        at: String,
        /// What was expected, e.g. `an array`.
        expected: &'static str,
    },
    /// Two members of one object have the same name ignoring ASCII case.
    #[error(
        "invalid query: {at} has member \"{member}\" more than once (names are case-insensitive)"
    )]
    DuplicateMember {
        /// Where in the query.
        at: String,
        /// The member name, lowercased.
        member: String,
    },
    /// A query object mixes go-threads query members with other members, so it could be read
    /// either as go-threads query JSON (ignoring the others) or as a Mongo filter on fields of
    /// those names; rather than pick one silently, it is refused.
    #[error(
        "invalid query: the query mixes the go-threads member \"{threads_member}\" with the \
         unknown member \"{other_member}\"; remove the unknown member, or wrap a Mongo filter \
         as {{\"$filter\": …}}"
    )]
    Ambiguous {
        /// A go-threads member present (as sent).
        threads_member: String,
        /// A member that is not a go-threads member (as sent).
        other_member: String,
    },
    /// A go-threads criterion has an operation code other than 0..=5.
    #[error("invalid query: unknown operation {code} at {at}")]
    UnknownOperation {
        /// The code as sent.
        code: String,
        /// Where in the query.
        at: String,
    },
    /// A go-threads criterion value does not have exactly one of `string`, `bool`, `float`.
    #[error("invalid query: value type should describe exactly one type (at {at})")]
    ValueArity {
        /// Where in the query.
        at: String,
    },
    /// A go-threads criterion orders (Gt, Lt, Ge, Le) against a boolean.
    #[error(
        "invalid query: operation {op} on field \"{path}\" is not defined for bool values \
         (booleans support only Eq and Ne)"
    )]
    BoolOrdering {
        /// The field path of the criterion.
        path: String,
        /// The operation name.
        op: &'static str,
    },
    /// A field path is empty or has an empty segment (`a..b`, `.a`, `a.`).
    #[error("invalid query: invalid field path \"{path}\" at {at}: {reason}")]
    BadPath {
        /// The path as sent.
        path: String,
        /// Where in the query.
        at: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A Mongo-style operator that this implementation does not know.
    #[error("invalid query: unknown operator {op} at {at}")]
    UnknownOperator {
        /// The operator as sent, e.g. `$regex`.
        op: String,
        /// Where in the query.
        at: String,
    },
    /// A Mongo-style operator with an operand of the wrong shape.
    #[error("invalid query: operator {op} at {at} expects {expected}")]
    BadOperand {
        /// The operator, e.g. `$in`.
        op: String,
        /// Where in the query.
        at: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A Mongo-style field condition mixes `$` operators and plain member names.
    #[error("invalid query: {at} mixes operators ($...) and field names in one object")]
    MixedOperators {
        /// Where in the query.
        at: String,
    },
    /// A sort specification that cannot be understood.
    #[error("invalid query: bad sort at {at}: {reason}")]
    BadSort {
        /// Where in the query.
        at: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The query nests `ors` / `$and` / `$or` / `$not` deeper than allowed.
    #[error("invalid query: nested more than {max} levels deep")]
    TooDeep {
        /// The nesting limit.
        max: usize,
    },
    /// The go-threads `index` member names a path without an index.
    #[error("index not found: {path}")]
    IndexNotFound {
        /// The path asked for.
        path: String,
    },
    /// A go-threads-syntax sort on a field that a result instance does not have.
    #[error(
        "sorting field doesn't correspond to instance type: \
         field \"{path}\" is missing in instance \"{id}\""
    )]
    SortFieldMissing {
        /// The sort field path.
        path: String,
        /// The instance that lacks it.
        id: String,
    },
}
