//! threads-driver-tokio: the ThreadDB daemon (`threadsd`) and its building blocks.
//!
//! The daemon is a thin driver around the sans-IO core: one engine thread owns the document
//! database and the replication engine on the LMDB repository ([`node`]); one tokio task owns
//! the libp2p swarm ([`net`]); callers use the async [`node::NodeHandle`]. `spec/daemon.md`
//! describes the loop, the sync protocol binding, the address book and durability.
//!
//! [`lmdb`] implements the storage contract of `threads_protocol::store` on LMDB.
//! [`api`] serves the client API (`threads.pb.API` over gRPC) on a node handle.

#![warn(missing_docs)]

pub mod addr_book;
pub mod api;
pub mod cli;
pub mod lmdb;
pub mod metrics;
pub mod metrics_http;
pub mod net;
pub mod node;
pub mod repo;

pub use lmdb::{LmdbOptions, LmdbStore};
pub use node::{Node, NodeConfig, NodeError, NodeHandle};
