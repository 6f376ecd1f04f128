//! The client's error type: gRPC statuses keep their code and message.

/// The gRPC status code of a failed call (re-exported from tonic).
pub use tonic::Code;

/// Metadata key of a lagged listener's resume position (see [`Error::resume_from`]).
pub const RESUME_FROM: &str = "x-threads-resume-from";

/// Metadata key that makes a new listener resume at a feed position.
pub const LISTEN_FROM: &str = "x-threads-listen-from";

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is not a usable endpoint.
    #[error("invalid API address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// The API could not be reached.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The endpoint tried.
        addr: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The server answered the call with an error status.
    #[error("{message} ({code:?})")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
        /// For a lagged listener (`Aborted`), the feed position to resume from.
        resume_from: Option<u64>,
    },
    /// One operation of a transaction (or a call answering with `transactionError`) failed;
    /// the transaction itself goes on.
    #[error("{0}")]
    Transaction(String),
    /// A value could not be turned into JSON or back.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The input or the server's answer could not be decoded (bad id, key, address, …).
    #[error("{0}")]
    Invalid(String),
    /// The server's answer did not follow the protocol (e.g. a reply of the wrong kind).
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl Error {
    /// The gRPC code of a [`Error::Status`], `None` for the other kinds.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's message for a [`Error::Status`] or [`Error::Transaction`], the whole text
    /// otherwise.
    pub fn message(&self) -> String {
        match self {
            Error::Status { message, .. } => message.clone(),
            Error::Transaction(m) => m.clone(),
            other => other.to_string(),
        }
    }

    /// For a listener that fell behind, the feed position to resume from (pass it to
    /// [`crate::Client::listen_from`]).
    pub fn resume_from(&self) -> Option<u64> {
        match self {
            Error::Status { resume_from, .. } => *resume_from,
            _ => None,
        }
    }

    pub(crate) fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("invalid {what}: {e}"))
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let resume_from = s
            .metadata()
            .get(RESUME_FROM)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
            resume_from,
        }
    }
}

/// Result of client calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Err(Transaction)` when a reply's `transactionError` is set.
pub(crate) fn txn_error(e: String) -> Result<()> {
    if e.is_empty() {
        Ok(())
    } else {
        Err(Error::Transaction(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_code_message_and_resume_position() {
        let mut s = tonic::Status::aborted("listener lagged");
        s.metadata_mut().insert(RESUME_FROM, "42".parse().unwrap());
        let e = Error::from(s);
        assert_eq!(e.code(), Some(Code::Aborted));
        assert_eq!(e.message(), "listener lagged");
        assert_eq!(e.resume_from(), Some(42));
        assert_eq!(e.to_string(), "listener lagged (Aborted)");
        let e = Error::from(tonic::Status::not_found("thread not found"));
        assert_eq!(e.code(), Some(Code::NotFound));
        assert_eq!(e.resume_from(), None);
        assert!(txn_error(String::new()).is_ok());
        let e = txn_error("boom".into()).unwrap_err();
        assert_eq!((e.code(), e.message()), (None, "boom".to_string()));
    }
}
