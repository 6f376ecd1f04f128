//! The optional Prometheus endpoint: `GET /metrics` on `--metricsAddr`.

use crate::metrics::Metrics;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds `addr` (errors name it) and serves the metrics until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let metrics = metrics.clone();
                        async move {
                            let resp =
                                if req.uri().path() == "/metrics" {
                                    Response::builder()
                                        .header("content-type", "text/plain; version=0.0.4")
                                        .body(Full::new(Bytes::from(metrics.prometheus())))
                                } else {
                                    Response::builder().status(StatusCode::NOT_FOUND).body(
                                        Full::new(Bytes::from_static(b"not found; try /metrics\n")),
                                    )
                                };
                            Ok::<_, Infallible>(resp.expect("static response parts are valid"))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }))
}
