//! A minimal grpc-websockets client: what the JS client does on the wire, for tests and
//! benchmarks of the proxy (one websocket per call, metadata first, `0x00`-prefixed request
//! bytes, `0x01` to half-close; replies and header blocks parsed back).

use super::SUBPROTOCOL;
use super::frames::{DATA, HALF_CLOSE, HEADER_BLOCK};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Longest a [`Call`] waits for one server message.
pub const READ_WAIT: Duration = Duration::from_secs(30);

/// A failed websocket call (transport level; gRPC errors are in [`Answer::status`]).
#[derive(Debug, Error)]
pub enum CallError {
    /// Connecting or the websocket handshake failed.
    #[error("connecting to the proxy: {0}")]
    Connect(String),
    /// The socket broke while in use.
    #[error("websocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server sent nothing for [`READ_WAIT`].
    #[error("no message from the proxy within {READ_WAIT:?}")]
    Timeout,
    /// A header block that is not UTF-8 text.
    #[error("a header block is not text")]
    BadBlock,
}

/// What the server sent on one socket.
#[derive(Debug, Default)]
pub struct Answer {
    /// Header and trailer blocks, in order (`key: value\r\n` text).
    pub blocks: Vec<String>,
    /// Reply messages (protobuf bytes).
    pub messages: Vec<Bytes>,
    /// Whether the server closed the socket.
    pub closed: bool,
}

impl Answer {
    /// The `grpc-status` of the last block carrying one.
    pub fn status(&self) -> Option<i32> {
        self.field("grpc-status").and_then(|v| v.parse().ok())
    }

    /// The value of `key` in the last block carrying it.
    pub fn field(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}: ");
        self.blocks.iter().rev().find_map(|b| {
            b.split("\r\n")
                .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        })
    }
}

/// One call on its own websocket.
pub struct Call {
    ws: WebSocketStream<TcpStream>,
    buf: BytesMut,
}

/// `0x00` + the gRPC length-prefixed encoding of `msg`: one request message.
pub fn data(msg: &impl prost::Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut b = BytesMut::with_capacity(6 + body.len());
    b.put_u8(DATA);
    b.put_u8(0);
    b.put_u32(body.len() as u32);
    b.put_slice(&body);
    b.freeze()
}

impl Call {
    /// Opens a socket for `path` (`/<package>.<Service>/<Method>`) and sends `metadata`
    /// (`key: value\r\n` lines).
    pub async fn open(proxy: SocketAddr, path: &str, metadata: &str) -> Result<Call, CallError> {
        let stream = TcpStream::connect(proxy)
            .await
            .map_err(|e| CallError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut req = format!("ws://{proxy}{path}")
            .into_client_request()
            .map_err(|e| CallError::Connect(e.to_string()))?;
        req.headers_mut().insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static(SUBPROTOCOL),
        );
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(|e| CallError::Connect(e.to_string()))?;
        ws.send(Message::Binary(Bytes::copy_from_slice(metadata.as_bytes())))
            .await?;
        Ok(Call {
            ws,
            buf: BytesMut::new(),
        })
    }

    /// Sends one raw websocket message.
    pub async fn send_raw(&mut self, msg: Bytes) -> Result<(), CallError> {
        Ok(self.ws.send(Message::Binary(msg)).await?)
    }

    /// Sends one request message.
    pub async fn send(&mut self, msg: &impl prost::Message) -> Result<(), CallError> {
        self.send_raw(data(msg)).await
    }

    /// Ends the request stream.
    pub async fn half_close(&mut self) -> Result<(), CallError> {
        self.send_raw(Bytes::from_static(&[HALF_CLOSE])).await
    }

    /// Reads until the server closes the socket, or until `stop_after` reply messages.
    pub async fn read(&mut self, stop_after: Option<usize>) -> Result<Answer, CallError> {
        let mut answer = Answer::default();
        loop {
            let next = tokio::time::timeout(READ_WAIT, self.ws.next())
                .await
                .map_err(|_| CallError::Timeout)?;
            match next {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Close(_))) | None => {
                    answer.closed = true;
                    return Ok(answer);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
            // Frames may be split or merged across websocket messages.
            while self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() < 5 + len {
                    break;
                }
                let flag = self.buf[0];
                self.buf.advance(5);
                let body = self.buf.split_to(len).freeze();
                if flag & HEADER_BLOCK != 0 {
                    let text = String::from_utf8(body.to_vec()).map_err(|_| CallError::BadBlock)?;
                    answer.blocks.push(text);
                } else {
                    answer.messages.push(body);
                }
            }
            if stop_after.is_some_and(|n| answer.messages.len() >= n) {
                return Ok(answer);
            }
        }
    }

    /// Closes the socket (cancelling the call if it is still running).
    pub async fn close(mut self) -> Result<(), CallError> {
        Ok(self.ws.close(None).await?)
    }

    /// One unary call: open, send `msg`, half-close, read the whole answer.
    pub async fn unary(
        proxy: SocketAddr,
        path: &str,
        metadata: &str,
        msg: &impl prost::Message,
    ) -> Result<Answer, CallError> {
        let mut call = Call::open(proxy, path, metadata).await?;
        call.send(msg).await?;
        call.half_close().await?;
        call.read(None).await
    }
}
