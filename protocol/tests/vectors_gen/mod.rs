//! Deterministic generation of the test vectors in `spec/vectors/`.
//!
//! Shared by the `gen_vectors` example, which writes the files, and the `vectors` test, which
//! regenerates them and compares with what is committed. Everything is derived from fixed seeds,
//! so the output is the same on every machine and every run.

use rand_core::{Infallible, TryCryptoRng, TryRng};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::{ServiceKey, ThreadKey};
use threads_protocol::log_id::LogId;
use threads_protocol::record::wire::{self, EventNode, HeaderNode, SealedNode, SignedRecordNode};
use threads_protocol::record::{
    self, BlockKind, FORMAT_VERSION, MAX_META_BLOCK_LEN, OpenedRecord, RecordBundle, RecordDraft,
    RecordError, SIGNING_DOMAIN, block_cid, seal,
};
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
// identifiers.json
// ------------------------------------------------------------------------------------------

/// `00 01 02 ...` of length `n`.
fn counting(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

fn seed_from(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("seeds are 32 bytes")
}

/// The message every identity vector signs: `ff fe fd ... e0` (the go-threads token challenge
/// shape).
fn challenge() -> Vec<u8> {
    (0..32).map(|i| 0xff - i as u8).collect()
}

fn thread_id_json(name: &str, how: &str, id: &ThreadId) -> Value {
    let base58 = multibase::encode(multibase::Base::Base58Btc, id.as_bytes());
    json!({
        "name": name,
        "how": how,
        "variant": id.variant().to_string(),
        "variant_code": id.variant().code(),
        "random_hex": hex::encode(id.random_part()),
        "bytes_hex": hex::encode(id.as_bytes()),
        "string": id.to_string(),
        "decode_only_strings": [base58],
    })
}

fn thread_key_json(name: &str, how: &str, key: &ThreadKey) -> Value {
    json!({
        "name": name,
        "how": how,
        "bytes_hex": hex::encode(key.to_bytes()),
        "string": key.to_string(),
        "service_key_hex": hex::encode(key.service().as_bytes()),
        "read_key_hex": key.read().map(|r| hex::encode(r.as_bytes())),
    })
}

fn identity_json(name: &str, seed: [u8; 32]) -> Value {
    let key = PrivateKey::from_seed(seed);
    let public = key.public();
    let peer = LogId::from_public_key(&public);
    let message = challenge();
    json!({
        "name": name,
        "seed_hex": hex::encode(seed),
        "raw_public_hex": hex::encode(public.to_raw()),
        "public_protobuf_hex": hex::encode(public.to_protobuf()),
        "public_string": public.to_string(),
        "private_protobuf_hex": hex::encode(key.to_protobuf()),
        "private_string": key.to_string(),
        "peer_id": peer.to_string(),
        "peer_id_bytes_hex": hex::encode(peer.as_bytes()),
        "message_hex": hex::encode(&message),
        "signature_hex": hex::encode(key.sign(&message)),
    })
}

fn thread_addr_json(name: &str, addr: &ThreadAddr) -> Value {
    json!({
        "name": name,
        "string": addr.to_string(),
        "bytes_hex": hex::encode(addr.to_bytes()),
        "thread_id": addr.thread.to_string(),
        "peer_id": addr.peer().map(|p| p.to_string()),
    })
}

/// Thread ids, thread keys, identities and thread addresses (`spec/identifiers.md`).
pub fn identifiers() -> Value {
    let raw_counting = ThreadId::new(Variant::Raw, &counting(32)).expect("valid id");
    let ac_counting = ThreadId::new(Variant::AccessControlled, &counting(32)).expect("valid id");
    let thread_ids = vec![
        thread_id_json(
            "raw-counting",
            "Raw, random part 00 01 .. 1f",
            &raw_counting,
        ),
        thread_id_json(
            "access-controlled-counting",
            "AccessControlled, random part 00 01 .. 1f",
            &ac_counting,
        ),
        thread_id_json(
            "raw-seeded-1",
            "ThreadId::random(Raw, seeded(1)): 32 random bytes",
            &ThreadId::random(Variant::Raw, &mut seeded(1)),
        ),
        thread_id_json(
            "access-controlled-seeded-2",
            "ThreadId::random(AccessControlled, seeded(2)): 32 random bytes",
            &ThreadId::random(Variant::AccessControlled, &mut seeded(2)),
        ),
        thread_id_json(
            "raw-short",
            "Raw, 16 random bytes 00 .. 0f (the shortest the JS client accepts)",
            &ThreadId::new(Variant::Raw, &counting(16)).expect("valid id"),
        ),
    ];

    let thread_keys = vec![
        thread_key_json(
            "counting-64",
            "64 bytes 00 01 .. 3f: service key 00..1f, read key 20..3f",
            &ThreadKey::from_bytes(&counting(64)).expect("valid key"),
        ),
        thread_key_json(
            "seeded-64",
            "ThreadKey::random(seeded(3), with_read = true)",
            &ThreadKey::random(&mut seeded(3), true),
        ),
        thread_key_json(
            "seeded-32",
            "ThreadKey::random(seeded(4), with_read = false): service key only",
            &ThreadKey::random(&mut seeded(4), false),
        ),
    ];

    let descending: Vec<u8> = (0..32).map(|i| 0xff - i as u8).collect();
    let identities = vec![
        identity_json("seed-counting", seed_from(&counting(32))),
        identity_json("seed-descending", seed_from(&descending)),
        identity_json("seed-07", [0x07; 32]),
    ];

    let host: multiaddr::Multiaddr =
        "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWLzZQcU5zq6TSDbEP8tPVPdrAQsd5Gnj1MXP5x8ZLzfa4"
            .parse()
            .expect("valid multiaddr");
    let peer = LogId::from_public_key(&PrivateKey::from_seed(seed_from(&counting(32))).public());
    let host6: multiaddr::Multiaddr = format!("/ip6/::1/tcp/4006/p2p/{peer}")
        .parse()
        .expect("valid multiaddr");
    let thread_addrs = vec![
        thread_addr_json("ip4-raw", &ThreadAddr::new(host, raw_counting)),
        thread_addr_json(
            "ip6-access-controlled",
            &ThreadAddr::new(host6, ac_counting),
        ),
        thread_addr_json(
            "bare-thread",
            &ThreadAddr::new(multiaddr::Multiaddr::empty(), raw_counting),
        ),
    ];

    json!({
        "description": "Identifier vectors: thread ids, thread keys, Ed25519 identities with their \
            libp2p protobuf, string and peer id forms, and thread multiaddrs. See \
            spec/identifiers.md. Every string parses to the bytes next to it and every byte form \
            encodes to the string; decode_only_strings are other multibase encodings that must \
            parse to the same id. Signatures are plain RFC 8032 Ed25519 over message_hex.",
        "generator": GENERATE_COMMAND,
        "thread_ids": thread_ids,
        "thread_keys": thread_keys,
        "identities": identities,
        "thread_addrs": thread_addrs,
    })
}

// ------------------------------------------------------------------------------------------
// records.json
// ------------------------------------------------------------------------------------------

/// Seed of the log key of log A in the record vectors.
const LOG_A_SEED: [u8; 32] = [0xa1; 32];
/// Seed of the log key of log B in the record vectors.
const LOG_B_SEED: [u8; 32] = [0xb2; 32];
/// Seed of the user identity that authors log A's records.
const AUTHOR_SEED: [u8; 32] = [0xc3; 32];
/// Writer wall clock of the first record vector, Unix nanoseconds (2023-11-14T22:13:20Z).
const TIME_BASE: u64 = 1_700_000_000_000_000_000;

/// The body of `len` bytes used by the vectors: byte `i` is `i mod 251`.
fn pattern_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

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

/// One record to create.
struct Spec<'a> {
    name: &'a str,
    log: &'a str,
    log_key: &'a PrivateKey,
    author: &'a PrivateKey,
    counter: u64,
    clock: u64,
    prev: Option<cid::Cid>,
    time: u64,
    body: Vec<u8>,
}

fn create(setup: &Setup, spec: &Spec<'_>, rng: &mut RecordingRng) -> OpenedRecord {
    let author = spec.author.public();
    let draft = RecordDraft {
        thread: &setup.thread,
        author: &author,
        prev: spec.prev,
        counter: LogCounter::new(spec.counter).expect("counters are >= 1"),
        clock: LamportClock(spec.clock),
        time: spec.time,
        body: &spec.body,
    };
    record::create(&draft, spec.log_key, &setup.key, rng).expect("vector records are valid")
}

fn open_sealed(block: BlockKind, key: &[u8; 32], bytes: &[u8]) -> Vec<u8> {
    let node = seal::parse(block, bytes, usize::MAX).expect("a block we sealed parses");
    seal::open(block, key, &node).expect("a block we sealed opens")
}

fn signing_input_of(envelope_plain: &[u8]) -> Vec<u8> {
    let node: SignedRecordNode = wire::decode(BlockKind::Record, envelope_plain, usize::MAX)
        .expect("an envelope we made decodes");
    let mut input = SIGNING_DOMAIN.to_vec();
    input.extend_from_slice(&wire::encode(&node.unsigned()));
    input
}

fn record_json(setup: &Setup, spec: &Spec<'_>, rng: &mut RecordingRng) -> (Value, cid::Cid) {
    rng.take_draws();
    let opened = create(setup, spec, rng);
    let draws = rng.take_draws();
    let sizes: Vec<usize> = draws.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [32, 24, 24, 24],
        "record::create no longer draws body key, body nonce, header nonce, envelope nonce; \
         update spec/formats.md and this generator"
    );
    let rec = opened.record();
    let bundle = rec.bundle();
    let envelope_plain = open_sealed(
        BlockKind::Record,
        setup.service().as_bytes(),
        &bundle.record,
    );
    let header_plain = open_sealed(BlockKind::Header, &setup.read_bytes(), &bundle.header);
    let log_id = LogId::from_public_key(&spec.log_key.public());
    let value = json!({
        "name": spec.name,
        "log": spec.log,
        "inputs": {
            "thread_id": setup.thread.to_string(),
            "thread_id_hex": hex::encode(setup.thread.as_bytes()),
            "service_key_hex": hex::encode(setup.service().as_bytes()),
            "read_key_hex": hex::encode(setup.read_bytes()),
            "log_seed_hex": hex::encode(spec.log_key.seed()),
            "log_private_protobuf_hex": hex::encode(spec.log_key.to_protobuf()),
            "log_id": log_id.to_string(),
            "log_id_hex": hex::encode(log_id.as_bytes()),
            "author_public_protobuf_hex": hex::encode(spec.author.public().to_protobuf()),
            "author": spec.author.public().to_string(),
            "counter": spec.counter,
            "clock": spec.clock,
            "prev": spec.prev.map(|c| c.to_string()),
            "time": spec.time.to_string(),
            "body_hex": hex::encode(&spec.body),
        },
        "random": {
            "body_key_hex": hex::encode(&draws[0]),
            "body_nonce_hex": hex::encode(&draws[1]),
            "header_nonce_hex": hex::encode(&draws[2]),
            "envelope_nonce_hex": hex::encode(&draws[3]),
        },
        "outputs": {
            "body_block_hex": hex::encode(&bundle.body),
            "body_cid": block_cid(&bundle.body).to_string(),
            "header_plaintext_hex": hex::encode(&header_plain),
            "header_block_hex": hex::encode(&bundle.header),
            "header_cid": block_cid(&bundle.header).to_string(),
            "event_block_hex": hex::encode(&bundle.event),
            "event_cid": block_cid(&bundle.event).to_string(),
            "signing_input_hex": hex::encode(signing_input_of(&envelope_plain)),
            "signature_hex": hex::encode(rec.signature()),
            "envelope_plaintext_hex": hex::encode(&envelope_plain),
            "record_block_hex": hex::encode(&bundle.record),
            "record_cid": rec.cid().to_string(),
            "bundle_hex": hex::encode(bundle.encode()),
        },
    });
    (value, rec.cid())
}

/// Three records of log A (bodies of 0, 64 and 1024 bytes) and the first record of log B.
pub fn records() -> Value {
    let setup = Setup::new(100);
    let log_a = PrivateKey::from_seed(LOG_A_SEED);
    let log_b = PrivateKey::from_seed(LOG_B_SEED);
    let author = PrivateKey::from_seed(AUTHOR_SEED);
    let mut rng = RecordingRng::new(101);
    let mut out = Vec::new();

    let mut spec = Spec {
        name: "log-a-1",
        log: "a",
        log_key: &log_a,
        author: &author,
        counter: 1,
        clock: 1,
        prev: None,
        time: TIME_BASE,
        body: Vec::new(),
    };
    let (v, a1) = record_json(&setup, &spec, &mut rng);
    out.push(v);

    spec.name = "log-a-2";
    spec.counter = 2;
    spec.clock = 2;
    spec.prev = Some(a1);
    spec.time = TIME_BASE + 1_000_000;
    spec.body = pattern_body(64);
    let (v, a2) = record_json(&setup, &spec, &mut rng);
    out.push(v);

    spec.name = "log-a-3";
    spec.counter = 3;
    spec.clock = 4;
    spec.prev = Some(a2);
    spec.time = TIME_BASE + 3_000_000;
    spec.body = pattern_body(1024);
    let (v, _) = record_json(&setup, &spec, &mut rng);
    out.push(v);

    let b1 = Spec {
        name: "log-b-1",
        log: "b",
        log_key: &log_b,
        author: &log_b,
        counter: 1,
        clock: 3,
        prev: None,
        time: TIME_BASE + 2_000_000,
        body: b"a record of a second log, authored by its own log key".to_vec(),
    };
    let (v, _) = record_json(&setup, &b1, &mut rng);
    out.push(v);

    json!({
        "description": "Record vectors (spec/formats.md). One thread; log a holds a chain of three \
            records (bodies of 0, 64 and 1024 bytes, authored by a user identity that is not the \
            log key), log b one record authored by its own log key. inputs are what the writer \
            chose, random the values record creation drew from its RNG in this order (body key, \
            body nonce, header nonce, envelope nonce), outputs every intermediate and final byte \
            string. CIDs are CIDv1 dag-cbor sha2-256 in base32 multibase; time is a decimal \
            string because it exceeds 2^53.",
        "generator": GENERATE_COMMAND,
        "format_version": FORMAT_VERSION,
        "signing_domain_hex": hex::encode(SIGNING_DOMAIN),
        "aead_labels": {
            "record": String::from_utf8_lossy(seal::label(BlockKind::Record)),
            "header": String::from_utf8_lossy(seal::label(BlockKind::Header)),
            "body": String::from_utf8_lossy(seal::label(BlockKind::Body)),
        },
        "records": out,
    })
}

// ------------------------------------------------------------------------------------------
// rejections.json
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

/// What a rejection case feeds to the implementation.
enum Input {
    /// Bytes given to `RecordBundle::decode`.
    Bundle(Vec<u8>),
    /// Blocks given to `verify`, for `thread` and `log`, with `service`.
    Verify {
        bundle: RecordBundle,
        thread: ThreadId,
        log: LogId,
        service: [u8; 32],
    },
    /// Blocks that verify, then are opened with `read`.
    Open {
        bundle: RecordBundle,
        thread: ThreadId,
        log: LogId,
        service: [u8; 32],
        read: [u8; 32],
    },
}

/// Runs a rejection input through the implementation and returns the error it must produce.
fn run(input: &Input) -> Result<(), RecordError> {
    match input {
        Input::Bundle(bytes) => RecordBundle::decode(bytes).map(drop),
        Input::Verify {
            bundle,
            thread,
            log,
            service,
        } => record::verify(
            bundle.clone(),
            thread,
            log,
            &ServiceKey::from_bytes(*service),
        )
        .map(drop),
        Input::Open {
            bundle,
            thread,
            log,
            service,
            read,
        } => {
            let verified = record::verify(
                bundle.clone(),
                thread,
                log,
                &ServiceKey::from_bytes(*service),
            )
            .expect("an open-stage rejection must verify");
            let read = threads_protocol::key::ReadKey::from_bytes(*read);
            record::open(verified, &read).map(drop)
        }
    }
}

fn blocks_json(bundle: &RecordBundle) -> Value {
    json!({
        "record_hex": hex::encode(&bundle.record),
        "event_hex": hex::encode(&bundle.event),
        "header_hex": hex::encode(&bundle.header),
        "body_hex": hex::encode(&bundle.body),
    })
}

fn case_json(name: &str, description: &str, expected_kind: &str, input: Input) -> Value {
    let err = match run(&input) {
        Ok(()) => panic!("rejection vector {name} was accepted"),
        Err(e) => e,
    };
    assert_eq!(
        error_kind(&err),
        expected_kind,
        "rejection vector {name} fails with another error than intended: {err}"
    );
    let error = json!({
        "kind": error_kind(&err),
        "block": error_block(&err),
        "display": err.to_string(),
    });
    match input {
        Input::Bundle(bytes) => json!({
            "name": name,
            "description": description,
            "stage": "decode_bundle",
            "bundle_hex": hex::encode(bytes),
            "error": error,
        }),
        Input::Verify {
            bundle,
            thread,
            log,
            service,
        } => json!({
            "name": name,
            "description": description,
            "stage": "verify",
            "thread_id": thread.to_string(),
            "log_id": log.to_string(),
            "service_key_hex": hex::encode(service),
            "blocks": blocks_json(&bundle),
            "error": error,
        }),
        Input::Open {
            bundle,
            thread,
            log,
            service,
            read,
        } => json!({
            "name": name,
            "description": description,
            "stage": "open",
            "thread_id": thread.to_string(),
            "log_id": log.to_string(),
            "service_key_hex": hex::encode(service),
            "read_key_hex": hex::encode(read),
            "blocks": blocks_json(&bundle),
            "error": error,
        }),
    }
}

/// The envelope plaintext without its `"p"` member (a non-canonical form of a null `prev`).
#[derive(Serialize)]
struct EnvelopeWithoutPrev {
    #[serde(rename = "a", with = "serde_bytes")]
    author: Vec<u8>,
    #[serde(rename = "c")]
    counter: u64,
    #[serde(rename = "e")]
    event: cid::Cid,
    #[serde(rename = "l")]
    clock: u64,
    #[serde(rename = "s", with = "serde_bytes")]
    signature: Vec<u8>,
    #[serde(rename = "t", with = "serde_bytes")]
    thread: Vec<u8>,
    #[serde(rename = "v")]
    version: u64,
}

/// The envelope plaintext with an extra member `"x"`.
#[derive(Serialize)]
struct EnvelopeWithExtra {
    #[serde(flatten)]
    node: SignedRecordNode,
    #[serde(rename = "x")]
    extra: u64,
}

/// Builders of tampered records for one thread and log.
struct Forge {
    setup: Setup,
    log_key: PrivateKey,
    author: PrivateKey,
    rng: ProtocolRng,
}

impl Forge {
    fn log(&self) -> LogId {
        LogId::from_public_key(&self.log_key.public())
    }

    fn make(&mut self, counter: u64, prev: Option<cid::Cid>, body: &[u8]) -> RecordBundle {
        let author = self.author.public();
        let draft = RecordDraft {
            thread: &self.setup.thread,
            author: &author,
            prev,
            counter: LogCounter::new(counter).expect("counters are >= 1"),
            clock: LamportClock(counter),
            time: TIME_BASE,
            body,
        };
        record::create(&draft, &self.log_key, &self.setup.key, &mut self.rng)
            .expect("valid draft")
            .into_record()
            .into_bundle()
    }

    fn verify_input(&self, bundle: RecordBundle) -> Input {
        Input::Verify {
            bundle,
            thread: self.setup.thread,
            log: self.log(),
            service: *self.setup.service().as_bytes(),
        }
    }

    fn open_input(&self, bundle: RecordBundle) -> Input {
        Input::Open {
            bundle,
            thread: self.setup.thread,
            log: self.log(),
            service: *self.setup.service().as_bytes(),
            read: self.setup.read_bytes(),
        }
    }

    fn envelope(&self, bundle: &RecordBundle) -> SignedRecordNode {
        let plain = open_sealed(
            BlockKind::Record,
            self.setup.service().as_bytes(),
            &bundle.record,
        );
        wire::decode(BlockKind::Record, &plain, usize::MAX).expect("our envelope decodes")
    }

    /// Seals `plaintext` as the envelope of `bundle` (what anyone holding the service key can
    /// do), under the AEAD label of `label`.
    fn reseal_raw(
        &mut self,
        bundle: &RecordBundle,
        plaintext: &[u8],
        label: BlockKind,
    ) -> RecordBundle {
        let record = seal::seal(
            label,
            self.setup.service().as_bytes(),
            plaintext,
            &mut self.rng,
        );
        RecordBundle {
            record,
            ..bundle.clone()
        }
    }

    /// Re-seals the envelope after `edit`, keeping the old signature.
    fn reseal(
        &mut self,
        bundle: &RecordBundle,
        edit: impl FnOnce(&mut SignedRecordNode),
    ) -> RecordBundle {
        let mut node = self.envelope(bundle);
        edit(&mut node);
        self.reseal_raw(bundle, &wire::encode(&node), BlockKind::Record)
    }

    /// A correctly signed and sealed record around the given body, header and event blocks (what
    /// a buggy writer holding the log key could publish).
    fn assemble(
        &mut self,
        counter: u64,
        prev: Option<cid::Cid>,
        body: Vec<u8>,
        header: Vec<u8>,
        event: Vec<u8>,
    ) -> RecordBundle {
        let unsigned = wire::UnsignedRecordNode {
            author: self.author.public().to_protobuf().to_vec(),
            counter,
            event: block_cid(&event),
            clock: counter,
            prev,
            thread: self.setup.thread.as_bytes().to_vec(),
            version: FORMAT_VERSION,
        };
        let mut input = SIGNING_DOMAIN.to_vec();
        input.extend_from_slice(&wire::encode(&unsigned));
        let signed = SignedRecordNode {
            author: unsigned.author,
            counter,
            event: unsigned.event,
            clock: unsigned.clock,
            prev,
            signature: self.log_key.sign(&input).to_vec(),
            thread: unsigned.thread,
            version: FORMAT_VERSION,
        };
        let record = seal::seal(
            BlockKind::Record,
            self.setup.service().as_bytes(),
            &wire::encode(&signed),
            &mut self.rng,
        );
        RecordBundle {
            record,
            event,
            header,
            body,
        }
    }

    /// A first record assembled from a body sealed under `body_label` and the given header.
    fn assemble_parts(
        &mut self,
        body_label: BlockKind,
        header_node: &HeaderNode,
        body_key: &[u8; 32],
        event_version: u64,
    ) -> RecordBundle {
        let body = seal::seal(body_label, body_key, b"forged body", &mut self.rng);
        let read = self.setup.read_bytes();
        let header = seal::seal(
            BlockKind::Header,
            &read,
            &wire::encode(header_node),
            &mut self.rng,
        );
        let event = wire::encode(&EventNode {
            body: block_cid(&body),
            header: block_cid(&header),
            version: event_version,
        });
        self.assemble(1, None, body, header, event)
    }
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

fn sealed_bytes(ciphertext: Vec<u8>, nonce: Vec<u8>, version: u64) -> Vec<u8> {
    wire::encode(&SealedNode {
        ciphertext,
        nonce,
        version,
    })
}

/// Tampered, mismatched and malformed inputs with the exact error each must produce.
pub fn rejections() -> Value {
    let mut rng = seeded(200);
    let setup = Setup::new(201);
    let log_key = PrivateKey::generate(&mut rng);
    let author = PrivateKey::generate(&mut rng);
    let mut f = Forge {
        setup,
        log_key,
        author,
        rng,
    };
    let first = f.make(1, None, b"first record");
    let base = f.make(2, Some(block_cid(&first.record)), b"the record under test");
    let other = f.make(2, Some(block_cid(&first.record)), b"another record");
    let canonical_bundle = base.encode();
    let mut cases = Vec::new();

    // --- Bundle framing -------------------------------------------------------------------
    let empty_bundle = RecordBundle {
        record: Vec::new(),
        event: Vec::new(),
        header: Vec::new(),
        body: Vec::new(),
    };
    assert_eq!(
        hex::encode(empty_bundle.encode()),
        "a5616240616540616840617240617601"
    );
    let bundle_cases: [(&str, &str, &str, &str); 8] = [
        (
            "bundle-unsupported-version",
            "an empty bundle claiming format version 2",
            "a5616240616540616840617240617602",
            "UnsupportedVersion",
        ),
        (
            "bundle-keys-out-of-order",
            "{r, b, e, h, v}: the members of an empty bundle with \"r\" first",
            "a5617240616240616540616840617601",
            "NonCanonical",
        ),
        (
            "bundle-unknown-member",
            "an empty bundle with a sixth member \"x\"",
            "a6616240616540616840617240617601617840",
            "Decode",
        ),
        (
            "bundle-missing-member",
            "{b, e, h, v}: no \"r\"",
            "a4616240616540616840617601",
            "Decode",
        ),
        (
            "bundle-indefinite-length",
            "an empty bundle as an indefinite-length map",
            "bf616240616540616840617240617601ff",
            "NonCanonical",
        ),
        (
            "bundle-non-minimal-length",
            "an empty bundle whose \"b\" byte string has a one-byte length argument of 0",
            "a561625800616540616840617240617601",
            "NonCanonical",
        ),
        (
            "bundle-duplicate-member",
            "{b, b, h, r, v}: \"b\" twice and no \"e\"",
            "a5616240616240616840617240617601",
            "NonCanonical",
        ),
        (
            "bundle-array-instead-of-map",
            "a four-element array of empty byte strings",
            "8440404040",
            "Decode",
        ),
    ];
    for (name, description, bytes, kind) in bundle_cases {
        let bytes = hex::decode(bytes).expect("valid hex");
        cases.push(case_json(name, description, kind, Input::Bundle(bytes)));
    }
    let mut trailing = canonical_bundle.clone();
    trailing.push(0x00);
    cases.push(case_json(
        "bundle-trailing-byte",
        "a valid bundle followed by one 00 byte",
        "Decode",
        Input::Bundle(trailing),
    ));

    // --- Flipped bytes ----------------------------------------------------------------------
    // A sealed block ends with `61 6e 58 18 <24-byte nonce> 61 76 01` (31 bytes), so the last
    // ciphertext byte (the end of the tag) is 32 bytes from the end; ciphertexts shorter than 256
    // bytes start at offset 5 (`a3 61 63 58 <len>`).
    let tag_end = base.record.len() - 32;
    cases.push(case_json(
        "flipped-record-byte",
        "bit 0 of the last byte of the envelope ciphertext (the end of the Poly1305 tag) flipped",
        "CannotDecrypt",
        f.verify_input(RecordBundle {
            record: flip(&base.record, tag_end),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "flipped-event-byte",
        "bit 0 of byte 20 of the event block flipped",
        "LinkMismatch",
        f.verify_input(RecordBundle {
            event: flip(&base.event, 20),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "flipped-header-byte",
        "bit 0 of the first ciphertext byte of the header block flipped",
        "LinkMismatch",
        f.verify_input(RecordBundle {
            header: flip(&base.header, 5),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "flipped-body-byte",
        "bit 0 of the first ciphertext byte of the body block flipped",
        "LinkMismatch",
        f.verify_input(RecordBundle {
            body: flip(&base.body, 5),
            ..base.clone()
        }),
    ));

    // --- Wrong context ----------------------------------------------------------------------
    let wrong_service = Input::Verify {
        bundle: base.clone(),
        thread: f.setup.thread,
        log: f.log(),
        service: [0x5a; 32],
    };
    cases.push(case_json(
        "wrong-service-key",
        "a valid record verified with another service key (5a 5a ..)",
        "CannotDecrypt",
        wrong_service,
    ));
    let stranger = LogId::from_public_key(&PrivateKey::from_seed([0x5b; 32]).public());
    cases.push(case_json(
        "other-log",
        "a valid record offered for another log (the key of seed 5b 5b ..)",
        "BadSignature",
        Input::Verify {
            bundle: base.clone(),
            thread: f.setup.thread,
            log: stranger,
            service: *f.setup.service().as_bytes(),
        },
    ));
    cases.push(case_json(
        "other-thread",
        "a valid record offered for another thread (Raw, random part 00 .. 1f)",
        "WrongThread",
        Input::Verify {
            bundle: base.clone(),
            thread: ThreadId::new(Variant::Raw, &counting(32)).expect("valid id"),
            log: f.log(),
            service: *f.setup.service().as_bytes(),
        },
    ));
    cases.push(case_json(
        "wrong-read-key",
        "a valid record opened with another read key (5c 5c ..)",
        "CannotDecrypt",
        Input::Open {
            bundle: base.clone(),
            thread: f.setup.thread,
            log: f.log(),
            service: *f.setup.service().as_bytes(),
            read: [0x5c; 32],
        },
    ));

    // --- Swapped blocks ---------------------------------------------------------------------
    for which in ["event", "header", "body"] {
        let mut mixed = base.clone();
        match which {
            "event" => mixed.event = other.event.clone(),
            "header" => mixed.header = other.header.clone(),
            _ => mixed.body = other.body.clone(),
        }
        cases.push(case_json(
            &format!("swapped-{which}"),
            &format!("the {which} block replaced by the {which} block of another valid record"),
            "LinkMismatch",
            f.verify_input(mixed),
        ));
    }

    // --- Sealed block framing ---------------------------------------------------------------
    let big = sealed_bytes(vec![0u8; 988], vec![0u8; 24], 1);
    assert_eq!(big.len(), MAX_META_BLOCK_LEN + 1);
    cases.push(case_json(
        "record-block-too-large",
        "a well-formed sealed block of 1025 bytes as the envelope",
        "TooLarge",
        f.verify_input(RecordBundle {
            record: big.clone(),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "header-block-too-large",
        "a well-formed sealed block of 1025 bytes as the header",
        "TooLarge",
        f.verify_input(RecordBundle {
            header: big,
            ..base.clone()
        }),
    ));
    let sealed = seal::parse(BlockKind::Record, &base.record, MAX_META_BLOCK_LEN)
        .expect("our envelope parses");
    cases.push(case_json(
        "record-block-version-2",
        "the envelope's sealed block with \"v\": 2",
        "UnsupportedVersion",
        f.verify_input(RecordBundle {
            record: sealed_bytes(sealed.ciphertext.clone(), sealed.nonce.clone(), 2),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "record-nonce-12-bytes",
        "the envelope's sealed block with only the first 12 nonce bytes",
        "Malformed",
        f.verify_input(RecordBundle {
            record: sealed_bytes(sealed.ciphertext.clone(), sealed.nonce[..12].to_vec(), 1),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "record-block-not-cbor",
        "a single ff byte (a CBOR break outside any indefinite item) as the envelope",
        "Decode",
        f.verify_input(RecordBundle {
            record: vec![0xff],
            ..base.clone()
        }),
    ));
    let header_node = seal::parse(BlockKind::Header, &base.header, MAX_META_BLOCK_LEN)
        .expect("our header parses");
    cases.push(case_json(
        "header-nonce-wrong-length",
        "the header's sealed block with a 25-byte nonce",
        "Malformed",
        f.verify_input(RecordBundle {
            header: sealed_bytes(header_node.ciphertext, vec![0u8; 25], 1),
            ..base.clone()
        }),
    ));
    cases.push(case_json(
        "body-ciphertext-shorter-than-tag",
        "a sealed block with 15 ciphertext bytes as the body",
        "Malformed",
        f.verify_input(RecordBundle {
            body: sealed_bytes(vec![0u8; 15], vec![0u8; 24], 1),
            ..base.clone()
        }),
    ));

    // --- Envelopes re-sealed by someone holding the service key but not the log key ---------
    let envelope = f.envelope(&base);
    let plain = wire::encode(&envelope);
    let relabelled = f.reseal_raw(&base, &plain, BlockKind::Header);
    cases.push(case_json(
        "envelope-sealed-with-header-label",
        "the envelope plaintext sealed with the service key under the header's associated data",
        "CannotDecrypt",
        f.verify_input(relabelled),
    ));
    let first_env = f.envelope(&first);
    let without_prev = wire::encode(&EnvelopeWithoutPrev {
        author: first_env.author.clone(),
        counter: first_env.counter,
        event: first_env.event,
        clock: first_env.clock,
        signature: first_env.signature.clone(),
        thread: first_env.thread.clone(),
        version: first_env.version,
    });
    let no_prev = f.reseal_raw(&first, &without_prev, BlockKind::Record);
    cases.push(case_json(
        "envelope-without-prev",
        "a first record whose envelope omits \"p\" instead of writing null",
        "NonCanonical",
        f.verify_input(no_prev),
    ));
    let extra = wire::encode(&EnvelopeWithExtra {
        node: envelope.clone(),
        extra: 0,
    });
    let extra = f.reseal_raw(&base, &extra, BlockKind::Record);
    cases.push(case_json(
        "envelope-unknown-member",
        "the envelope plaintext with an extra member \"x\": 0",
        "Decode",
        f.verify_input(extra),
    ));
    type Edit = fn(&mut SignedRecordNode);
    let edits: [(&str, &str, &str, Edit); 7] = [
        (
            "envelope-version-2",
            "the envelope plaintext with \"v\": 2",
            "UnsupportedVersion",
            |n| n.version = 2,
        ),
        (
            "envelope-counter-0",
            "the envelope plaintext with \"c\": 0",
            "Malformed",
            |n| n.counter = 0,
        ),
        (
            "envelope-prev-null-counter-2",
            "the envelope of the second record with \"p\": null",
            "Malformed",
            |n| n.prev = None,
        ),
        (
            "envelope-clock-below-counter",
            "the envelope of the second record with \"l\": 1",
            "Malformed",
            |n| n.clock = 1,
        ),
        (
            "envelope-signature-63-bytes",
            "the envelope plaintext with the last signature byte removed",
            "Malformed",
            |n| {
                n.signature.pop();
            },
        ),
        (
            "envelope-author-not-a-key",
            "the envelope plaintext with an author of 35 bytes (last byte removed)",
            "Malformed",
            |n| {
                n.author.pop();
            },
        ),
        (
            "envelope-clock-changed",
            "the envelope plaintext with \"l\" raised by one and the original signature",
            "BadSignature",
            |n| n.clock += 1,
        ),
    ];
    for (name, description, kind, edit) in edits {
        let tampered = f.reseal(&base, edit);
        cases.push(case_json(name, description, kind, f.verify_input(tampered)));
    }

    // --- Records correctly signed by the log key around malformed inner blocks --------------
    let body_key = [0x77u8; 32];
    let good_header = HeaderNode {
        body_key: body_key.to_vec(),
        time: TIME_BASE,
        version: FORMAT_VERSION,
    };
    let forged = f.assemble_parts(BlockKind::Body, &good_header, &body_key, 2);
    cases.push(case_json(
        "event-version-2",
        "a signed record whose event block has \"v\": 2",
        "UnsupportedVersion",
        f.verify_input(forged),
    ));
    let forged = f.assemble_parts(
        BlockKind::Body,
        &HeaderNode {
            version: 2,
            ..good_header.clone()
        },
        &body_key,
        FORMAT_VERSION,
    );
    cases.push(case_json(
        "header-version-2",
        "a signed record whose header plaintext has \"v\": 2",
        "UnsupportedVersion",
        f.open_input(forged),
    ));
    let forged = f.assemble_parts(
        BlockKind::Body,
        &HeaderNode {
            body_key: body_key[..16].to_vec(),
            ..good_header.clone()
        },
        &body_key,
        FORMAT_VERSION,
    );
    cases.push(case_json(
        "header-body-key-16-bytes",
        "a signed record whose header holds a 16-byte body key",
        "Malformed",
        f.open_input(forged),
    ));
    let forged = f.assemble_parts(BlockKind::Header, &good_header, &body_key, FORMAT_VERSION);
    cases.push(case_json(
        "body-sealed-with-header-label",
        "a signed record whose body was sealed under the header's associated data",
        "CannotDecrypt",
        f.open_input(forged),
    ));

    json!({
        "description": "Rejection vectors (spec/formats.md, errors). stage decode_bundle: decode \
            bundle_hex as a record bundle. stage verify: verify the four blocks for thread_id and \
            log_id with the service key. stage open: the blocks verify, then opening them with \
            read_key_hex fails. error.kind and error.block are what every implementation must \
            report; error.display is the exact message of this implementation (for Decode errors \
            it includes the CBOR decoder's own wording).",
        "generator": GENERATE_COMMAND,
        "cases": cases,
    })
}
