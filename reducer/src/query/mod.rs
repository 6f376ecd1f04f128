//! Queries over a collection's JSON instances, independent of storage.
//!
//! Two syntaxes compile to one [`Query`] (a [`Filter`] tree, sort keys, skip, limit, seek):
//!
//! * go-threads' query JSON ([`Query::from_threads_json`]), as sent by `@textile/threads-client`:
//!   `{"ands":[...], "ors":[...], "sort":{...}, "seek":..., "limit":..., "skip":..., "index":...}`;
//! * Mongo-style filter documents with find options ([`Query::from_mongo`]).
//!
//! [`Query::from_json`] / [`Query::parse`] accept either and tell them apart.
//!
//! Execution is split so that a storage layer can run it over its own indexes:
//!
//! 1. [`plan()`] picks candidate instances (full scan, `_id` lookup or range, secondary index
//!    equality / `$in` / range, or a union of those);
//! 2. the caller reads the candidates and keeps those for which [`Query::matches`] is true;
//! 3. the caller applies the collection's read filter;
//! 4. [`exec::order_and_page`] sorts, skips and limits (true top N with a bounded heap).
//!
//! [`exec::run_in_memory`] does all four over `BTreeMap`s; the semantics are specified in
//! `spec/queries.md`.

pub mod compare;
pub mod encode;
mod error;
pub mod exec;
mod model;
mod parse_mongo;
mod parse_threads;
pub mod plan;
pub mod raw;

pub use compare::{compare_values, type_rank, values_equal};
pub use encode::encode_index_value;
pub use error::QueryError;
pub use model::{CmpOp, FieldPath, Fields, Filter, ID_FIELD, MissingSort, Query, SortKey, Syntax};
pub use parse_mongo::{FindOptions, parse_sort};
pub use parse_threads::MAX_DEPTH;
pub use plan::{Plan, candidate_plans, plan};
