//! Errors returned by engine commands.

use crate::record::RecordError;
use crate::store::StoreError;

/// Why a command failed. Nothing was changed when a command returns an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The thread is not held by this host.
    #[error("thread not found")]
    ThreadNotFound,
    /// A thread with this id already exists here.
    #[error("thread already exists")]
    ThreadExists,
    /// The log is not part of the thread.
    #[error("log not found")]
    LogNotFound,
    /// The identity already has a log in this thread.
    #[error("log already exists")]
    LogExists,
    /// Writing or reading content needs the read key, which this host does not hold.
    #[error("this host holds only the service key of the thread: {0}")]
    NoReadKey(&'static str),
    /// Appending needs the log's private key.
    #[error("this host does not hold the private key of log {0}")]
    NotLogOwner(String),
    /// A record offered with `add_record` does not follow the log head.
    #[error("record counter {got} does not follow the log head (expected {expected})")]
    NotNext {
        /// Counter the next record must have.
        expected: u64,
        /// Counter offered.
        got: u64,
    },
    /// A record offered with `add_record` has a `prev` that is not the log head.
    #[error("record prev does not point at the current head of the log")]
    PrevNotHead,
    /// A record failed verification.
    #[error("invalid record: {0}")]
    Record(#[from] RecordError),
    /// The application hook refused a local write; nothing was stored or sent.
    #[error("write rejected: {0}")]
    Rejected(String),
    /// The application hook failed (not a verdict on the record); nothing was stored.
    #[error("application error: {0}")]
    Application(ApplyError),
    /// The store failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A limit of the configuration was reached.
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// The address does not name a peer.
    #[error("address has no /p2p/<peer id> component")]
    NoPeerInAddress,
    /// The signer given to the host (`Host::set_signer`) failed to build a local write's
    /// records; nothing was stored. A fault of the driver, not of the write: retrying may work.
    #[error("the records of the write could not be built: {0}")]
    Signer(&'static str),
}

/// Why the application hook could not decide on a record. This is a failure of the machine,
/// never a verdict on the record (that is [`super::Verdict::Reject`]): the engine drops the
/// whole transaction and the record is retried later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The store failed inside the hook.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A component of the application failed (say, its script engine could not start).
    #[error("{component} failed: {reason}")]
    Component {
        /// Which component.
        component: &'static str,
        /// What it reported.
        reason: String,
    },
}

impl From<ApplyError> for EngineError {
    /// A store failure inside the hook is a store failure of the command.
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Store(e) => EngineError::Store(e),
            other => EngineError::Application(other),
        }
    }
}
