//! What the engine asks its driver to do, and what it tells the application.

use super::message::MessageError;
use super::{EngineError, PeerId};
use crate::counter::LogCounter;
use crate::id::ThreadId;
use crate::log_id::LogId;
use crate::record::{RecordError, VerifiedRecord};
use crate::store::StoreError;

/// One output of the engine, drained with [`super::Host::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes to a peer (one message of the peer protocol). The driver connects to
    /// the peer if it is not connected; it may drop the message if that fails (sync repairs it).
    Transmit {
        /// Destination host.
        to: PeerId,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// Something the application may want to know.
    Event(Event),
}

/// Application-level news from the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A record was stored and its log head advanced (written here or received).
    RecordAdded {
        /// Its thread.
        thread: ThreadId,
        /// Whether this host wrote it.
        local: bool,
        /// The record.
        record: Box<VerifiedRecord>,
    },
    /// The application hook refused a validly signed record; it is stored but has no effect.
    RecordRejected {
        /// Its thread.
        thread: ThreadId,
        /// Its log.
        log: LogId,
        /// Its counter.
        counter: LogCounter,
        /// The hook's reason.
        reason: String,
    },
    /// Storing or applying a record failed; nothing of it was kept and it will be retried.
    ApplyFailed {
        /// Its thread.
        thread: ThreadId,
        /// Its log.
        log: LogId,
        /// Its counter.
        counter: LogCounter,
        /// What went wrong.
        error: Box<EngineError>,
    },
    /// The store failed during an input whose caller cannot be told (a peer message, a timer):
    /// nothing of the failed transaction was kept. Records are fetched again by sync; other
    /// changes are retried with the next input.
    StoreFailed {
        /// The thread concerned, when there is one.
        thread: Option<ThreadId>,
        /// What the engine was doing.
        during: &'static str,
        /// The store's error.
        error: StoreError,
    },
    /// A peer sent something invalid or hostile; it was refused and changed nothing.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: Box<Misbehaviour>,
    },
    /// The key of a log signed two different records for one position (a fork, also when a
    /// record's `prev` is not the head this host holds). Proof against the log's owner, not
    /// against the peer that relayed it (an honest peer may hold the other branch). This host
    /// keeps the branch it stored first; hosts that saw different branches stay split on that
    /// log (forks are detected and reported, not repaired).
    LogForked(Box<Fork>),
    /// A thread was created here because a peer invited this host to replicate it.
    ThreadAdopted {
        /// The thread.
        thread: ThreadId,
        /// The inviting peer.
        by: PeerId,
    },
}

/// A fork of a log: two different records signed by its key for one position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    /// Its thread.
    pub thread: ThreadId,
    /// The forked log.
    pub log: LogId,
    /// The position of the conflict.
    pub counter: LogCounter,
    /// The peer that offered the other branch.
    pub from: PeerId,
}

/// The ways a peer can misbehave; each names what was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    /// The bytes were not a valid message.
    #[error("invalid message: {0}")]
    InvalidMessage(MessageError),
    /// A message decoded but one of its fields is invalid (named here).
    #[error("invalid message: {0}")]
    InvalidField(&'static str),
    /// A message about a thread this host does not hold.
    #[error("message about unknown thread {0}")]
    UnknownThread(ThreadId),
    /// The membership proof did not verify with the thread's service key.
    #[error("wrong membership proof for thread {0}")]
    BadProof(ThreadId),
    /// A record failed verification.
    #[error("invalid record for log {log} of thread {thread}: {error}")]
    BadRecord {
        /// The thread.
        thread: ThreadId,
        /// The log.
        log: LogId,
        /// Why.
        error: RecordError,
    },
    /// A log's Lamport clock did not increase.
    #[error("log {log} of thread {thread}: clock does not increase at counter {counter}")]
    ClockRegression {
        /// The thread.
        thread: ThreadId,
        /// The log.
        log: LogId,
        /// Position of the record.
        counter: LogCounter,
    },
    /// More logs than a thread may have.
    #[error("thread {0} already has the maximum number of logs")]
    TooManyLogs(ThreadId),
    /// A page that does not answer an outstanding pull, or starts elsewhere.
    #[error("unrequested or misplaced page for thread {0}")]
    UnexpectedPage(ThreadId),
    /// A message checked before the engine ([`super::verify::CheckedMessage`]) is bound to
    /// something other than what this host holds (named here: the receiver, the thread's keys
    /// or the log); it was refused and nothing of it stored. A driver whose verifier went
    /// stale (the thread was re-added with other keys) sees this once per stale message.
    #[error("pre-verified message for thread {0} does not match the {1} this host holds")]
    MismatchedCheck(ThreadId, &'static str),
    /// An invitation for a thread held with another key, or refused by configuration.
    #[error("refused invitation for thread {0}: {1}")]
    RefusedInvite(ThreadId, &'static str),
}

/// Which new records a subscriber wants: those of every thread, or of some threads only. The
/// driver keeps one per subscriber and offers it every [`Event::RecordAdded`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    threads: Option<std::collections::BTreeSet<ThreadId>>,
}

impl Subscription {
    /// Records of every thread.
    pub fn all() -> Self {
        Subscription { threads: None }
    }

    /// Records of the listed threads only; an empty list means every thread (as in go-threads).
    pub fn threads(ids: impl IntoIterator<Item = ThreadId>) -> Self {
        let set: std::collections::BTreeSet<ThreadId> = ids.into_iter().collect();
        Subscription {
            threads: (!set.is_empty()).then_some(set),
        }
    }

    /// The record of this event, if it is a new record the subscriber wants.
    pub fn select<'e>(&self, event: &'e Event) -> Option<&'e VerifiedRecord> {
        match event {
            Event::RecordAdded { thread, record, .. }
                if self.threads.as_ref().is_none_or(|t| t.contains(thread)) =>
            {
                Some(record)
            }
            _ => None,
        }
    }
}
