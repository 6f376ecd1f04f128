//! The wire binding of the peer protocol: `/threads/sync/1`.
//!
//! Each engine message travels as one request on its own stream: a 4-byte big-endian length,
//! then the message bytes. The answer is one byte, [`ACK`], sent once the receiving engine has
//! taken the message into its bounded queue. Until the answer arrives the sender counts the
//! message as in flight against the peer's outbound budget, so a slow peer slows its senders
//! instead of making them buffer without bound.

use futures::prelude::*;
use libp2p::StreamProtocol;
use std::io;

/// The protocol name negotiated on every sync stream.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/threads/sync/1");

/// The only answer: the message was queued for the engine.
pub const ACK: u8 = 0;

/// Reads and writes sync messages, refusing any longer than `max_len`.
#[derive(Clone, Debug)]
pub struct SyncCodec {
    /// Largest message accepted, in bytes (the engine's `max_message_len`).
    pub max_len: usize,
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "sync message of {len} bytes exceeds the limit of {} bytes",
                    self.max_len
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(len.min(64 << 10));
        io.take(len as u64).read_to_end(&mut bytes).await?;
        if bytes.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("sync message cut short: {} of {len} bytes", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut answer = [0u8; 1];
        io.read_exact(&mut answer).await?;
        if answer[0] != ACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown sync answer {}", answer[0]),
            ));
        }
        Ok(())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&l| l as usize <= self.max_len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sync message of {} bytes is over the limit", bytes.len()),
                )
            })?;
        io.write_all(&len.to_be_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&[ACK]).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    fn block<F: Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn round_trip_and_limits() {
        let mut codec = SyncCodec { max_len: 16 };
        let mut wire = Vec::new();
        block(codec.write_request(&SYNC_PROTOCOL, &mut wire, b"hello".to_vec())).unwrap();
        assert_eq!(&wire[..4], &[0, 0, 0, 5]);
        let got = block(codec.read_request(&SYNC_PROTOCOL, &mut &wire[..])).unwrap();
        assert_eq!(got, b"hello");

        // Over the limit, both ways.
        let err = block(codec.write_request(&SYNC_PROTOCOL, &mut Vec::new(), vec![0; 17]));
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let mut long = 17u32.to_be_bytes().to_vec();
        long.extend([0; 17]);
        let err = block(codec.read_request(&SYNC_PROTOCOL, &mut &long[..])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // Truncated body.
        let short = [0, 0, 0, 9, 1, 2];
        let err = block(codec.read_request(&SYNC_PROTOCOL, &mut &short[..])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        // Answers.
        let mut ack = Vec::new();
        block(codec.write_response(&SYNC_PROTOCOL, &mut ack, ())).unwrap();
        block(codec.read_response(&SYNC_PROTOCOL, &mut &ack[..])).unwrap();
        assert!(block(codec.read_response(&SYNC_PROTOCOL, &mut &[7u8][..])).is_err());
    }
}
