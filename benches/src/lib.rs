//! Shared fixtures of the ThreadDB benchmarks (`benches/*.rs`).
//!
//! Everything is built from fixed seeds so that runs are comparable.

pub mod people;

/// Every benchmark runs on the allocator `threadsd` runs on (mimalloc), so the figures are the
/// daemon's. With glibc's malloc, a million-instance load spent about half its time in
/// `malloc`/`free` (`unlink_chunk`, `malloc_consolidate`) and slowed as it grew.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub mod pipeline;
pub mod stack;

use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, OpenedRecord, RecordDraft, RecordError};
use threads_protocol::rng::{ProtocolRng, seeded};

/// One thread with its keys, a log key and an author: what writing a record needs.
pub struct RecordFixture {
    /// The thread records belong to.
    pub thread: ThreadId,
    /// Service and read key.
    pub key: ThreadKey,
    /// The log's signing key.
    pub log_key: PrivateKey,
    /// The log's id (peer id of `log_key`).
    pub log: LogId,
    /// The writer's identity.
    pub author: PublicKey,
    /// The RNG record creation draws keys and nonces from.
    pub rng: ProtocolRng,
}

impl RecordFixture {
    /// A fixture derived from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = seeded(seed);
        let thread = ThreadId::random(Variant::Raw, &mut rng);
        let key = ThreadKey::random(&mut rng, true);
        let log_key = PrivateKey::generate(&mut rng);
        let author = PrivateKey::generate(&mut rng).public();
        let log = LogId::from_public_key(&log_key.public());
        RecordFixture {
            thread,
            key,
            log_key,
            log,
            author,
            rng,
        }
    }

    /// Creates the first record of the log with `body`.
    pub fn create(&mut self, body: &[u8]) -> Result<OpenedRecord, RecordError> {
        let draft = RecordDraft {
            thread: &self.thread,
            author: &self.author,
            prev: None,
            counter: LogCounter::FIRST,
            clock: LamportClock(1),
            time: 1_700_000_000_000_000_000,
            body,
        };
        record::create(&draft, &self.log_key, &self.key, &mut self.rng)
    }
}

/// A body of `len` bytes with a fixed pattern.
pub fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A record's own signature check, taken out of the record: the log's verifying key, the bytes
/// it signed and the signature. Verifying it is exactly the signature work of a record check,
/// the bound the record benchmarks compare against. (`verify_strict`'s scalar multiplication
/// runs in variable time, so a signature over other bytes or by another key costs a few per
/// cent more or less; the bound before 2026-12-02 was such a signature.)
pub struct RecordSignature {
    key: ed25519_dalek::VerifyingKey,
    input: Vec<u8>,
    signature: ed25519_dalek::Signature,
}

impl RecordSignature {
    /// The signature check of `bundle`, a record of `log` sealed with `key`'s service key.
    pub fn of(bundle: &record::RecordBundle, log: &LogId, key: &ThreadKey) -> Self {
        use threads_protocol::record::error::BlockKind;
        use threads_protocol::record::wire::{self, SignedRecordNode};
        use threads_protocol::record::{MAX_META_BLOCK_LEN, SIGNING_DOMAIN, seal};
        let sealed = seal::parse(BlockKind::Record, &bundle.record, MAX_META_BLOCK_LEN)
            .expect("our envelope parses");
        let plain = seal::open(BlockKind::Record, key.service().as_bytes(), &sealed)
            .expect("our envelope opens");
        let node: SignedRecordNode = wire::decode(BlockKind::Record, &plain, MAX_META_BLOCK_LEN)
            .expect("our envelope decodes");
        let mut input = SIGNING_DOMAIN.to_vec();
        input.extend_from_slice(&wire::encode(&node.unsigned()));
        let signature = ed25519_dalek::Signature::from_slice(&node.signature)
            .expect("our signature is 64 bytes");
        RecordSignature {
            key: *log.public_key().as_dalek(),
            input,
            signature,
        }
    }

    /// Length of the signed bytes.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// The bare strict check; panics if it fails (it never does for our records).
    pub fn verify(&self) {
        self.key
            .verify_strict(std::hint::black_box(&self.input), &self.signature)
            .expect("the record's signature verifies");
    }
}

/// Nanoseconds the calling thread has run on a CPU (`/proc/thread-self/schedstat`), so time
/// spent waiting for the disk (`fdatasync`) is not counted; 0 where the kernel does not report
/// it.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes this process handed to `write`/`pwrite` and how many such calls it made
/// (`/proc/self/io`; LMDB writes every dirty page with its own `pwrite` unless pages are
/// adjacent, and the 120-byte meta page last).
pub fn io_written() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("wchar:"), field("syscw:"))
}

/// LMDB settings for a benchmark's store: the defaults, with the write-ahead log's capacity
/// (`LmdbOptions::log_bytes`) taken from the environment variable `BENCH_LOG_BYTES` when it
/// is set (0 turns the log off), for comparisons.
pub fn lmdb_options() -> threads_driver_tokio::lmdb::LmdbOptions {
    let mut options = threads_driver_tokio::lmdb::LmdbOptions::default();
    if let Some(bytes) = std::env::var("BENCH_LOG_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.log_bytes = bytes;
    }
    options
}

/// LMDB settings for a bare-commit anchor: LMDB's own durable commit, no write-ahead log.
pub fn bare_lmdb_options() -> threads_driver_tokio::lmdb::LmdbOptions {
    threads_driver_tokio::lmdb::LmdbOptions {
        log_bytes: 0,
        ..Default::default()
    }
}
