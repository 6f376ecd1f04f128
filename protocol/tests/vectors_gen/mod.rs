//! Deterministic generation of the test vectors in `spec/vectors/`.
//!
//! Shared by the `gen_vectors` example, which writes the files, and the `vectors` test, which
//! regenerates them and compares with what is committed. Everything is derived from fixed seeds,
//! so the output is the same on every machine and every run.
//!
//! One submodule per vector file (`identifiers`, `records`, `rejections`, with `forge` building
//! the tampered inputs of `rejections`); this module holds the list of files, how they are
//! written, what several families share, and the names of errors that the `vectors` test
//! reads back.

mod forge;
mod identifiers;
mod records;
mod rejections;

pub use identifiers::identifiers;
pub use records::records;
pub use rejections::rejections;

use rand_core::{Infallible, TryCryptoRng, TryRng};
use serde_json::Value;
use std::path::PathBuf;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::key::{ServiceKey, ThreadKey};
use threads_protocol::record::{BlockKind, RecordError, seal};
use threads_protocol::rng::{ProtocolRng, Rng, seeded};

/// The command that rewrites the vector files.
pub const GENERATE_COMMAND: &str = "cargo run -p threads-protocol --example gen_vectors";

/// The directory the vector files live in (`spec/vectors/` at the repository root).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("spec")
        .join("vectors")
}

/// Every vector file: its name and its content.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("identifiers.json", identifiers()),
        ("records.json", records()),
        ("rejections.json", rejections()),
    ]
}

/// The exact text of a vector file: pretty-printed JSON and a trailing newline.
pub fn render(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    text.push('\n');
    text
}

// ------------------------------------------------------------------------------------------
// Randomness bookkeeping
// ------------------------------------------------------------------------------------------

/// An RNG that hands out what its inner RNG gives and remembers every draw, so that the random
/// values a record consumed can be published next to it.
pub struct RecordingRng {
    inner: ProtocolRng,
    draws: Vec<Vec<u8>>,
}

impl RecordingRng {
    /// Wraps a seeded protocol RNG.
    pub fn new(seed: u64) -> Self {
        RecordingRng {
            inner: seeded(seed),
            draws: Vec::new(),
        }
    }

    /// The draws made since the last call, oldest first.
    pub fn take_draws(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.draws)
    }
}

impl TryRng for RecordingRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let v = self.inner.next_u32();
        self.draws.push(v.to_le_bytes().to_vec());
        Ok(v)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let v = self.inner.next_u64();
        self.draws.push(v.to_le_bytes().to_vec());
        Ok(v)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.inner.fill_bytes(dst);
        self.draws.push(dst.to_vec());
        Ok(())
    }
}

impl TryCryptoRng for RecordingRng {}

// ------------------------------------------------------------------------------------------
// Shared by the vector families
// ------------------------------------------------------------------------------------------

/// `00 01 02 ...` of length `n`.
fn counting(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

/// Writer wall clock of the first record vector, Unix nanoseconds (2023-11-14T22:13:20Z).
const TIME_BASE: u64 = 1_700_000_000_000_000_000;

/// The thread, keys and identities of one set of record vectors.
struct Setup {
    thread: ThreadId,
    key: ThreadKey,
}

impl Setup {
    fn new(seed: u64) -> Self {
        let mut rng = seeded(seed);
        let thread = ThreadId::random(Variant::Raw, &mut rng);
        let key = ThreadKey::random(&mut rng, true);
        Setup { thread, key }
    }

    fn service(&self) -> &ServiceKey {
        self.key.service()
    }

    fn read_bytes(&self) -> [u8; 32] {
        *self
            .key
            .read()
            .expect("vector keys have a read key")
            .as_bytes()
    }
}

fn open_sealed(block: BlockKind, key: &[u8; 32], bytes: &[u8]) -> Vec<u8> {
    let node = seal::parse(block, bytes, usize::MAX).expect("a block we sealed parses");
    seal::open(block, key, &node).expect("a block we sealed opens")
}

// ------------------------------------------------------------------------------------------
// Error names: written by the rejection vectors, compared by the `vectors` test
// ------------------------------------------------------------------------------------------

/// The name of a [`RecordError`] variant, as the vectors record it.
pub fn error_kind(err: &RecordError) -> &'static str {
    match err {
        RecordError::TooLarge { .. } => "TooLarge",
        RecordError::Decode { .. } => "Decode",
        RecordError::NonCanonical { .. } => "NonCanonical",
        RecordError::UnsupportedVersion { .. } => "UnsupportedVersion",
        RecordError::Malformed { .. } => "Malformed",
        RecordError::CannotDecrypt { .. } => "CannotDecrypt",
        RecordError::LinkMismatch { .. } => "LinkMismatch",
        RecordError::WrongThread => "WrongThread",
        RecordError::BadSignature { .. } => "BadSignature",
        RecordError::NoReadKey => "NoReadKey",
    }
}

/// The block a [`RecordError`] names, if any.
pub fn error_block(err: &RecordError) -> Option<String> {
    match err {
        RecordError::TooLarge { block, .. }
        | RecordError::Decode { block, .. }
        | RecordError::NonCanonical { block }
        | RecordError::UnsupportedVersion { block, .. }
        | RecordError::Malformed { block, .. }
        | RecordError::CannotDecrypt { block }
        | RecordError::LinkMismatch { block } => Some(block.to_string()),
        RecordError::WrongThread | RecordError::BadSignature { .. } | RecordError::NoReadKey => {
            None
        }
    }
}
