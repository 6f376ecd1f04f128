//! threads-driver-tokio: the ThreadDB daemon (`threadsd`) and client side of the system.
//!
//! The daemon lives here: a tokio runtime, the libp2p swarm, the gRPC API and the on-disk
//! repository. This crate owns all I/O; the protocol engine and the reducer it drives are
//! sans-IO and live in `threads-protocol` and `threads-reducer`.
//!
//! [`lmdb`] implements the storage contract of `threads_protocol::store` on LMDB.

#![warn(missing_docs)]

pub mod lmdb;
