//! The API proxy on `apiProxyAddr`: the grpc-websockets bridge the official JS client speaks
//! (every call, unary included, is one websocket; COMPAT.md §c), plus grpc-web POSTs and CORS
//! preflights for browsers. Both end in the same in-process gRPC services as `apiAddr`, so a
//! call behaves the same whichever port it came through.
//!
//! * [`frames`] holds the protocol's byte formats; [`client`] is a minimal client of it, for
//!   tests and benchmarks.
//! * `websocket` runs one call on an upgraded socket.

pub mod client;
pub mod frames;
mod websocket;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::cors::{Any, CorsLayer};

/// The gRPC services, as one routable service.
pub(crate) type Routes = tonic::service::Routes;

/// The websocket subprotocol of the bridge.
pub const SUBPROTOCOL: &str = "grpc-websockets";

/// How often an open socket is pinged (as go-threads does), so idle listeners survive
/// proxies and dead clients are noticed.
pub const WS_PING: Duration = Duration::from_secs(5);

/// Largest websocket message accepted: one gRPC message of [`super::MAX_MESSAGE`] bytes plus
/// its prefixes. Larger messages close the socket; the gRPC limit itself is enforced by the
/// service while decoding.
pub const MAX_WS_MESSAGE: usize = super::MAX_MESSAGE + 64;

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the proxy on `listener` until `stop` turns true. Calls in flight finish on their
/// own (streams end when the services see `stop`).
pub(crate) async fn serve(listener: TcpListener, routes: Routes, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = super::service::stopped(&mut stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "api proxy: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let routes = routes.clone();
                async move { Ok::<_, Infallible>(handle(req, routes).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades()
                .await;
        });
    }
}

/// Answers one HTTP request: a websocket upgrade starts a bridged call; anything else goes
/// through grpc-web and CORS to the services.
async fn handle(req: Request<Incoming>, routes: Routes) -> Response<tonic::body::Body> {
    if !is_upgrade(&req) {
        let web = ServiceBuilder::new()
            .layer(
                CorsLayer::new()
                    .allow_origin(Any)
                    .allow_headers(Any)
                    .allow_methods([http::Method::POST, http::Method::OPTIONS])
                    .expose_headers(Any),
            )
            .layer(tonic_web::GrpcWebLayer::new())
            .service(routes);
        return match web.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
    }
    let offered = req
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "a websocket upgrade needs Sec-WebSocket-Key",
        );
    };
    if !offered {
        return plain(
            StatusCode::BAD_REQUEST,
            "this endpoint speaks the grpc-websockets subprotocol only",
        );
    }
    let accept = derive_accept_key(key.as_bytes());
    let path = req.uri().path().to_owned();
    let mut req = req;
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(&mut req).await else {
            return;
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE))
            .max_frame_size(Some(MAX_WS_MESSAGE));
        let ws = WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            Some(config),
        )
        .await;
        websocket::serve(ws, path, routes).await;
    });
    let mut resp = Response::new(tonic::body::Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    resp
}

/// Whether `req` asks for a websocket.
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::GET
        && req
            .headers()
            .get(UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A short plain-text answer.
fn plain(status: StatusCode, text: &'static str) -> Response<tonic::body::Body> {
    let mut resp = Response::new(tonic::body::Body::new(http_body_util::Full::new(
        Bytes::from_static(text.as_bytes()),
    )));
    *resp.status_mut() = status;
    resp
}
