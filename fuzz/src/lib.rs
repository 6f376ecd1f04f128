//! Shared pieces of the fuzz targets: the fixed thread, keys and log that `record_verify` checks
//! records against, helpers that wrap fuzzer bytes into otherwise valid records, and the seed
//! corpus (valid encodings of everything the targets parse).

pub mod reducer;

use std::sync::OnceLock;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::wire::{self, EventNode, HeaderNode, SignedRecordNode};
use threads_protocol::record::{
    self, BlockKind, FORMAT_VERSION, RecordBundle, RecordDraft, SIGNING_DOMAIN, block_cid, seal,
};
use threads_protocol::rng::seeded;

/// The nonce the harness seals fuzzer-made plaintexts with (fresh nonces do not matter here).
const HARNESS_NONCE: [u8; 24] = [0x24; 24];

/// The fixed thread, keys and log the record targets use, with one valid record of that log.
pub struct Context {
    /// The thread records are offered for.
    pub thread: ThreadId,
    /// Its service and read keys.
    pub key: ThreadKey,
    /// The log's private key (the harness signs records with it).
    pub log_key: PrivateKey,
    /// The log records are offered for.
    pub log: LogId,
    /// A valid first record of the log, whose blocks the harness reuses.
    pub valid: RecordBundle,
    /// A valid second record of the log.
    pub valid_second: RecordBundle,
}

/// The context, built once per process.
pub fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let mut rng = seeded(100);
        let thread = ThreadId::random(Variant::Raw, &mut rng);
        let key = ThreadKey::random(&mut rng, true);
        let log_key = PrivateKey::from_seed([0xa1; 32]);
        let author = PrivateKey::from_seed([0xc3; 32]).public();
        let log = LogId::from_public_key(&log_key.public());
        let mut make = |counter: u64, prev, body: &[u8]| {
            let draft = RecordDraft {
                thread: &thread,
                author: &author,
                prev,
                counter: LogCounter::new(counter).expect("counter >= 1"),
                clock: LamportClock(counter),
                time: 1_700_000_000_000_000_000,
                body,
            };
            record::create(&draft, &log_key, &key, &mut rng)
                .expect("a valid draft")
                .into_record()
                .into_bundle()
        };
        let valid = make(1, None, b"fuzz seed body");
        let valid_second = make(2, Some(block_cid(&valid.record)), &[0x42; 64]);
        Context {
            thread,
            key,
            log_key,
            log,
            valid,
            valid_second,
        }
    })
}

impl Context {
    /// Seals `plaintext` as an envelope with the service key.
    pub fn seal_envelope(&self, plaintext: &[u8]) -> Vec<u8> {
        seal::seal_with_nonce(
            BlockKind::Record,
            self.key.service().as_bytes(),
            plaintext,
            HARNESS_NONCE,
        )
    }

    /// Seals `plaintext` as a header with the read key.
    pub fn seal_header(&self, plaintext: &[u8]) -> Vec<u8> {
        let read = self.key.read().expect("the fuzz key has a read key");
        seal::seal_with_nonce(BlockKind::Header, read.as_bytes(), plaintext, HARNESS_NONCE)
    }

    /// A first record of the log around the given event, header and body blocks, correctly
    /// signed and sealed whatever the blocks hold.
    pub fn signed_record(&self, event: Vec<u8>, header: Vec<u8>, body: Vec<u8>) -> RecordBundle {
        let unsigned = wire::UnsignedRecordNode {
            author: self.log_key.public().to_protobuf().to_vec(),
            counter: 1,
            event: block_cid(&event),
            clock: 1,
            prev: None,
            thread: self.thread.as_bytes().to_vec(),
            version: FORMAT_VERSION,
        };
        let mut input = SIGNING_DOMAIN.to_vec();
        input.extend_from_slice(&wire::encode(&unsigned));
        let signed = SignedRecordNode {
            signature: self.log_key.sign(&input).to_vec(),
            author: unsigned.author,
            counter: unsigned.counter,
            event: unsigned.event,
            clock: unsigned.clock,
            prev: unsigned.prev,
            thread: unsigned.thread,
            version: unsigned.version,
        };
        RecordBundle {
            record: self.seal_envelope(&wire::encode(&signed)),
            event,
            header,
            body,
        }
    }

    /// The plaintexts of the valid record's envelope and header.
    pub fn valid_plaintexts(&self) -> (Vec<u8>, Vec<u8>) {
        let open = |block, key: &[u8; 32], bytes: &[u8]| {
            let node = seal::parse(block, bytes, usize::MAX).expect("our block parses");
            seal::open(block, key, &node).expect("our block opens")
        };
        let read = self.key.read().expect("the fuzz key has a read key");
        (
            open(
                BlockKind::Record,
                self.key.service().as_bytes(),
                &self.valid.record,
            ),
            open(BlockKind::Header, read.as_bytes(), &self.valid.header),
        )
    }
}

/// Length of the known log of [`chain`].
pub const CHAIN_LEN: usize = 6;

/// Valid records of the context's log, for the `peer_message` target: a chain of
/// [`CHAIN_LEN`] records (counters 1 to 6, each linked to the one before, clocks rising), and
/// a fork: a second, validly signed record at counter 3 after the chain's record 2.
pub struct Chain {
    /// The chain, in log order.
    pub records: Vec<RecordBundle>,
    /// The fork at counter 3.
    pub fork: RecordBundle,
}

/// The chain of the context's log, built once per process.
pub fn chain() -> &'static Chain {
    static CHAIN: OnceLock<Chain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let ctx = context();
        let mut rng = seeded(101);
        let author = PrivateKey::from_seed([0xc3; 32]).public();
        let mut make = |counter: u64, prev: Option<&RecordBundle>, body: &[u8]| {
            let draft = RecordDraft {
                thread: &ctx.thread,
                author: &author,
                prev: prev.map(|p| block_cid(&p.record)),
                counter: LogCounter::new(counter).expect("counter >= 1"),
                clock: LamportClock(counter),
                time: 1_700_000_000_000_000_000 + counter,
                body,
            };
            record::create(&draft, &ctx.log_key, &ctx.key, &mut rng)
                .expect("a valid draft")
                .into_record()
                .into_bundle()
        };
        let mut records: Vec<RecordBundle> = Vec::with_capacity(CHAIN_LEN);
        for counter in 1..=CHAIN_LEN as u64 {
            let body = vec![counter as u8; 8 * counter as usize];
            let record = make(counter, records.last(), &body);
            records.push(record);
        }
        let fork = make(3, records.get(1), b"the other branch");
        Chain { records, fork }
    })
}

/// Selector bytes of the `record_blocks` target: which decoder the rest of the input goes to.
pub mod blocks {
    /// `seal::parse` of an envelope block.
    pub const SEALED_RECORD: u8 = 0;
    /// `seal::parse` of a header block.
    pub const SEALED_HEADER: u8 = 1;
    /// `seal::parse` of a body block.
    pub const SEALED_BODY: u8 = 2;
    /// `wire::decode` of an event node.
    pub const EVENT: u8 = 3;
    /// `wire::decode` of a header plaintext.
    pub const HEADER: u8 = 4;
    /// `wire::decode` of an envelope plaintext.
    pub const SIGNED_RECORD: u8 = 5;
    /// `wire::decode` of an unsigned record map.
    pub const UNSIGNED_RECORD: u8 = 6;
    /// `wire::decode` of a bundle.
    pub const BUNDLE: u8 = 7;
    /// Number of selectors; the selector is the first byte modulo this.
    pub const COUNT: u8 = 8;
}

/// Modes of the `record_verify` target: what the rest of the input is.
pub mod verify_mode {
    /// A whole encoded bundle.
    pub const BUNDLE: u8 = 0;
    /// An envelope plaintext, sealed by the harness, with the valid record's other blocks.
    pub const ENVELOPE_PLAINTEXT: u8 = 1;
    /// An event block, in a record the harness signs, with the valid header and body.
    pub const EVENT: u8 = 2;
    /// A header plaintext, sealed and linked by the harness in a signed record.
    pub const HEADER_PLAINTEXT: u8 = 3;
    /// Number of modes; the mode is the first byte modulo this.
    pub const COUNT: u8 = 4;
}

/// Seeds of the structured `peer_message` target: its input is read by `arbitrary`, so any
/// bytes are a scenario; these spell a few that reach ingest at once (the first bytes pick the
/// action kinds: pushes and pages of valid records of the known log, a pull, heights).
fn peer_message_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![Vec::new(), vec![0; 64], vec![0xff; 64]];
    for kind in 0u8..16 {
        // An action kind, then small choices: log 0 (the known log), record indices 0, 1, 2.
        let mut s = Vec::new();
        for step in 0u8..6 {
            s.extend_from_slice(&[kind, 0, step, 3, 0, 0, step, 0, 1, 0, 2, 0]);
        }
        seeds.push(s);
    }
    seeds
}

fn prefixed(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(bytes);
    out
}

/// Valid inputs for every target, as (target name, inputs).
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let ctx = context();
    let counting: Vec<u8> = (0u8..32).collect();
    let raw = ThreadId::new(Variant::Raw, &counting).expect("valid id");
    let ac = ThreadId::new(Variant::AccessControlled, &counting[..16]).expect("valid id");
    let ids = vec![
        raw.to_vec(),
        raw.to_string().into_bytes(),
        ac.to_vec(),
        ac.to_string().into_bytes(),
        ctx.thread.to_vec(),
    ];
    let keys = vec![
        ctx.key.to_bytes(),
        ctx.key.to_string().into_bytes(),
        ctx.key.without_read().to_bytes(),
        ctx.key.without_read().to_string().into_bytes(),
    ];
    let private = PrivateKey::from_seed([0x07; 32]);
    let identities = vec![
        private.public().to_protobuf().to_vec(),
        private.public().to_string().into_bytes(),
        private.to_protobuf(),
        private.to_string().into_bytes(),
    ];
    let peer = LogId::from_public_key(&private.public());
    let log_ids = vec![peer.as_bytes().to_vec(), peer.to_string().into_bytes()];
    let host = format!("/ip4/127.0.0.1/tcp/4006/p2p/{peer}")
        .parse()
        .expect("valid multiaddr");
    let addr = ThreadAddr::new(host, raw);
    let addrs = vec![addr.to_bytes(), addr.to_string().into_bytes()];
    let bundles = vec![ctx.valid.encode(), ctx.valid_second.encode()];
    let (envelope, header) = ctx.valid_plaintexts();
    let verify = vec![
        prefixed(verify_mode::BUNDLE, &ctx.valid.encode()),
        prefixed(verify_mode::BUNDLE, &ctx.valid_second.encode()),
        prefixed(verify_mode::ENVELOPE_PLAINTEXT, &envelope),
        prefixed(verify_mode::EVENT, &ctx.valid.event),
        prefixed(verify_mode::HEADER_PLAINTEXT, &header),
    ];
    let unsigned = {
        let node: SignedRecordNode =
            wire::decode(BlockKind::Record, &envelope, usize::MAX).expect("our envelope decodes");
        wire::encode(&node.unsigned())
    };
    let header_node: HeaderNode =
        wire::decode(BlockKind::Header, &header, usize::MAX).expect("our header decodes");
    let event_node: EventNode =
        wire::decode(BlockKind::Event, &ctx.valid.event, usize::MAX).expect("our event decodes");
    let block_seeds = vec![
        prefixed(blocks::SEALED_RECORD, &ctx.valid.record),
        prefixed(blocks::SEALED_HEADER, &ctx.valid.header),
        prefixed(blocks::SEALED_BODY, &ctx.valid.body),
        prefixed(blocks::EVENT, &wire::encode(&event_node)),
        prefixed(blocks::HEADER, &wire::encode(&header_node)),
        prefixed(blocks::SIGNED_RECORD, &envelope),
        prefixed(blocks::UNSIGNED_RECORD, &unsigned),
        prefixed(blocks::BUNDLE, &ctx.valid.encode()),
    ];
    vec![
        ("thread_id", ids),
        ("thread_key", keys),
        ("identity", identities),
        ("log_id", log_ids),
        ("thread_addr", addrs),
        ("record_bundle", bundles),
        ("record_verify", verify),
        ("record_blocks", block_seeds),
        ("peer_message", peer_message_seeds()),
        ("reducer_batch", reducer::batch_seeds()),
    ]
}
