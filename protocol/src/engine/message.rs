//! The peer protocol: what hosts say to each other about threads, as versioned DAG-CBOR.
//!
//! Every message is a [`Frame`]: the protocol version, a membership proof and the encoded
//! [`Payload`]. The proof is an HMAC-SHA256, keyed with the thread's service key, over the
//! sender, the receiver and the payload, so a peer shows it holds the service key without ever
//! sending it, and a proof cannot be replayed to another host. `spec/peer-protocol.md` describes
//! the messages and the exchanges built from them.

use crate::id::ThreadId;
use crate::key::ServiceKey;
use crate::log_id::LogId;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

mod canonical;
mod reader;

/// Version of the peer protocol spoken by this build.
pub const PROTOCOL_VERSION: u64 = 1;
/// Domain-separation prefix of the membership proof.
pub const PROOF_DOMAIN: &[u8] = b"threaddb/v1/membership-proof\0";

/// The outer frame of every message.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    /// Encoded [`Payload`].
    #[serde(rename = "m", with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// HMAC-SHA256 membership proof (32 bytes).
    #[serde(rename = "p", with = "serde_bytes")]
    pub proof: Vec<u8>,
    /// Protocol version, [`PROTOCOL_VERSION`].
    #[serde(rename = "v")]
    pub version: u64,
}

/// One log's height as a peer reports it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogHeightEntry {
    /// Height (counter of the head).
    #[serde(rename = "h")]
    pub height: u64,
    /// Log id bytes (libp2p peer id of the log key).
    #[serde(rename = "l", with = "serde_bytes")]
    pub log: Vec<u8>,
}

/// What a message says. Every payload names its thread (raw thread id bytes).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Payload {
    /// Anti-entropy probe: the hash of the sender's log heads. Equal digests end the exchange.
    Digest {
        /// Thread id bytes.
        #[serde(rename = "t", with = "serde_bytes")]
        thread: Vec<u8>,
        /// sha2-256 over the sender's non-empty logs (see [`super::Host::digest`]).
        #[serde(rename = "d", with = "serde_bytes")]
        digest: Vec<u8>,
    },
    /// The sender's log heights and the peers it knows for the thread.
    Heights {
        /// Thread id bytes.
        #[serde(rename = "t", with = "serde_bytes")]
        thread: Vec<u8>,
        /// Every non-empty log the sender holds.
        #[serde(rename = "l")]
        logs: Vec<LogHeightEntry>,
        /// Peer ids of other hosts of the thread (bounded).
        #[serde(rename = "p")]
        peers: Vec<serde_bytes::ByteBuf>,
        /// Whether the receiver should answer with its own heights.
        #[serde(rename = "r")]
        reply: bool,
    },
    /// Asks for records of one log, forward from a counter.
    Pull {
        /// Thread id bytes.
        #[serde(rename = "t", with = "serde_bytes")]
        thread: Vec<u8>,
        /// Log id bytes.
        #[serde(rename = "l", with = "serde_bytes")]
        log: Vec<u8>,
        /// First counter wanted.
        #[serde(rename = "f")]
        from: u64,
        /// At most this many records.
        #[serde(rename = "n")]
        max: u32,
    },
    /// Answer to a pull: consecutive records from the requested counter.
    Page {
        /// Thread id bytes.
        #[serde(rename = "t", with = "serde_bytes")]
        thread: Vec<u8>,
        /// Log id bytes.
        #[serde(rename = "l", with = "serde_bytes")]
        log: Vec<u8>,
        /// Counter of the first record in `records`.
        #[serde(rename = "f")]
        from: u64,
        /// Encoded record bundles, in log order.
        #[serde(rename = "r")]
        records: Vec<serde_bytes::ByteBuf>,
        /// The sender's height of the log when it answered.
        #[serde(rename = "h")]
        height: u64,
    },
    /// New records of one log, sent unasked right after they were written or received.
    Push {
        /// Thread id bytes.
        #[serde(rename = "t", with = "serde_bytes")]
        thread: Vec<u8>,
        /// Log id bytes.
        #[serde(rename = "l", with = "serde_bytes")]
        log: Vec<u8>,
        /// Encoded record bundles, in log order.
        #[serde(rename = "r")]
        records: Vec<serde_bytes::ByteBuf>,
    },
    /// Asks the receiver to replicate a thread, handing it the service key (only).
    Invite {
        /// Thread id bytes.
        #[serde(rename = "t", with = "serde_bytes")]
        thread: Vec<u8>,
        /// The 32-byte service key. Sent only over the authenticated, encrypted transport.
        #[serde(rename = "k", with = "serde_bytes")]
        service_key: Vec<u8>,
    },
}

impl Payload {
    /// Raw bytes of the thread id the payload is about.
    pub fn thread_bytes(&self) -> &[u8] {
        match self {
            Payload::Digest { thread, .. }
            | Payload::Heights { thread, .. }
            | Payload::Pull { thread, .. }
            | Payload::Page { thread, .. }
            | Payload::Push { thread, .. }
            | Payload::Invite { thread, .. } => thread,
        }
    }

    /// A short name for traces and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Digest { .. } => "digest",
            Payload::Heights { .. } => "heights",
            Payload::Pull { .. } => "pull",
            Payload::Page { .. } => "page",
            Payload::Push { .. } => "push",
            Payload::Invite { .. } => "invite",
        }
    }
}

/// Why bytes from a peer are not a message we can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message is larger than the configured limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a valid frame or payload.
    #[error("undecodable {what}: {reason}")]
    Decode {
        /// "frame" or "payload".
        what: &'static str,
        /// Decoder's explanation.
        reason: String,
    },
    /// A protocol version this build does not speak.
    #[error("peer speaks protocol version {0}; this build speaks version 1")]
    Version(u64),
}

/// A service key made ready for membership proofs: the HMAC state after absorbing the key.
///
/// Keying an HMAC costs two SHA-256 compressions, as much as hashing a short message; the
/// engine keeps one per thread (and each message verifier one per thread it checks) instead
/// of keying again for every message. Never printed.
#[derive(Clone)]
pub struct ProofKey(Hmac<Sha256>);

impl ProofKey {
    /// Prepares `key` for proofs.
    pub fn new(key: &ServiceKey) -> Self {
        ProofKey(
            <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
                .expect("HMAC accepts keys of any length"),
        )
    }

    fn mac(&self, from: &LogId, to: &LogId, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(PROOF_DOMAIN);
        mac.update(from.as_bytes());
        mac.update(to.as_bytes());
        mac.update(payload);
        mac
    }

    /// The membership proof of `payload` sent by `from` to `to`.
    pub fn proof(&self, from: &LogId, to: &LogId, payload: &[u8]) -> [u8; 32] {
        self.mac(from, to, payload).finalize().into_bytes().into()
    }

    /// Checks a membership proof in constant time.
    pub fn is_valid(&self, from: &LogId, to: &LogId, payload: &[u8], proof: &[u8]) -> bool {
        self.mac(from, to, payload).verify_slice(proof).is_ok()
    }

    /// Encodes a payload into a frame with its proof (canonical DAG-CBOR: the same bytes as
    /// the serde encoding of [`Frame`] and [`Payload`], written without its per-member buffers).
    pub fn encode(&self, from: &LogId, to: &LogId, payload: &Payload) -> Vec<u8> {
        let payload = canonical::payload(payload);
        let proof = self.proof(from, to, &payload);
        canonical::frame(&payload, &proof, PROTOCOL_VERSION)
    }
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProofKey(..)")
    }
}

/// Computes the membership proof of `payload` sent by `from` to `to` (keying the HMAC anew:
/// [`ProofKey`] keeps the keyed state).
pub fn proof(key: &ServiceKey, from: &LogId, to: &LogId, payload: &[u8]) -> [u8; 32] {
    ProofKey::new(key).proof(from, to, payload)
}

/// Checks a membership proof in constant time ([`ProofKey::is_valid`] with a key made for
/// this one check).
pub fn proof_is_valid(
    key: &ServiceKey,
    from: &LogId,
    to: &LogId,
    payload: &[u8],
    proof: &[u8],
) -> bool {
    ProofKey::new(key).is_valid(from, to, payload, proof)
}

/// Encodes a payload into a frame with its proof ([`ProofKey::encode`] with a key made for
/// this one message).
pub fn encode(key: &ServiceKey, from: &LogId, to: &LogId, payload: &Payload) -> Vec<u8> {
    ProofKey::new(key).encode(from, to, payload)
}

/// Decodes a frame and its payload; the proof is checked by the caller, who knows the key.
///
/// Canonical bytes (what every host of this protocol sends) are read directly; any other
/// bytes go through the serde decoder, which accepts or rejects them and explains why (see
/// `reader`: both paths give the same result on every input).
pub fn decode(bytes: &[u8], max_len: usize) -> Result<(Frame, Payload), MessageError> {
    if bytes.len() > max_len {
        return Err(MessageError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let frame = match reader::frame(bytes) {
        Some(frame) => frame,
        None => serde_ipld_dagcbor::from_slice(bytes).map_err(|e| MessageError::Decode {
            what: "frame",
            reason: e.to_string(),
        })?,
    };
    if frame.version != PROTOCOL_VERSION {
        return Err(MessageError::Version(frame.version));
    }
    let payload = match reader::payload(&frame.payload) {
        Some(payload) => payload,
        None => {
            serde_ipld_dagcbor::from_slice(&frame.payload).map_err(|e| MessageError::Decode {
                what: "payload",
                reason: e.to_string(),
            })?
        }
    };
    Ok((frame, payload))
}

/// Parses thread id bytes from a payload.
pub fn thread_of(bytes: &[u8]) -> Option<ThreadId> {
    ThreadId::from_bytes(bytes).ok()
}
