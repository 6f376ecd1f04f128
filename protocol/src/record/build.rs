//! Creating a record from a body: seal the body with a fresh key, seal that key in the header
//! with the read key, link both from the event, sign the envelope with the log key, seal it with
//! the service key.

use super::error::{BlockKind, RecordError};
use super::wire::{EventNode, HeaderNode, Node, SignedRecordNode, UnsignedRecordNode};
use super::{
    FORMAT_VERSION, MAX_BODY_LEN, OpenedRecord, RecordBundle, SIGNING_DOMAIN, VerifiedRecord,
    block_cid, seal,
};
use crate::counter::{LamportClock, LogCounter};
use crate::id::ThreadId;
use crate::identity::{PrivateKey, PublicKey};
use crate::key::ThreadKey;
use crate::log_id::LogId;
use cid::Cid;
use rand_core::CryptoRng;

/// Everything a new record says, before it is sealed and signed.
#[derive(Clone, Debug)]
pub struct RecordDraft<'a> {
    /// Thread the record belongs to.
    pub thread: &'a ThreadId,
    /// Identity of the writer (may differ from the log key: a host signs for its clients).
    pub author: &'a PublicKey,
    /// CID of the current head of the log; `None` exactly when `counter` is 1.
    pub prev: Option<Cid>,
    /// Position in the log: the head's counter + 1.
    pub counter: LogCounter,
    /// Lamport clock: 1 + the highest clock applied in the thread by this writer.
    pub clock: LamportClock,
    /// Writer's wall clock, Unix nanoseconds; informational only.
    pub time: u64,
    /// The plaintext body, at most [`MAX_BODY_LEN`] bytes.
    pub body: &'a [u8],
}

/// Creates a record. Randomness is drawn from `rng` in a fixed order (body key, body nonce,
/// header nonce, envelope nonce), so a seeded RNG gives the same bytes every time.
pub fn create(
    draft: &RecordDraft<'_>,
    log_key: &PrivateKey,
    key: &ThreadKey,
    rng: &mut impl CryptoRng,
) -> Result<OpenedRecord, RecordError> {
    let read_key = key.read().ok_or(RecordError::NoReadKey)?;
    if draft.body.len() > MAX_BODY_LEN {
        return Err(RecordError::TooLarge {
            block: BlockKind::Body,
            len: draft.body.len(),
            max: MAX_BODY_LEN,
        });
    }
    check_position(draft.counter, draft.clock, draft.prev.is_some())?;

    let mut body_key = [0u8; 32];
    rng.fill_bytes(&mut body_key);
    let body = seal::seal(BlockKind::Body, &body_key, draft.body, rng);
    let header_plain = HeaderNode {
        body_key: body_key.to_vec(),
        time: draft.time,
        version: FORMAT_VERSION,
    }
    .to_canonical();
    let header = seal::seal(BlockKind::Header, read_key.as_bytes(), &header_plain, rng);
    let event = EventNode {
        body: block_cid(&body),
        header: block_cid(&header),
        version: FORMAT_VERSION,
    }
    .to_canonical();

    let unsigned = UnsignedRecordNode {
        author: draft.author.to_protobuf().to_vec(),
        counter: draft.counter.get(),
        event: block_cid(&event),
        clock: draft.clock.0,
        prev: draft.prev,
        thread: draft.thread.as_bytes().to_vec(),
        version: FORMAT_VERSION,
    };
    let signature = log_key.sign(&signing_input(&unsigned));
    let signed = SignedRecordNode {
        author: unsigned.author,
        counter: unsigned.counter,
        event: unsigned.event,
        clock: unsigned.clock,
        prev: unsigned.prev,
        signature: signature.to_vec(),
        thread: unsigned.thread,
        version: FORMAT_VERSION,
    };
    let record = seal::seal(
        BlockKind::Record,
        key.service().as_bytes(),
        &signed.to_canonical(),
        rng,
    );

    let verified = VerifiedRecord {
        cid: block_cid(&record),
        thread: *draft.thread,
        log: LogId::from_public_key(&log_key.public()),
        author: *draft.author,
        counter: draft.counter,
        clock: draft.clock,
        prev: draft.prev,
        signature,
        bundle: RecordBundle {
            record,
            event,
            header,
            body,
        },
    };
    Ok(OpenedRecord {
        record: verified,
        time: draft.time,
        body: draft.body.to_vec(),
    })
}

/// The exact bytes the log key signs: the domain prefix, then the canonical unsigned map.
pub fn signing_input(unsigned: &UnsignedRecordNode) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_DOMAIN.len() + unsigned.size_hint());
    input.extend_from_slice(SIGNING_DOMAIN);
    unsigned.write(&mut input);
    input
}

/// [`signing_input`] of a signed node's unsigned map, without copying the node.
pub(super) fn signing_input_of(signed: &SignedRecordNode) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_DOMAIN.len() + 256);
    input.extend_from_slice(SIGNING_DOMAIN);
    signed.write_unsigned(&mut input);
    input
}

/// The structural rules of a log position: counters start at 1, only the first record has no
/// `prev`, and a Lamport clock is never below the counter (each record ticks past its parent).
pub(super) fn check_position(
    counter: LogCounter,
    clock: LamportClock,
    has_prev: bool,
) -> Result<(), RecordError> {
    let first = counter == LogCounter::FIRST;
    if first == has_prev {
        return Err(RecordError::Malformed {
            block: BlockKind::Record,
            what: "prev must be null exactly when the counter is 1",
        });
    }
    if clock.0 < counter.get() {
        return Err(RecordError::Malformed {
            block: BlockKind::Record,
            what: "Lamport clock is lower than the log counter",
        });
    }
    Ok(())
}
