//! The four blocks of a record as DAG-CBOR maps, and the canonical encode/decode rules shared by
//! all of them. `spec/formats.md` §4 describes these maps for other implementations.

use super::error::{BlockKind, RecordError};
use cid::Cid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Multicodec code of DAG-CBOR, the codec of every block CID.
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256, the hash of every block CID.
pub const SHA2_256: u64 = 0x12;

/// Computes the CIDv1 (dag-cbor, sha2-256) of a block's bytes.
pub fn block_cid(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // A 32-byte digest always fits the 64-byte multihash buffer.
    let mh = cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest)
        .expect("a sha2-256 digest fits a 64-byte multihash");
    Cid::new_v1(DAG_CBOR, mh)
}

/// A block sealed with an AEAD key: `{"c": ciphertext, "n": nonce, "v": 1}`.
///
/// Used for the record envelope (service key), the header (read key) and the body (body key).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealedNode {
    /// Ciphertext followed by the 16-byte Poly1305 tag.
    #[serde(rename = "c", with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The 24-byte XChaCha20 nonce.
    #[serde(rename = "n", with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Format version, 1.
    #[serde(rename = "v")]
    pub version: u64,
}

/// The event block, in clear: links to the header and the body, `{"b", "h", "v"}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EventNode {
    /// CID of the sealed body block.
    #[serde(rename = "b")]
    pub body: Cid,
    /// CID of the sealed header block.
    #[serde(rename = "h")]
    pub header: Cid,
    /// Format version, 1.
    #[serde(rename = "v")]
    pub version: u64,
}

/// The header plaintext, sealed with the read key: `{"k": body key, "t": time, "v": 1}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeaderNode {
    /// The 32-byte key the body is sealed with, fresh for every event.
    #[serde(rename = "k", with = "serde_bytes")]
    pub body_key: Vec<u8>,
    /// The writer's clock when it created the event, in Unix nanoseconds (informational).
    #[serde(rename = "t")]
    pub time: u64,
    /// Format version, 1.
    #[serde(rename = "v")]
    pub version: u64,
}

/// The signed part of a record, the plaintext of the envelope minus the signature.
///
/// `{"a": author, "c": counter, "e": event, "l": clock, "p": prev|null, "t": thread, "v": 1}`;
/// the envelope plaintext is the same map with `"s"` (the signature) added.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UnsignedRecordNode {
    /// Author identity: libp2p protobuf of its Ed25519 public key (36 bytes).
    #[serde(rename = "a", with = "serde_bytes")]
    pub author: Vec<u8>,
    /// Log counter, 1-based.
    #[serde(rename = "c")]
    pub counter: u64,
    /// CID of the event block.
    #[serde(rename = "e")]
    pub event: Cid,
    /// Lamport clock.
    #[serde(rename = "l")]
    pub clock: u64,
    /// CID of the previous record of the log; null for the first record.
    #[serde(rename = "p")]
    pub prev: Option<Cid>,
    /// Raw bytes of the thread id the record belongs to.
    #[serde(rename = "t", with = "serde_bytes")]
    pub thread: Vec<u8>,
    /// Format version, 1.
    #[serde(rename = "v")]
    pub version: u64,
}

/// The envelope plaintext: the signed map plus the signature `"s"`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedRecordNode {
    /// See [`UnsignedRecordNode::author`].
    #[serde(rename = "a", with = "serde_bytes")]
    pub author: Vec<u8>,
    /// See [`UnsignedRecordNode::counter`].
    #[serde(rename = "c")]
    pub counter: u64,
    /// See [`UnsignedRecordNode::event`].
    #[serde(rename = "e")]
    pub event: Cid,
    /// See [`UnsignedRecordNode::clock`].
    #[serde(rename = "l")]
    pub clock: u64,
    /// See [`UnsignedRecordNode::prev`].
    #[serde(rename = "p")]
    pub prev: Option<Cid>,
    /// Ed25519 signature by the log key over the signing input (64 bytes).
    #[serde(rename = "s", with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// See [`UnsignedRecordNode::thread`].
    #[serde(rename = "t", with = "serde_bytes")]
    pub thread: Vec<u8>,
    /// See [`UnsignedRecordNode::version`].
    #[serde(rename = "v")]
    pub version: u64,
}

impl SignedRecordNode {
    /// The map the signature covers: this one without `"s"`.
    pub fn unsigned(&self) -> UnsignedRecordNode {
        UnsignedRecordNode {
            author: self.author.clone(),
            counter: self.counter,
            event: self.event,
            clock: self.clock,
            prev: self.prev,
            thread: self.thread.clone(),
            version: self.version,
        }
    }
}

/// The whole record as one value `{"b": body, "e": event, "h": header, "r": record}`, each
/// member the bytes of one block. This is how a record travels between peers and is stored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleNode {
    /// Sealed body block.
    #[serde(rename = "b", with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Event block.
    #[serde(rename = "e", with = "serde_bytes")]
    pub event: Vec<u8>,
    /// Sealed header block.
    #[serde(rename = "h", with = "serde_bytes")]
    pub header: Vec<u8>,
    /// Sealed record envelope.
    #[serde(rename = "r", with = "serde_bytes")]
    pub record: Vec<u8>,
    /// Format version, 1.
    #[serde(rename = "v")]
    pub version: u64,
}

/// Encodes a value as canonical DAG-CBOR.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our node types hold only maps, byte strings, unsigned integers and CIDs, which the
    // encoder cannot fail on short of running out of memory.
    serde_ipld_dagcbor::to_vec(value).expect("encoding a record node cannot fail")
}

/// Decodes a value without the canonical-form check, for the engine's own stored rows.
pub fn decode_plain<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| e.to_string())
}

/// Decodes a block, rejecting oversized input, invalid CBOR, unknown members and any encoding
/// other than the canonical one (so that every value has exactly one byte form, and one CID).
pub fn decode<T: Serialize + DeserializeOwned>(
    block: BlockKind,
    bytes: &[u8],
    max_len: usize,
) -> Result<T, RecordError> {
    if bytes.len() > max_len {
        return Err(RecordError::TooLarge {
            block,
            len: bytes.len(),
            max: max_len,
        });
    }
    let value: T = serde_ipld_dagcbor::from_slice(bytes).map_err(|e| match e {
        // The decoder already refuses some non-canonical forms; report them as such.
        serde_ipld_dagcbor::DecodeError::UnorderedKey
        | serde_ipld_dagcbor::DecodeError::NonMinimal { .. }
        | serde_ipld_dagcbor::DecodeError::IndefiniteSize => RecordError::NonCanonical { block },
        other => RecordError::Decode {
            block,
            reason: other.to_string(),
        },
    })?;
    if encode(&value) != bytes {
        return Err(RecordError::NonCanonical { block });
    }
    Ok(value)
}
