//! `records.json`: a chain of records in one log and a record of a second log, with every
//! input, random draw and intermediate byte string of their creation.

use super::{GENERATE_COMMAND, RecordingRng, Setup, TIME_BASE, open_sealed};
use serde_json::{Value, json};
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::identity::PrivateKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::wire::{self, SignedRecordNode};
use threads_protocol::record::{
    self, BlockKind, FORMAT_VERSION, OpenedRecord, RecordDraft, SIGNING_DOMAIN, block_cid, seal,
};

/// Seed of the log key of log A in the record vectors.
const LOG_A_SEED: [u8; 32] = [0xa1; 32];
/// Seed of the log key of log B in the record vectors.
const LOG_B_SEED: [u8; 32] = [0xb2; 32];
/// Seed of the user identity that authors log A's records.
const AUTHOR_SEED: [u8; 32] = [0xc3; 32];

/// The body of `len` bytes used by the vectors: byte `i` is `i mod 251`.
fn pattern_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
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
