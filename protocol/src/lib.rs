//! ThreadDB protocol core: every format the system puts on disk or on the wire, and the
//! sans-IO replication engine.
//!
//! This crate does no I/O: no sockets, no clocks, no OS randomness. Time is passed in by the
//! caller; randomness comes from an RNG the caller seeds (see [`rng`]).
//!
//! Formats are specified in `spec/formats.md` at the repository root and pinned by the test
//! vectors in `spec/vectors/`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
mod cbor_read;
pub mod counter;
pub mod engine;
pub mod id;
pub mod identity;
pub mod key;
pub mod log_id;
pub mod multibase_str;
pub mod record;
pub mod rng;
pub mod store;

/// Content identifiers of records and blocks (re-exported so that users need not depend on
/// the `cid` crate themselves).
pub use cid::Cid;

/// Multiaddrs, as taken by [`addr::ThreadAddr`] (re-exported so that users need not depend on
/// the `multiaddr` crate themselves).
pub use multiaddr::{self, Multiaddr};
