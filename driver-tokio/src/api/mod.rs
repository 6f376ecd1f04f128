//! The client API: the `threads.pb.API` gRPC service (go-threads' DB API, as
//! `@textile/threads-client` and Go clients call it) and the `threads.net.pb.API` service
//! (go-threads' Net API, [`net`]) on a [`NodeHandle`].
//!
//! * [`proto`] holds the generated messages and stubs of `proto/threads.proto` and
//!   `proto/threadsnet.proto`.
//! * [`auth`] handles tokens (go-threads JWTs signed by the host key) and the
//!   `authorization: bearer` metadata; [`token`] is the `GetToken` challenge flow both
//!   services share.
//! * [`service`] has the RPCs; [`convert`] turns wire bytes into node types and node errors
//!   into statuses.
//! * [`net`] is the Net API; [`net::net_service`] builds it as a tower service for any router.
//! * [`ApiServer`] serves both services on a TCP address until stopped.
//!
//! Identity: a call with a valid token acts as the token's subject (author of writes, reader
//! for read filters); a call without one acts as the host. `spec/api.md` documents every RPC.

pub mod auth;
mod collections;
pub mod convert;
mod db;
mod instances;
mod listen;
pub mod net;
pub mod service;
pub mod token;
mod txn;

use crate::NodeHandle;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Generated protobuf messages and tonic stubs.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `threads.pb`: the DB API.
    pub mod db {
        tonic::include_proto!("threads.pb");
    }
    /// `threads.net.pb`: the Net API (served by [`super::net::NetApi`]).
    pub mod net {
        tonic::include_proto!("threads.net.pb");
    }
}

/// Largest request message accepted (bytes); larger ones are refused while decoding, before
/// they are buffered whole.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// How long [`ApiServer::shutdown`] waits for calls in flight before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ApiServer {
    /// Binds `addr` (port 0 picks a free port) and serves the DB API and the Net API of `node`
    /// there. Fails when the address cannot be bound.
    pub async fn start(node: NodeHandle, addr: SocketAddr) -> std::io::Result<ApiServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let api = service::DbApi::new(node.clone(), stopped.clone());
        let svc = proto::db::api_server::ApiServer::new(api)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let net_svc = net::net_service(node, stopped.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let mut signal = stopped;
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .add_service(net_svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = signal.wait_for(|s| *s).await;
                }),
        );
        Ok(ApiServer { addr, stop, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting calls, ends open streams (listeners, transactions, token flows) and
    /// waits up to [`SHUTDOWN_GRACE`] for calls in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
