//! The byte formats of the grpc-websockets protocol (COMPAT.md §c): the client's metadata
//! message, its data and half-close messages, and the server's header and trailer blocks.
//! Pure functions, so every rule here has a unit test.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

/// First byte of a client message that carries request bytes.
pub const DATA: u8 = 0x00;
/// The single-byte client message that ends the request stream.
pub const HALF_CLOSE: u8 = 0x01;
/// First byte of a server message that carries a header or trailer block.
pub const HEADER_BLOCK: u8 = 0x80;

/// A client message the bridge cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The metadata message is not `key: value` lines of valid header names and values.
    #[error("bad metadata line {line:?}: expected `key: value` with a valid header name and value")]
    BadMetadata {
        /// The offending line (lossy UTF-8).
        line: String,
    },
    /// A request message that starts neither with 0x00 (data) nor is exactly 0x01 (half-close).
    #[error(
        "bad request message: starts with {first:#04x}, expected 0x00 (data) or a lone 0x01 (end)"
    )]
    BadMessage {
        /// The first byte seen (0 for an empty message).
        first: u8,
    },
}

/// What one client message (after the metadata) asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// More request bytes (gRPC length-prefixed messages, possibly split or merged).
    Data(Bytes),
    /// The request stream is complete.
    HalfClose,
}

/// Reads one client message.
pub fn client_message(mut msg: Bytes) -> Result<ClientMessage, FrameError> {
    match msg.first() {
        Some(&DATA) => Ok(ClientMessage::Data(msg.split_off(1))),
        Some(&HALF_CLOSE) if msg.len() == 1 => Ok(ClientMessage::HalfClose),
        first => Err(FrameError::BadMessage {
            first: first.copied().unwrap_or(0),
        }),
    }
}

/// Keys of the metadata message that are never forwarded to the gRPC service: the
/// Context's own `host` entry, transport-level headers the bridge sets itself, and the Hub's
/// `x-textile-*` headers.
fn dropped(key: &str) -> bool {
    matches!(
        key,
        "host"
            | "content-type"
            | "content-length"
            | "x-grpc-web"
            | "connection"
            | "upgrade"
            | "te"
            | "transfer-encoding"
            | "keep-alive"
    ) || key.starts_with("x-textile-")
        || key.starts_with(':')
}

/// Parses the metadata message into the request headers to forward.
pub fn metadata(text: &[u8]) -> Result<HeaderMap, FrameError> {
    let mut headers = HeaderMap::new();
    for raw in text.split(|b| *b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = || FrameError::BadMetadata {
            line: String::from_utf8_lossy(line).into_owned(),
        };
        let colon = line.iter().position(|b| *b == b':').ok_or_else(bad)?;
        let key = std::str::from_utf8(&line[..colon])
            .map_err(|_| bad())?
            .trim()
            .to_ascii_lowercase();
        if dropped(&key) {
            continue;
        }
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).map_err(|_| bad())?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// A server header (or trailer) block: `0x80 | u32 BE length | "key: value\r\n"…`.
pub fn header_block(headers: &HeaderMap) -> Bytes {
    let mut text = BytesMut::new();
    for (name, value) in headers {
        text.put_slice(name.as_str().as_bytes());
        text.put_slice(b": ");
        text.put_slice(value.as_bytes());
        text.put_slice(b"\r\n");
    }
    let mut block = BytesMut::with_capacity(5 + text.len());
    block.put_u8(HEADER_BLOCK);
    block.put_u32(text.len() as u32);
    block.put_slice(&text);
    block.freeze()
}

/// The block ending a call that failed in the bridge itself (before or instead of the
/// service's answer): `grpc-status` and the percent-encoded `grpc-message`.
pub fn status_block(status: &tonic::Status) -> Bytes {
    let mut headers = HeaderMap::new();
    if status.add_header(&mut headers).is_err() {
        // Only a message that cannot be encoded fails; the code alone still ends the call.
        headers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    }
    header_block(&headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_what_the_service_needs() {
        let text = b"host: http://127.0.0.1:6007\r\nauthorization: bearer abc.def\r\n\
            X-Textile-Thread-Name: notes\r\ncontent-type: application/grpc-web+proto\r\n\
            x-grpc-web: 1\r\nx-custom: a, b\r\n";
        let h = metadata(text).unwrap();
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["authorization"], "bearer abc.def");
        assert_eq!(h["x-custom"], "a, b");
        // Empty metadata (a bare call) is fine, and so are bare `\n` line ends.
        assert!(metadata(b"").unwrap().is_empty());
        assert_eq!(metadata(b"a: 1\nb: 2\n").unwrap().len(), 2);
    }

    #[test]
    fn bad_metadata_is_refused() {
        for text in [&b"no colon here"[..], b"bad key: 1", b"k: \x01"] {
            assert!(
                matches!(metadata(text), Err(FrameError::BadMetadata { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn client_messages() {
        assert_eq!(
            client_message(Bytes::from_static(&[0, 0, 0, 0, 0, 0])).unwrap(),
            ClientMessage::Data(Bytes::from_static(&[0, 0, 0, 0, 0]))
        );
        assert_eq!(
            client_message(Bytes::from_static(&[1])).unwrap(),
            ClientMessage::HalfClose
        );
        assert_eq!(
            client_message(Bytes::from_static(&[1, 0])),
            Err(FrameError::BadMessage { first: 1 })
        );
        assert_eq!(
            client_message(Bytes::new()),
            Err(FrameError::BadMessage { first: 0 })
        );
    }

    #[test]
    fn blocks_are_prefixed_with_their_length() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        let b = header_block(&h);
        let text = b"content-type: application/grpc\r\n";
        assert_eq!(b[0], HEADER_BLOCK);
        assert_eq!(
            u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize,
            text.len()
        );
        assert_eq!(&b[5..], text);
    }

    #[test]
    fn status_messages_are_percent_encoded() {
        let b = status_block(&tonic::Status::not_found("instance not found: 100%"));
        let text = std::str::from_utf8(&b[5..]).unwrap();
        assert!(text.contains("grpc-status: 5\r\n"), "{text}");
        assert!(
            text.contains("grpc-message: instance%20not%20found:%20100%25\r\n"),
            "{text}"
        );
    }
}
