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
//! * [`proxy`] is the grpc-websockets bridge (and grpc-web) for the JS client on
//!   `apiProxyAddr`.
//! * [`ApiServer`] serves both services on a TCP address (and optionally the proxy) until
//!   stopped.
//!
//! Identity: a call with a valid token acts as the token's subject (author of writes, reader
//! for read filters); a call without one acts as the host. `spec/api.md` documents every RPC.

/// The body of a unary RPC: authenticate the caller, run `self.$method(caller, request)`,
/// wrap the reply. Both services' `caller` reads the `authorization` metadata.
macro_rules! unary {
    ($self:ident, $req:ident, $method:ident) => {{
        let caller = $self.caller(&$req)?;
        $self
            .$method(caller, $req.into_inner())
            .await
            .map(Response::new)
    }};
}

pub mod auth;
mod collections;
pub mod convert;
mod db;
mod instances;
mod listen;
pub mod net;
pub mod proxy;
pub mod service;
pub mod token;
mod txn;

use crate::NodeHandle;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;

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

/// An API address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The setting that named the address (`apiAddr` or `apiProxyAddr`).
    pub setting: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why binding failed.
    pub source: std::io::Error,
}

/// Binds `addr` for `setting`, returning the listener and the address actually bound.
async fn bind(
    setting: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let err = |source| BindError {
        setting,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    proxy_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The gRPC services of `node`, ready to route a request by its path.
fn routes(
    node: NodeHandle,
    stopped: watch::Receiver<bool>,
    token_ttl: Option<Duration>,
) -> tonic::service::Routes {
    let api = service::DbApi::new(node.clone(), stopped.clone()).with_token_ttl(token_ttl);
    let db = proto::db::api_server::ApiServer::new(api)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    tonic::service::Routes::new(db).add_service(net::net_service(node, stopped, token_ttl))
}

/// How an [`ApiServer`] serves, beyond its gRPC address.
#[derive(Clone, Debug, Default)]
pub struct ApiOptions {
    /// Where to serve the grpc-websockets/grpc-web [`proxy`], if anywhere.
    pub proxy: Option<SocketAddr>,
    /// Lifetime of tokens issued by `GetToken` (their `exp` claim); `None`: they never expire,
    /// as go-threads' tokens.
    pub token_ttl: Option<Duration>,
}

impl ApiServer {
    /// Binds `addr` (port 0 picks a free port) and serves the DB API and the Net API of `node`
    /// there over gRPC. Fails when the address cannot be bound.
    pub async fn start(node: NodeHandle, addr: SocketAddr) -> std::io::Result<ApiServer> {
        Self::start_with_proxy(node, addr, None)
            .await
            .map_err(|e| e.source)
    }

    /// As [`ApiServer::start`], and with `proxy` also serves the same API to grpc-websockets
    /// and grpc-web clients there ([`proxy`]). Fails when an address cannot be bound.
    pub async fn start_with_proxy(
        node: NodeHandle,
        addr: SocketAddr,
        proxy: Option<SocketAddr>,
    ) -> Result<ApiServer, BindError> {
        let options = ApiOptions {
            proxy,
            ..ApiOptions::default()
        };
        Self::start_with_options(node, addr, options).await
    }

    /// As [`ApiServer::start`], with [`ApiOptions`]. Fails when an address cannot be bound.
    pub async fn start_with_options(
        node: NodeHandle,
        addr: SocketAddr,
        options: ApiOptions,
    ) -> Result<ApiServer, BindError> {
        let (listener, addr) = bind("apiAddr", addr).await?;
        let (proxy_listener, proxy_addr) = match options.proxy {
            Some(p) => {
                let (l, a) = bind("apiProxyAddr", p).await?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let (stop, stopped) = watch::channel(false);
        let routes = routes(node, stopped.clone(), options.token_ttl);
        let mut tasks = Vec::new();
        if let Some(l) = proxy_listener {
            tasks.push(tokio::spawn(proxy::serve(
                l,
                routes.clone(),
                stopped.clone(),
            )));
        }
        // Replies go out as soon as they are written: with Nagle's algorithm on, a reply of
        // more than one segment waited for the client's delayed ACK (~40 ms on Linux) before
        // its last segment left. tonic sets this only on listeners it binds itself.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
            if let Ok(stream) = &conn
                && let Err(e) = stream.set_nodelay(true)
            {
                tracing::debug!(error = %e, "api connection: TCP_NODELAY not set");
            }
            conn
        });
        let mut signal = stopped;
        tasks.push(tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = signal.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "api server failed");
            }
        }));
        Ok(ApiServer {
            addr,
            proxy_addr,
            stop,
            tasks,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's bound address, when it runs.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy_addr
    }

    /// Stops accepting calls, ends open streams (listeners, transactions, token flows) and
    /// waits up to [`SHUTDOWN_GRACE`] for calls in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}
