//! `rejections.json`: tampered, mismatched and malformed records, each with the exact error
//! it must produce, checked against this implementation as the file is made.

use super::forge::{EnvelopeWithExtra, EnvelopeWithoutPrev, Forge, flip, sealed_bytes};
use super::{GENERATE_COMMAND, Setup, TIME_BASE, counting, error_block, error_kind};
use serde_json::{Value, json};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::ServiceKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::wire::{self, HeaderNode, SignedRecordNode};
use threads_protocol::record::{
    self, BlockKind, FORMAT_VERSION, MAX_META_BLOCK_LEN, RecordBundle, RecordError, block_cid, seal,
};
use threads_protocol::rng::seeded;

/// What a rejection case feeds to the implementation.
pub(super) enum Input {
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
