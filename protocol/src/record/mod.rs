//! Records: the signed, hash-linked, encrypted entries of a log.
//!
//! A record is four DAG-CBOR blocks, each named by its CIDv1 (dag-cbor, sha2-256):
//!
//! * the **envelope** (record block), sealed with the thread's *service key*, holding the signed
//!   map: author, log counter, Lamport clock, previous record, event link, thread id, version and
//!   the Ed25519 signature of the log key over all of them;
//! * the **event** block, in clear, linking the header and the body by CID;
//! * the **header**, sealed with the thread's *read key*, holding the per-event body key;
//! * the **body**, sealed with that per-event key.
//!
//! The signature covers the event CID, which covers the header and body ciphertexts, so changing
//! any byte of any block is detected by anyone holding the service key ([`verify`]), without
//! the read key. [`open`] then decrypts with the read key. The byte layout is in
//! `spec/formats.md`.

mod build;
mod check;
pub mod error;
pub mod memo;
pub mod seal;
#[cfg(test)]
mod tests;
pub mod wire;
mod wire_read;

pub use build::{RecordDraft, create};
#[cfg(feature = "buggify")]
pub use check::verify_without_signature;
pub use check::{open, open_body, verify};
pub(crate) use check::{open_parts, opened, verify_cid, verify_keeping_cid};
pub use error::{BlockKind, RecordError};
pub use wire::block_cid;

use crate::counter::{LamportClock, LogCounter};
use crate::id::ThreadId;
use crate::identity::PublicKey;
use crate::log_id::LogId;
use cid::Cid;

/// The format version written in every block.
pub const FORMAT_VERSION: u64 = 1;
/// Largest body plaintext a record may carry (1 MiB).
pub const MAX_BODY_LEN: usize = 1 << 20;
/// Largest sealed body block: the plaintext limit plus sealing and CBOR overhead.
pub const MAX_BODY_BLOCK_LEN: usize = MAX_BODY_LEN + 64;
/// Largest envelope, event or header block.
pub const MAX_META_BLOCK_LEN: usize = 1024;
/// Largest encoded bundle of all four blocks.
pub const MAX_BUNDLE_LEN: usize = MAX_BODY_BLOCK_LEN + 3 * MAX_META_BLOCK_LEN + 64;
/// Domain-separation prefix of the bytes the log key signs.
pub const SIGNING_DOMAIN: &[u8] = b"threaddb/v1/record-signature\0";

/// The four encoded blocks of one record, as they travel and are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBundle {
    /// Sealed envelope (service key).
    pub record: Vec<u8>,
    /// Event block (clear).
    pub event: Vec<u8>,
    /// Sealed header (read key).
    pub header: Vec<u8>,
    /// Sealed body (per-event key).
    pub body: Vec<u8>,
}

impl RecordBundle {
    /// Encodes the bundle as one DAG-CBOR map `{"b","e","h","r","v"}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() + 32);
        wire::write_bundle(
            &mut out,
            &self.body,
            &self.event,
            &self.header,
            &self.record,
            FORMAT_VERSION,
        );
        out
    }

    /// Decodes a bundle; only the framing is checked here, [`verify`] checks the content.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let node: wire::BundleNode = wire::decode(BlockKind::Bundle, bytes, MAX_BUNDLE_LEN)?;
        if node.version != FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion {
                block: BlockKind::Bundle,
                version: node.version,
            });
        }
        Ok(RecordBundle {
            record: node.record,
            event: node.event,
            header: node.header,
            body: node.body,
        })
    }

    /// The record's identity: the CID of its envelope block.
    pub fn cid(&self) -> Cid {
        block_cid(&self.record)
    }

    /// Total bytes of the four blocks.
    pub fn len(&self) -> usize {
        self.record.len() + self.event.len() + self.header.len() + self.body.len()
    }

    /// True when all four blocks are empty (never the case for a valid record).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record whose envelope opened with the service key, whose links all match and whose
/// signature verified. Only [`verify`] and [`create`] make one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    cid: Cid,
    thread: ThreadId,
    log: LogId,
    author: PublicKey,
    counter: LogCounter,
    clock: LamportClock,
    prev: Option<Cid>,
    signature: [u8; 64],
    bundle: RecordBundle,
}

impl VerifiedRecord {
    /// CID of the envelope block: the record's identity, and what the next record's `prev` is.
    pub fn cid(&self) -> Cid {
        self.cid
    }
    /// The thread the record is signed for.
    pub fn thread(&self) -> &ThreadId {
        &self.thread
    }
    /// The log the record belongs to (its signer).
    pub fn log(&self) -> &LogId {
        &self.log
    }
    /// The identity that wrote the record (the `writer` of validators).
    pub fn author(&self) -> &PublicKey {
        &self.author
    }
    /// Position in its log, 1-based.
    pub fn counter(&self) -> LogCounter {
        self.counter
    }
    /// Lamport clock of the record's event.
    pub fn clock(&self) -> LamportClock {
        self.clock
    }
    /// CID of the previous record of the log, `None` for the first.
    pub fn prev(&self) -> Option<Cid> {
        self.prev
    }
    /// The log key's Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
    /// The four blocks.
    pub fn bundle(&self) -> &RecordBundle {
        &self.bundle
    }
    /// Gives up the four blocks.
    pub fn into_bundle(self) -> RecordBundle {
        self.bundle
    }
}

/// A verified record whose header and body were decrypted with the read key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedRecord {
    record: VerifiedRecord,
    time: u64,
    body: Vec<u8>,
}

impl OpenedRecord {
    /// The verified record.
    pub fn record(&self) -> &VerifiedRecord {
        &self.record
    }
    /// Gives up the verified record.
    pub fn into_record(self) -> VerifiedRecord {
        self.record
    }
    /// The writer's clock at creation, Unix nanoseconds (not trusted for ordering).
    pub fn time(&self) -> u64 {
        self.time
    }
    /// The decrypted body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// What an application folds of this record.
    pub fn view(&self) -> RecordView<'_> {
        RecordView {
            thread: self.record.thread(),
            log: self.record.log(),
            author: self.record.author(),
            counter: self.record.counter(),
            clock: self.record.clock(),
            time: self.time,
            body: &self.body,
        }
    }
}

/// A record's place and its decrypted body: what an application needs to fold it. It holds
/// neither the CID nor the signature, so the engine can fold a local record while its
/// signature is still being made (see [`crate::engine::signing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The thread.
    pub thread: &'a ThreadId,
    /// The log.
    pub log: &'a LogId,
    /// The writer's identity.
    pub author: &'a PublicKey,
    /// Position in the log.
    pub counter: LogCounter,
    /// Lamport clock.
    pub clock: LamportClock,
    /// The writer's clock at creation, Unix nanoseconds (not trusted for ordering).
    pub time: u64,
    /// The decrypted body.
    pub body: &'a [u8],
}
