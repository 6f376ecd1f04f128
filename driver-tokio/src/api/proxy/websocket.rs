//! One grpc-websockets call: a websocket carries one gRPC call to the in-process services
//! (COMPAT.md §c). Client messages become the request body as they arrive; the response's
//! headers, messages and trailers go back as websocket messages; the socket is closed when
//! the call ends. A client that closes the socket cancels the call.

use super::frames::{self, ClientMessage};
use super::{Routes, WS_PING};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tonic::Status;
use tower::ServiceExt;

/// How long a new socket may take to send its metadata message.
const METADATA_WAIT: Duration = Duration::from_secs(30);

/// Request chunks buffered between the socket and the service.
const REQUEST_CHANNEL: usize = 16;

type RequestBody = StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>;

/// Serves one call on an upgraded socket.
pub(super) async fn serve<S>(ws: WebSocketStream<S>, path: String, routes: Routes)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let headers = match tokio::time::timeout(METADATA_WAIT, next_payload(&mut incoming)).await {
        Ok(Some(text)) => match frames::metadata(&text) {
            Ok(h) => h,
            Err(e) => {
                let _ = finish(&mut sink, &Status::invalid_argument(e.to_string())).await;
                return;
            }
        },
        // The client left (or never spoke): there is nobody to answer.
        _ => return,
    };
    let (tx, rx) = mpsc::channel(REQUEST_CHANNEL);
    let mut request = http::Request::post(path)
        .version(http::Version::HTTP_2)
        .body(StreamBody::new(ReceiverStream::new(rx)))
        .expect("a request of a valid path");
    *request.headers_mut() = headers;
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    request
        .headers_mut()
        .insert(TE, HeaderValue::from_static("trailers"));

    let reading = read_requests(&mut incoming, tx);
    // Boxed so it can be dropped (cancelling the call) before the socket is used again.
    let mut answering = Box::pin(answer(&mut sink, routes, request));
    let refused = tokio::select! {
        // The call ended and `answer` closed the socket; later client messages do not matter.
        _ = &mut answering => return,
        // The client closed the socket (dropping `answering` cancels the call), or broke the
        // protocol.
        refused = reading => refused,
    };
    drop(answering);
    if let Some(status) = refused {
        let _ = finish(&mut sink, &status).await;
    }
}

/// Moves client messages into the request body until the half-close, then reads (and
/// ignores) messages until the socket closes. Returns why the client side ended early: `None`
/// for a close (the call is cancelled), a status for a protocol violation.
async fn read_requests<S>(
    incoming: &mut futures::stream::SplitStream<WebSocketStream<S>>,
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
) -> Option<Status>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tx = Some(tx);
    while let Some(msg) = next_payload(incoming).await {
        let Some(sender) = &tx else { continue };
        match frames::client_message(msg) {
            Ok(ClientMessage::Data(bytes)) => {
                if sender.send(Ok(Frame::data(bytes))).await.is_err() {
                    // The service stopped reading (it has answered): ignore the rest.
                    tx = None;
                }
            }
            // Dropping the sender ends the request body.
            Ok(ClientMessage::HalfClose) => tx = None,
            Err(e) => return Some(Status::invalid_argument(e.to_string())),
        }
    }
    None
}

/// The next data-carrying message (binary or text); `None` once the socket is closed or
/// broken. Pings are answered by the websocket layer.
async fn next_payload<S>(
    incoming: &mut futures::stream::SplitStream<WebSocketStream<S>>,
) -> Option<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match incoming.next().await? {
            Ok(Message::Binary(b)) => return Some(b),
            Ok(Message::Text(t)) => return Some(Bytes::copy_from_slice(t.as_bytes())),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Calls the service and writes its answer to the socket, pinging while it waits.
async fn answer<W>(sink: &mut W, routes: Routes, request: http::Request<RequestBody>)
where
    W: futures::Sink<Message> + Unpin,
{
    let mut ping = tokio::time::interval(WS_PING);
    ping.tick().await;
    let call = routes.oneshot(request);
    tokio::pin!(call);
    let response = loop {
        tokio::select! {
            r = &mut call => break r,
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    };
    let Ok(response) = response;
    let (parts, mut body) = response.into_parts();
    if sink
        .send(Message::Binary(frames::header_block(&parts.headers)))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let msg = match frame {
            None => break,
            Some(Err(e)) => {
                let _ = finish(sink, &Status::internal(e.to_string())).await;
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Message::Binary(data),
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => Message::Binary(frames::header_block(&trailers)),
                    Err(_) => continue,
                },
            },
        };
        if sink.send(msg).await.is_err() {
            return;
        }
    }
    let _ = close(sink).await;
}

/// Ends a call with `status` (a trailers block) and closes the socket.
async fn finish<W>(sink: &mut W, status: &Status) -> Result<(), W::Error>
where
    W: futures::Sink<Message> + Unpin,
{
    sink.send(Message::Binary(frames::status_block(status)))
        .await?;
    close(sink).await
}

/// A normal close: the client reads the call's status when the socket closes.
async fn close<W>(sink: &mut W) -> Result<(), W::Error>
where
    W: futures::Sink<Message> + Unpin,
{
    sink.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })))
    .await
}
