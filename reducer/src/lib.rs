//! The ThreadDB document database, built as a pure fold over the events of a thread.
//!
//! Work in progress: the query language and the JavaScript validator engine are here; the
//! collections, instances, transactions and the convergent fold build on them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod db;
pub mod docs;
pub mod fold;
pub mod js;
pub mod listen;
pub mod query;
