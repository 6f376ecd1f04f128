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
pub fn decode<T: Node + DeserializeOwned>(
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
    // The canonical bytes of a value, the only ones accepted, are read without serde; serde
    // decides about any other bytes and gives the error.
    if let Some(value) = T::read(bytes).filter(|v| v.is_encoded_by(bytes)) {
        return Ok(value);
    }
    decode_with_serde(block, bytes)
}

/// [`decode`]'s decision through serde alone (after the length check), which also explains a
/// refusal.
pub(super) fn decode_with_serde<T: Node + DeserializeOwned>(
    block: BlockKind,
    bytes: &[u8],
) -> Result<T, RecordError> {
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
    if !value.is_encoded_by(bytes) {
        return Err(RecordError::NonCanonical { block });
    }
    Ok(value)
}

/// Where a canonical encoder writes: a buffer, or a comparison with bytes already held.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A sink that compares what is written with expected bytes, without allocating.
struct Compare<'a> {
    rest: &'a [u8],
    equal: bool,
}

impl Sink for Compare<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.rest.split_at_checked(bytes.len()) {
            Some((head, tail)) if self.equal && head == bytes => self.rest = tail,
            _ => self.equal = false,
        }
    }
}

/// A record node with a hand-written canonical DAG-CBOR encoder: byte for byte what
/// `serde_ipld_dagcbor` writes for it (tests hold them equal), without its per-member buffers.
/// Keys are single letters, so canonical order is alphabetical, the order of the fields.
pub trait Node: Sized {
    /// Writes the canonical encoding.
    fn write<S: Sink>(&self, out: &mut S);

    /// The value whose canonical encoding `bytes` are, read without serde; `None` for bytes
    /// this reader does not take (which [`decode`] then hands to serde).
    fn read(bytes: &[u8]) -> Option<Self>;

    /// The canonical encoding.
    fn to_canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.write(&mut out);
        out
    }

    /// Whether `bytes` is exactly the canonical encoding of this value.
    fn is_encoded_by(&self, bytes: &[u8]) -> bool {
        let mut cmp = Compare {
            rest: bytes,
            equal: true,
        };
        self.write(&mut cmp);
        cmp.equal && cmp.rest.is_empty()
    }

    /// A guess of the encoded length, to allocate once.
    fn size_hint(&self) -> usize {
        128
    }
}

/// A CBOR head: major type and argument, in the shortest form.
fn head<S: Sink>(out: &mut S, major: u8, value: u64) {
    let m = major << 5;
    if value < 24 {
        out.put(&[m | value as u8]);
    } else if value <= u64::from(u8::MAX) {
        out.put(&[m | 24, value as u8]);
    } else if value <= u64::from(u16::MAX) {
        let b = (value as u16).to_be_bytes();
        out.put(&[m | 25, b[0], b[1]]);
    } else if value <= u64::from(u32::MAX) {
        let b = (value as u32).to_be_bytes();
        out.put(&[m | 26, b[0], b[1], b[2], b[3]]);
    } else {
        out.put(&[m | 27]);
        out.put(&value.to_be_bytes());
    }
}

fn map<S: Sink>(out: &mut S, entries: u64) {
    head(out, 5, entries);
}

/// A one-letter text key.
fn key<S: Sink>(out: &mut S, k: u8) {
    out.put(&[0x61, k]);
}

fn uint<S: Sink>(out: &mut S, v: u64) {
    head(out, 0, v);
}

fn bytes<S: Sink>(out: &mut S, b: &[u8]) {
    head(out, 2, b.len() as u64);
    out.put(b);
}

/// A CID: tag 42 over the byte string `0x00 ‖ binary CID`.
fn cid<S: Sink>(out: &mut S, c: &Cid) {
    let mut buf = [0u8; 128];
    let len = c.encoded_len();
    out.put(&[0xd8, 0x2a]);
    head(out, 2, len as u64 + 1);
    out.put(&[0]);
    if len <= buf.len() && c.write_bytes(&mut buf[..len]).is_ok() {
        out.put(&buf[..len]);
    } else {
        out.put(&c.to_bytes());
    }
}

fn opt_cid<S: Sink>(out: &mut S, c: &Option<Cid>) {
    match c {
        Some(c) => cid(out, c),
        None => out.put(&[0xf6]),
    }
}

impl Node for SealedNode {
    fn read(bytes: &[u8]) -> Option<Self> {
        super::wire_read::sealed(bytes)
    }
    fn write<S: Sink>(&self, out: &mut S) {
        map(out, 3);
        key(out, b'c');
        bytes(out, &self.ciphertext);
        key(out, b'n');
        bytes(out, &self.nonce);
        key(out, b'v');
        uint(out, self.version);
    }
    fn size_hint(&self) -> usize {
        self.ciphertext.len() + self.nonce.len() + 32
    }
}

impl Node for EventNode {
    fn read(bytes: &[u8]) -> Option<Self> {
        super::wire_read::event(bytes)
    }
    fn write<S: Sink>(&self, out: &mut S) {
        map(out, 3);
        key(out, b'b');
        cid(out, &self.body);
        key(out, b'h');
        cid(out, &self.header);
        key(out, b'v');
        uint(out, self.version);
    }
}

impl Node for HeaderNode {
    fn read(bytes: &[u8]) -> Option<Self> {
        super::wire_read::header(bytes)
    }
    fn write<S: Sink>(&self, out: &mut S) {
        map(out, 3);
        key(out, b'k');
        bytes(out, &self.body_key);
        key(out, b't');
        uint(out, self.time);
        key(out, b'v');
        uint(out, self.version);
    }
}

impl Node for UnsignedRecordNode {
    fn read(bytes: &[u8]) -> Option<Self> {
        super::wire_read::unsigned(bytes)
    }
    fn write<S: Sink>(&self, out: &mut S) {
        UnsignedRef {
            author: &self.author,
            counter: self.counter,
            event: &self.event,
            clock: self.clock,
            prev: &self.prev,
            thread: &self.thread,
            version: self.version,
        }
        .write(out);
    }
    fn size_hint(&self) -> usize {
        256
    }
}

impl Node for SignedRecordNode {
    fn read(bytes: &[u8]) -> Option<Self> {
        super::wire_read::signed(bytes)
    }
    fn write<S: Sink>(&self, out: &mut S) {
        map(out, 8);
        key(out, b'a');
        bytes(out, &self.author);
        key(out, b'c');
        uint(out, self.counter);
        key(out, b'e');
        cid(out, &self.event);
        key(out, b'l');
        uint(out, self.clock);
        key(out, b'p');
        opt_cid(out, &self.prev);
        key(out, b's');
        bytes(out, &self.signature);
        key(out, b't');
        bytes(out, &self.thread);
        key(out, b'v');
        uint(out, self.version);
    }
    fn size_hint(&self) -> usize {
        320
    }
}

impl SignedRecordNode {
    /// Writes the map the signature covers ([`SignedRecordNode::unsigned`], encoded) without
    /// copying the node.
    pub fn write_unsigned<S: Sink>(&self, out: &mut S) {
        UnsignedRef {
            author: &self.author,
            counter: self.counter,
            event: &self.event,
            clock: self.clock,
            prev: &self.prev,
            thread: &self.thread,
            version: self.version,
        }
        .write(out);
    }
}

/// The unsigned map, borrowed.
struct UnsignedRef<'a> {
    author: &'a [u8],
    counter: u64,
    event: &'a Cid,
    clock: u64,
    prev: &'a Option<Cid>,
    thread: &'a [u8],
    version: u64,
}

impl UnsignedRef<'_> {
    fn write<S: Sink>(&self, out: &mut S) {
        map(out, 7);
        key(out, b'a');
        bytes(out, self.author);
        key(out, b'c');
        uint(out, self.counter);
        key(out, b'e');
        cid(out, self.event);
        key(out, b'l');
        uint(out, self.clock);
        key(out, b'p');
        opt_cid(out, self.prev);
        key(out, b't');
        bytes(out, self.thread);
        key(out, b'v');
        uint(out, self.version);
    }
}

impl Node for BundleNode {
    fn read(bytes: &[u8]) -> Option<Self> {
        super::wire_read::bundle(bytes)
    }
    fn write<S: Sink>(&self, out: &mut S) {
        write_bundle(
            out,
            &self.body,
            &self.event,
            &self.header,
            &self.record,
            self.version,
        );
    }
    fn size_hint(&self) -> usize {
        self.body.len() + self.event.len() + self.header.len() + self.record.len() + 32
    }
}

/// Writes a bundle map from borrowed blocks.
pub fn write_bundle<S: Sink>(
    out: &mut S,
    body: &[u8],
    event: &[u8],
    header: &[u8],
    record: &[u8],
    version: u64,
) {
    map(out, 5);
    key(out, b'b');
    bytes(out, body);
    key(out, b'e');
    bytes(out, event);
    key(out, b'h');
    bytes(out, header);
    key(out, b'r');
    bytes(out, record);
    key(out, b'v');
    uint(out, version);
}
