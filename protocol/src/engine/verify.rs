//! Checking peer messages before the engine, on any thread: the pure, `Send` half of ingest.
//!
//! Decoding a message, checking its membership proof and verifying the records it carries are
//! functions of the bytes and the thread's keys alone. A driver may run them on other cores
//! with a [`RecordVerifier`] (keys cloned from the [`Host`]) and hand the engine an
//! [`Inbound::Checked`] message; the engine then only re-checks that the message is bound to
//! what it holds (thread, service key, receiver, log) before storing its records.
//!
//! The types carry the guarantee: a [`CheckedMessage`] and its [`CheckedBatch`] can only be
//! made here, from records [`record::verify`] accepted, so an unverified record cannot reach
//! the store through this path. `spec/engine.md` §3 states the contract.

use super::ingest::Prepared;
use super::message::{self, Frame, Payload, ProofKey};
use super::{Application, Host, PeerId};
use crate::id::ThreadId;
use crate::key::ThreadKey;
use crate::log_id::LogId;
use crate::record::{self, RecordBundle, RecordError, VerifiedRecord};
use crate::store::Store;
use cid::Cid;

/// The keys and limits needed to check messages of one thread without the engine. Cheap to
/// clone, `Send` and `Sync`; made by [`Host::verifier`].
#[derive(Clone)]
pub struct RecordVerifier {
    thread: ThreadId,
    key: ThreadKey,
    /// The service key made ready for membership proofs.
    proof: ProofKey,
    me: PeerId,
    max_message_len: usize,
    #[cfg(feature = "buggify")]
    skip_signature: bool,
}

impl std::fmt::Debug for RecordVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("RecordVerifier")
            .field("thread", &self.thread)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// One record of a checked batch: verified, or refused with the reason (and the CID of its
/// envelope when the bundle decoded, so the engine can still skip a copy of a record it holds).
#[derive(Clone, Debug)]
pub(super) enum Checked {
    /// [`record::verify`] accepted it (and, when the verifier holds the read key, it was
    /// opened too).
    Verified(Box<Prepared>),
    /// Decoding or verification refused it.
    Refused {
        /// CID of the envelope block, when the bundle decoded.
        cid: Option<Cid>,
        /// Why.
        error: RecordError,
    },
}

/// The records of one page or push, checked against one log of one thread with one service
/// key. Only [`RecordVerifier`] makes one.
#[derive(Clone, Debug)]
pub struct CheckedBatch {
    log: LogId,
    records: Vec<Checked>,
}

impl CheckedBatch {
    /// The log the records were verified for.
    pub fn log(&self) -> &LogId {
        &self.log
    }
    /// How many records the batch holds (verified or refused).
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    pub(super) fn into_records(self) -> Vec<Checked> {
        self.records
    }
}

/// One record of a page or push after its check, tagged with its place in the message. Only a
/// [`RecordVerifier`] makes one; a driver that spreads a page's checks over several threads
/// ([`Inbound::check_spread`]) hands them back in order, and the verifier makes sure it did.
#[derive(Clone, Debug)]
pub struct CheckedRecord {
    index: usize,
    checked: Checked,
}

/// Checks the records at the given places of one page or push (what [`Inbound::check_spread`]
/// hands its `spread` function); `Sync`, so several threads may call it at once.
pub type CheckRange<'a> = dyn Fn(std::ops::Range<usize>) -> Vec<CheckedRecord> + Sync + 'a;

/// Runs a [`CheckRange`] over the places `0..n` of one page or push and returns every record in
/// order, one by one on this thread or split across cores: the driver's choice.
pub trait Spread {
    /// Checks records `0..n` with `check`.
    fn spread(&self, n: usize, check: &CheckRange<'_>) -> Vec<CheckedRecord>;
}

/// Checks every record on the calling thread, in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct InOrder;

impl Spread for InOrder {
    fn spread(&self, n: usize, check: &CheckRange<'_>) -> Vec<CheckedRecord> {
        check(0..n)
    }
}

/// A peer message whose frame was decoded, whose membership proof verified and whose records
/// (for a page or a push) were verified, bound to the sender, the receiver, the thread and the
/// keys it was checked with. Only [`RecordVerifier`] makes one.
#[derive(Clone, Debug)]
pub struct CheckedMessage {
    pub(super) from: PeerId,
    pub(super) me: PeerId,
    pub(super) thread: ThreadId,
    pub(super) key: ThreadKey,
    /// The payload; for a page or a push its `records` are empty and held in `batch`.
    pub(super) payload: Payload,
    pub(super) batch: Option<CheckedBatch>,
}

impl CheckedMessage {
    /// The sender.
    pub fn from(&self) -> &PeerId {
        &self.from
    }
    /// The thread the message is about.
    pub fn thread(&self) -> &ThreadId {
        &self.thread
    }
    /// The checked records, for a page or a push.
    pub fn batch(&self) -> Option<&CheckedBatch> {
        self.batch.as_ref()
    }
}

/// A peer message on its way to the engine ([`Host::handle_inbound`]).
// Moved once per message; boxing the sender of every raw message would cost more than it saves.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Inbound {
    /// Not checked: the engine decodes, proves and verifies it itself (as
    /// [`Host::handle_message`]).
    Raw {
        /// The sender.
        from: PeerId,
        /// The message bytes.
        bytes: Vec<u8>,
    },
    /// Checked by a [`RecordVerifier`].
    Checked(Box<CheckedMessage>),
}

impl Inbound {
    /// Checks `bytes` from `from` with the verifier `find` returns for the message's thread.
    /// Anything it cannot check (an oversized or undecodable message, an invitation, a thread
    /// without a verifier, a bad proof or log id) stays [`Inbound::Raw`], for the engine to
    /// refuse and report exactly as it always did.
    pub fn check<'v>(
        from: PeerId,
        bytes: Vec<u8>,
        max_message_len: usize,
        find: impl FnOnce(&ThreadId) -> Option<&'v RecordVerifier>,
    ) -> Inbound {
        Self::check_spread(from, bytes, max_message_len, find, &InOrder)
    }

    /// Like [`Inbound::check`], with the record checks of a page or push run by `spread` (for
    /// instance split across cores, so one large page does not wait on one core). When
    /// `spread` does not return every record exactly once and in order, the message stays
    /// [`Inbound::Raw`] and the engine checks it itself.
    pub fn check_spread<'v>(
        from: PeerId,
        bytes: Vec<u8>,
        max_message_len: usize,
        find: impl FnOnce(&ThreadId) -> Option<&'v RecordVerifier>,
        spread: &dyn Spread,
    ) -> Inbound {
        let raw = |bytes| Inbound::Raw { from, bytes };
        let Ok((frame, payload)) = message::decode(&bytes, max_message_len) else {
            return raw(bytes);
        };
        let Some(thread) = message::thread_of(payload.thread_bytes()) else {
            return raw(bytes);
        };
        match find(&thread) {
            Some(v) => v.check_decoded(from, bytes, frame, payload, spread),
            None => raw(bytes),
        }
    }
}

impl RecordVerifier {
    /// The thread this verifier checks messages of.
    pub fn thread(&self) -> &ThreadId {
        &self.thread
    }

    /// Decodes and verifies one record bundle offered for `log` (what ingest does per record).
    pub fn check(&self, log: &LogId, bytes: &[u8]) -> Result<VerifiedRecord, RecordError> {
        self.check_record(log, bytes).map_err(|refused| refused.1)
    }

    /// Checks one message from `from` about this verifier's thread; see [`Inbound::check`].
    /// A message about another thread stays raw.
    pub fn check_message(&self, from: PeerId, bytes: Vec<u8>) -> Inbound {
        Inbound::check(from, bytes, self.max_message_len, |t| {
            (t == &self.thread).then_some(self)
        })
    }

    fn check_decoded(
        &self,
        from: PeerId,
        bytes: Vec<u8>,
        frame: Frame,
        payload: Payload,
        spread: &dyn Spread,
    ) -> Inbound {
        let raw = |bytes| Inbound::Raw { from, bytes };
        if bytes.len() > self.max_message_len
            || payload.thread_bytes() != self.thread.as_bytes()
            || matches!(payload, Payload::Invite { .. })
            || !self
                .proof
                .is_valid(&from, &self.me, &frame.payload, &frame.proof)
        {
            return raw(bytes);
        }
        let (payload, batch) = match payload {
            Payload::Page {
                thread,
                log,
                from: at,
                records,
                height,
            } => {
                let Ok(id) = LogId::from_bytes(&log) else {
                    return raw(bytes);
                };
                let Some(batch) = self.check_batch(id, &records, spread) else {
                    return raw(bytes);
                };
                let payload = Payload::Page {
                    thread,
                    log,
                    from: at,
                    records: Vec::new(),
                    height,
                };
                (payload, Some(batch))
            }
            Payload::Push {
                thread,
                log,
                records,
            } => {
                let Ok(id) = LogId::from_bytes(&log) else {
                    return raw(bytes);
                };
                let Some(batch) = self.check_batch(id, &records, spread) else {
                    return raw(bytes);
                };
                let payload = Payload::Push {
                    thread,
                    log,
                    records: Vec::new(),
                };
                (payload, Some(batch))
            }
            other => (other, None),
        };
        Inbound::Checked(Box::new(CheckedMessage {
            from,
            me: self.me,
            thread: self.thread,
            key: self.key.clone(),
            payload,
            batch,
        }))
    }

    /// Verifies every record of a page or push for `log`, the checks run by `spread`; `None`
    /// when `spread` did not hand back each record once, in order.
    fn check_batch(
        &self,
        log: LogId,
        records: &[serde_bytes::ByteBuf],
        spread: &dyn Spread,
    ) -> Option<CheckedBatch> {
        let check = |range: std::ops::Range<usize>| -> Vec<CheckedRecord> {
            let end = range.end.min(records.len());
            let start = range.start.min(end);
            (start..end)
                .map(|index| CheckedRecord {
                    index,
                    checked: self.check_one(&log, &records[index]),
                })
                .collect()
        };
        let checked = spread.spread(records.len(), &check);
        let in_order =
            checked.len() == records.len() && checked.iter().enumerate().all(|(i, r)| r.index == i);
        in_order.then(|| CheckedBatch {
            log,
            records: checked.into_iter().map(|r| r.checked).collect(),
        })
    }

    /// Verifies (and, with the read key, opens) one record offered for `log`.
    fn check_one(&self, log: &LogId, bytes: &[u8]) -> Checked {
        match self.check_record(log, bytes) {
            Ok(rec) => Checked::Verified(Box::new(self.open(rec))),
            Err(refused) => {
                let (cid, error) = *refused;
                Checked::Refused { cid, error }
            }
        }
    }

    /// Opens a verified record with the read key, when the verifier holds it.
    fn open(&self, rec: VerifiedRecord) -> Prepared {
        let Some(read) = self.key.read() else {
            return Prepared::Verified(rec);
        };
        match record::open_parts(&rec, read) {
            Ok((time, body)) => Prepared::Opened(record::opened(rec, time, body)),
            Err(e) => Prepared::Unopenable(rec, e),
        }
    }

    fn check_record(
        &self,
        log: &LogId,
        bytes: &[u8],
    ) -> Result<VerifiedRecord, Box<(Option<Cid>, RecordError)>> {
        let bundle = RecordBundle::decode(bytes).map_err(|e| Box::new((None, e)))?;
        #[cfg(feature = "buggify")]
        let signature = !self.skip_signature;
        #[cfg(not(feature = "buggify"))]
        let signature = true;
        record::verify_keeping_cid(bundle, &self.thread, log, self.key.service(), signature)
            .map_err(|refused| Box::new((Some(refused.0), refused.1)))
    }
}

impl<S: Store, A: Application> Host<S, A> {
    /// A verifier for messages of `thread` (keys cloned), to run [`Inbound::check`] off the
    /// engine; `None` when the thread is not held.
    pub fn verifier(&self, thread: &ThreadId) -> Option<RecordVerifier> {
        let t = self.threads.get(thread)?;
        Some(RecordVerifier {
            thread: *thread,
            key: t.key.clone(),
            proof: t.proof.clone(),
            me: self.peer_id,
            max_message_len: self.config.max_message_len,
            #[cfg(feature = "buggify")]
            skip_signature: self.config.bugs.skip_signature_check,
        })
    }
}
