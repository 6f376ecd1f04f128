//! Why a record could not be created, verified or opened.

use std::fmt;

/// Which of the four blocks of a record an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// The sealed envelope holding the signed record.
    Record,
    /// The clear event block linking header and body.
    Event,
    /// The header sealed with the read key.
    Header,
    /// The body sealed with the per-event key.
    Body,
    /// The bundle of all four blocks.
    Bundle,
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockKind::Record => "record",
            BlockKind::Event => "event",
            BlockKind::Header => "header",
            BlockKind::Body => "body",
            BlockKind::Bundle => "record bundle",
        })
    }
}

/// Every way a record can be refused. Each message says which block and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A block (or the body plaintext) exceeds its size limit.
    #[error("{block} block is {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// The block.
        block: BlockKind,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not the DAG-CBOR map this block must be.
    #[error("{block} block is not a valid DAG-CBOR {block} node: {reason}")]
    Decode {
        /// The block.
        block: BlockKind,
        /// The decoder's explanation.
        reason: String,
    },
    /// The bytes decode but are not the canonical encoding of what they hold.
    #[error("{block} block is not canonical DAG-CBOR (keys out of order or non-minimal lengths)")]
    NonCanonical {
        /// The block.
        block: BlockKind,
    },
    /// The block has a format version this build does not read.
    #[error("{block} block has format version {version}; this build reads version 1")]
    UnsupportedVersion {
        /// The block.
        block: BlockKind,
        /// The version it claims.
        version: u64,
    },
    /// A field has the wrong length or an impossible value.
    #[error("{block} block is malformed: {what}")]
    Malformed {
        /// The block.
        block: BlockKind,
        /// What is wrong, for a person.
        what: &'static str,
    },
    /// The AEAD tag did not verify: the key is not the one the block was sealed with, or a byte
    /// of the block was changed.
    #[error("cannot decrypt {block} block: wrong key or tampered bytes")]
    CannotDecrypt {
        /// The block.
        block: BlockKind,
    },
    /// A block's hash differs from the link that points to it.
    #[error("{block} block does not match the CID the record links to (altered or swapped block)")]
    LinkMismatch {
        /// The block whose hash is wrong.
        block: BlockKind,
    },
    /// The record is signed for another thread.
    #[error("record belongs to another thread than the one it was offered for")]
    WrongThread,
    /// The signature does not verify with the log's key.
    #[error("record signature does not verify against the key of log {log}")]
    BadSignature {
        /// The log (peer id string) the record was offered for.
        log: String,
    },
    /// Creating a record needs the read key.
    #[error("cannot create a record without the thread's read key")]
    NoReadKey,
}
