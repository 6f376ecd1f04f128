//! Verifying a record with the service key alone, and opening it with the read key.

use super::build::{check_position, signing_input_of};
use super::error::{BlockKind, RecordError};
use super::memo;
use super::wire::{self, EventNode, HeaderNode, SignedRecordNode};
use super::{
    FORMAT_VERSION, MAX_BODY_BLOCK_LEN, MAX_BODY_LEN, MAX_META_BLOCK_LEN, OpenedRecord,
    RecordBundle, VerifiedRecord, block_cid, seal,
};
use crate::counter::{LamportClock, LogCounter};
use crate::id::ThreadId;
use crate::identity::PublicKey;
use crate::key::{ReadKey, ServiceKey};
use crate::log_id::LogId;
use cid::Cid;
use ed25519_dalek::Signature;

/// A record whose blocks were checked, waiting only for its signature check.
struct Checked {
    record: VerifiedRecord,
    message: Vec<u8>,
}

/// Verifies a record offered for `log` of `thread`, holding only the service key: the envelope
/// opens, every block is canonical, within limits and matches its link, the position rules hold
/// and the log key's signature verifies. Nothing is decrypted beyond the envelope.
pub fn verify(
    bundle: RecordBundle,
    thread: &ThreadId,
    log: &LogId,
    service: &ServiceKey,
) -> Result<VerifiedRecord, RecordError> {
    let cid = block_cid(&bundle.record);
    verify_cid(bundle, cid, thread, log, service, true)
}

/// [`verify`] without the signature check: a deliberate defect for the simulator's checker
/// tests (feature `buggify` only).
#[cfg(feature = "buggify")]
pub fn verify_without_signature(
    bundle: RecordBundle,
    thread: &ThreadId,
    log: &LogId,
    service: &ServiceKey,
) -> Result<VerifiedRecord, RecordError> {
    let cid = block_cid(&bundle.record);
    verify_cid(bundle, cid, thread, log, service, false)
}

/// [`verify`] for a caller that already hashed the envelope (`cid` must be
/// `block_cid(&bundle.record)`); `signature: false` only for the `buggify` defect.
pub(crate) fn verify_cid(
    bundle: RecordBundle,
    cid: Cid,
    thread: &ThreadId,
    log: &LogId,
    service: &ServiceKey,
    signature: bool,
) -> Result<VerifiedRecord, RecordError> {
    // Only full checks are remembered and recalled (see `memo`).
    let memo = signature && memo::active();
    let bundle = if memo {
        match memo::recall(bundle, &cid, thread, log, service) {
            Ok(record) => return Ok(record),
            Err(bundle) => bundle,
        }
    } else {
        bundle
    };
    let checked = check_blocks(bundle, cid, thread, log, service)?;
    if signature {
        let key = log.public_key();
        let sig = Signature::from_bytes(checked.record.signature());
        key.as_dalek()
            .verify_strict(&checked.message, &sig)
            .map_err(|_| bad_signature(log))?;
    }
    if memo {
        memo::remember(&checked.record, service);
    }
    Ok(checked.record)
}

/// [`verify_cid`] that hashes the envelope itself and hands its CID back with an error (so a
/// refused copy of a record already held can still be recognised).
pub(crate) fn verify_keeping_cid(
    bundle: RecordBundle,
    thread: &ThreadId,
    log: &LogId,
    service: &ServiceKey,
    signature: bool,
) -> Result<VerifiedRecord, Box<(Cid, RecordError)>> {
    let cid = block_cid(&bundle.record);
    verify_cid(bundle, cid, thread, log, service, signature).map_err(|e| Box::new((cid, e)))
}

/// Decrypts the header with the read key and the body with the key the header holds.
pub fn open(record: VerifiedRecord, read: &ReadKey) -> Result<OpenedRecord, RecordError> {
    let (time, body) = open_body(record.bundle(), read)?;
    Ok(OpenedRecord { record, time, body })
}

/// [`open`] without taking the record: its time and body, or why it does not open.
pub(crate) fn open_parts(
    record: &VerifiedRecord,
    read: &ReadKey,
) -> Result<(u64, Vec<u8>), RecordError> {
    open_body(record.bundle(), read)
}

/// The writer's time and the body of a bundle, decrypted with the read key, without checking
/// the envelope or the signature again: for bundles that were verified before they were stored
/// (the document fold reads bodies back from the engine's store to redo records).
pub fn open_body(bundle: &RecordBundle, read: &ReadKey) -> Result<(u64, Vec<u8>), RecordError> {
    if !memo::active() {
        return open_sealed(bundle, read);
    }
    if let Some(opened) = memo::recall_opened(bundle, read) {
        return Ok(opened);
    }
    let (time, body) = open_sealed(bundle, read)?;
    memo::remember_opened(bundle, read, time, &body);
    Ok((time, body))
}

/// [`open_body`], always doing the work.
fn open_sealed(bundle: &RecordBundle, read: &ReadKey) -> Result<(u64, Vec<u8>), RecordError> {
    let header_node = seal::parse(BlockKind::Header, &bundle.header, MAX_META_BLOCK_LEN)?;
    let header_plain = seal::open(BlockKind::Header, read.as_bytes(), &header_node)?;
    let header: HeaderNode = wire::decode(BlockKind::Header, &header_plain, MAX_META_BLOCK_LEN)?;
    if header.version != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion {
            block: BlockKind::Header,
            version: header.version,
        });
    }
    let body_key: [u8; 32] =
        header
            .body_key
            .as_slice()
            .try_into()
            .map_err(|_| RecordError::Malformed {
                block: BlockKind::Header,
                what: "body key is not 32 bytes",
            })?;
    let body_node = seal::parse(BlockKind::Body, &bundle.body, MAX_BODY_BLOCK_LEN)?;
    let body = seal::open(BlockKind::Body, &body_key, &body_node)?;
    if body.len() > MAX_BODY_LEN {
        return Err(RecordError::TooLarge {
            block: BlockKind::Body,
            len: body.len(),
            max: MAX_BODY_LEN,
        });
    }
    Ok((header.time, body))
}

/// The record with the time and body [`open_parts`] gave for it.
pub(crate) fn opened(record: VerifiedRecord, time: u64, body: Vec<u8>) -> OpenedRecord {
    OpenedRecord { record, time, body }
}

fn bad_signature(log: &LogId) -> RecordError {
    RecordError::BadSignature {
        log: log.to_string(),
    }
}

fn check_blocks(
    bundle: RecordBundle,
    cid: Cid,
    thread: &ThreadId,
    log: &LogId,
    service: &ServiceKey,
) -> Result<Checked, RecordError> {
    // Envelope: open with the service key and decode the signed map.
    let envelope = seal::parse(BlockKind::Record, &bundle.record, MAX_META_BLOCK_LEN)?;
    let plain = seal::open(BlockKind::Record, service.as_bytes(), &envelope)?;
    let node: SignedRecordNode = wire::decode(BlockKind::Record, &plain, MAX_META_BLOCK_LEN)?;
    if node.version != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion {
            block: BlockKind::Record,
            version: node.version,
        });
    }
    if node.thread != thread.as_bytes() {
        return Err(RecordError::WrongThread);
    }
    let malformed = |what| RecordError::Malformed {
        block: BlockKind::Record,
        what,
    };
    let author = author_key(&node.author, log)
        .ok_or_else(|| malformed("author is not an Ed25519 public key"))?;
    let counter = LogCounter::new(node.counter).ok_or(malformed("log counter is 0"))?;
    let clock = LamportClock(node.clock);
    check_position(counter, clock, node.prev.is_some())?;
    if node.prev.is_some_and(|p| !is_block_cid(&p)) {
        return Err(malformed("prev is not a CIDv1 dag-cbor sha2-256 link"));
    }
    let signature: [u8; 64] = node
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| malformed("signature is not 64 bytes"))?;

    // Event: must be the block the envelope links, and link the header and body we hold.
    if block_cid(&bundle.event) != node.event {
        return Err(RecordError::LinkMismatch {
            block: BlockKind::Event,
        });
    }
    let event: EventNode = wire::decode(BlockKind::Event, &bundle.event, MAX_META_BLOCK_LEN)?;
    if event.version != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion {
            block: BlockKind::Event,
            version: event.version,
        });
    }
    seal::parse(BlockKind::Header, &bundle.header, MAX_META_BLOCK_LEN)?;
    if block_cid(&bundle.header) != event.header {
        return Err(RecordError::LinkMismatch {
            block: BlockKind::Header,
        });
    }
    seal::parse(BlockKind::Body, &bundle.body, MAX_BODY_BLOCK_LEN)?;
    if block_cid(&bundle.body) != event.body {
        return Err(RecordError::LinkMismatch {
            block: BlockKind::Body,
        });
    }

    let message = signing_input_of(&node);
    Ok(Checked {
        record: VerifiedRecord {
            cid,
            thread: *thread,
            log: *log,
            author,
            counter,
            clock,
            prev: node.prev,
            signature,
            bundle,
        },
        message,
    })
}

/// The author's public key from its protobuf bytes: the log's own key when they are the same
/// bytes, else decoded (`PublicKey::from_raw` remembers recently decoded keys). `None` when it
/// is not a valid key.
fn author_key(bytes: &[u8], log: &LogId) -> Option<PublicKey> {
    if bytes == &log.as_bytes()[2..] {
        return Some(log.public_key());
    }
    PublicKey::from_protobuf(bytes).ok()
}

/// Whether a CID has the form of every block CID: v1, dag-cbor, sha2-256 of 32 bytes.
fn is_block_cid(cid: &cid::Cid) -> bool {
    cid.version() == cid::Version::V1
        && cid.codec() == super::wire::DAG_CBOR
        && cid.hash().code() == super::wire::SHA2_256
        && cid.hash().size() == 32
}
