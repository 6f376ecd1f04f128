//! The test vectors in `spec/vectors/`: the committed files must be exactly what the generator
//! makes today, and they must check out when read the way another implementation would read
//! them (hand-built CBOR, CIDs, AEAD and signatures from the spec, not from the record code).

mod vectors_gen;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{Infallible, TryCryptoRng, TryRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::str::FromStr;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::key::{ReadKey, ServiceKey, ThreadKey};
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordBundle, RecordDraft, RecordError};

// ------------------------------------------------------------------------------------------
// Reading the files
// ------------------------------------------------------------------------------------------

fn load(name: &str) -> Value {
    let path = vectors_gen::vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("spec/vectors/{name} is not JSON: {e}"))
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} is not a string in {v}"))
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("field {field} is not an integer in {v}"))
}

fn h(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(s(v, field)).unwrap_or_else(|e| panic!("field {field} is not hex: {e}"))
}

fn key32(v: &Value, field: &str) -> [u8; 32] {
    h(v, field)
        .try_into()
        .unwrap_or_else(|_| panic!("field {field} is not 32 bytes"))
}

fn list<'a>(v: &'a Value, field: &str) -> &'a Vec<Value> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("field {field} is not an array"))
}

// ------------------------------------------------------------------------------------------
// A tiny DAG-CBOR writer and a CID builder, straight from spec/formats.md
// ------------------------------------------------------------------------------------------

/// A CBOR head with the shortest argument encoding.
fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v
        }
        0x1_0000..=0xffff_ffff => {
            let mut v = vec![m | 26];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 27];
            v.extend_from_slice(&n.to_be_bytes());
            v
        }
    }
}

fn cbor_uint(n: u64) -> Vec<u8> {
    head(0, n)
}

fn cbor_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = head(2, b.len() as u64);
    v.extend_from_slice(b);
    v
}

fn cbor_key(k: &str) -> Vec<u8> {
    let mut v = head(3, k.len() as u64);
    v.extend_from_slice(k.as_bytes());
    v
}

/// Tag 42 around `00 || binary CID`.
fn cbor_link(cid: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x00];
    inner.extend_from_slice(cid);
    let mut v = head(6, 42);
    v.extend(cbor_bytes(&inner));
    v
}

/// A map whose entries are already in canonical key order.
fn cbor_map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    for pair in entries.windows(2) {
        assert!(pair[0].0 < pair[1].0, "test bug: keys out of order");
    }
    let mut v = head(5, entries.len() as u64);
    for (k, val) in entries {
        v.extend(cbor_key(k));
        v.extend_from_slice(val);
    }
    v
}

/// The binary CIDv1 (dag-cbor, sha2-256) of a block.
fn cid_bytes(block: &[u8]) -> Vec<u8> {
    let mut v = vec![0x01, 0x71, 0x12, 0x20];
    v.extend_from_slice(&Sha256::digest(block));
    v
}

/// The text CID of a block: `b` + base32 lower-case without padding.
fn cid_string(block: &[u8]) -> String {
    multibase::encode(multibase::Base::Base32Lower, cid_bytes(block))
}

/// The binary form of a text CID of ours.
fn cid_from_string(text: &str) -> Vec<u8> {
    let (base, bytes) = multibase::decode(text).expect("valid multibase CID");
    assert_eq!(base, multibase::Base::Base32Lower);
    bytes
}

/// Splits a sealed block `{"c": ciphertext, "n": nonce, "v": 1}` by hand.
fn split_sealed(block: &[u8]) -> (Vec<u8>, [u8; 24]) {
    assert_eq!(&block[..3], &[0xa3, 0x61, 0x63], "sealed block prefix");
    let (len, at) = match block[3] {
        b @ 0x40..=0x57 => (usize::from(b - 0x40), 4),
        0x58 => (usize::from(block[4]), 5),
        0x59 => (usize::from(u16::from_be_bytes([block[4], block[5]])), 6),
        0x5a => (
            u32::from_be_bytes([block[4], block[5], block[6], block[7]]) as usize,
            8,
        ),
        other => panic!("unexpected ciphertext head {other:#x}"),
    };
    let ciphertext = block[at..at + len].to_vec();
    let rest = &block[at + len..];
    assert_eq!(&rest[..4], &[0x61, 0x6e, 0x58, 0x18], "nonce member");
    let nonce: [u8; 24] = rest[4..28].try_into().expect("24 bytes");
    assert_eq!(&rest[28..], &[0x61, 0x76, 0x01], "version member and end");
    (ciphertext, nonce)
}

fn aead_open(key: &[u8; 32], label: &str, block: &[u8]) -> (Vec<u8>, [u8; 24]) {
    let (ciphertext, nonce) = split_sealed(block);
    let plain = XChaCha20Poly1305::new(key.into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &ciphertext,
                aad: label.as_bytes(),
            },
        )
        .unwrap_or_else(|_| panic!("AEAD open with label {label} failed"));
    (plain, nonce)
}

// ------------------------------------------------------------------------------------------
// An RNG that replays the published random values
// ------------------------------------------------------------------------------------------

struct ReplayRng(VecDeque<Vec<u8>>);

impl TryRng for ReplayRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        panic!("record creation drew a u32; the spec says it only fills byte strings")
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        panic!("record creation drew a u64; the spec says it only fills byte strings")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let next = self
            .0
            .pop_front()
            .expect("record creation drew more values than the vector lists");
        assert_eq!(next.len(), dst.len(), "random draw of another length");
        dst.copy_from_slice(&next);
        Ok(())
    }
}

impl TryCryptoRng for ReplayRng {}

// ------------------------------------------------------------------------------------------
// (i) The files are what the generator makes
// ------------------------------------------------------------------------------------------

#[test]
fn committed_vectors_match_the_generator() {
    for (name, value) in vectors_gen::all() {
        let path = vectors_gen::vectors_dir().join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == vectors_gen::render(&value),
            "spec/vectors/{name} differs from what the code generates now. If the change is \
             intended, run `{}` and review the diff.",
            vectors_gen::GENERATE_COMMAND
        );
    }
}

// ------------------------------------------------------------------------------------------
// (ii) The files check out independently
// ------------------------------------------------------------------------------------------

#[test]
fn identifier_vectors_parse_to_their_bytes() {
    let file = load("identifiers.json");

    for v in list(&file, "thread_ids") {
        let bytes = h(v, "bytes_hex");
        let id = ThreadId::from_str(s(v, "string")).expect("id string parses");
        assert_eq!(id.as_bytes(), &bytes[..], "{}", s(v, "name"));
        let from_bytes = ThreadId::from_bytes(&bytes).expect("id bytes parse");
        assert_eq!(from_bytes.to_string(), s(v, "string"));
        assert_eq!(bytes[0], 0x01, "version byte");
        assert_eq!(u64::from(bytes[1]), u(v, "variant_code"));
        assert_eq!(&bytes[2..], &h(v, "random_hex")[..]);
        assert_eq!(id.variant().to_string(), s(v, "variant"));
        for other in list(v, "decode_only_strings") {
            let text = other.as_str().expect("string");
            assert_eq!(
                ThreadId::from_str(text).expect("parses").as_bytes(),
                &bytes[..]
            );
        }
        // The string is `b` + base32 of the bytes.
        assert_eq!(
            multibase::encode(multibase::Base::Base32Lower, &bytes),
            s(v, "string")
        );
    }

    for v in list(&file, "thread_keys") {
        let bytes = h(v, "bytes_hex");
        let key = ThreadKey::from_str(s(v, "string")).expect("key string parses");
        assert_eq!(key.to_bytes(), bytes);
        assert_eq!(key.service().as_bytes()[..], h(v, "service_key_hex")[..]);
        match v["read_key_hex"].as_str() {
            Some(read) => {
                assert_eq!(bytes.len(), 64);
                assert_eq!(
                    hex::encode(key.read().expect("has a read key").as_bytes()),
                    read
                );
            }
            None => {
                assert_eq!(bytes.len(), 32);
                assert!(key.read().is_none());
            }
        }
        assert_eq!(
            ThreadKey::from_bytes(&bytes).expect("parses").to_string(),
            s(v, "string")
        );
    }

    for v in list(&file, "identities") {
        let name = s(v, "name");
        let key = PrivateKey::from_seed(key32(v, "seed_hex"));
        let public = key.public();
        assert_eq!(public.to_raw()[..], h(v, "raw_public_hex")[..], "{name}");
        let mut protobuf = vec![0x08, 0x01, 0x12, 0x20];
        protobuf.extend(h(v, "raw_public_hex"));
        assert_eq!(protobuf, h(v, "public_protobuf_hex"), "{name}");
        let parsed = PublicKey::from_str(s(v, "public_string")).expect("public string parses");
        assert_eq!(parsed.to_protobuf()[..], protobuf[..]);
        assert_eq!(
            PublicKey::from_protobuf(&protobuf)
                .expect("parses")
                .to_string(),
            s(v, "public_string")
        );
        let private = PrivateKey::from_str(s(v, "private_string")).expect("private parses");
        assert_eq!(private.to_protobuf(), h(v, "private_protobuf_hex"));
        assert_eq!(private.seed(), key32(v, "seed_hex"));
        let peer = LogId::from_str(s(v, "peer_id")).expect("peer id parses");
        let mut peer_bytes = vec![0x00, 0x24];
        peer_bytes.extend(&protobuf);
        assert_eq!(&peer.as_bytes()[..], &peer_bytes[..]);
        assert_eq!(peer_bytes, h(v, "peer_id_bytes_hex"));
        assert_eq!(bs58::encode(&peer_bytes).into_string(), s(v, "peer_id"));
        assert_eq!(peer.public_key(), public);
        let message = h(v, "message_hex");
        let signature = h(v, "signature_hex");
        assert_eq!(
            key.sign(&message)[..],
            signature[..],
            "{name}: signatures are deterministic"
        );
        public
            .verify(&message, &signature)
            .expect("signature verifies");
        let sig = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
        ed25519_dalek::VerifyingKey::from_bytes(&key32(v, "raw_public_hex"))
            .expect("valid point")
            .verify_strict(&message, &sig)
            .expect("strict RFC 8032 verification");
    }

    for v in list(&file, "thread_addrs") {
        let bytes = h(v, "bytes_hex");
        let addr = ThreadAddr::from_str(s(v, "string")).expect("address parses");
        assert_eq!(addr.to_bytes(), bytes, "{}", s(v, "name"));
        let back = ThreadAddr::from_bytes(&bytes).expect("address bytes parse");
        assert_eq!(back.to_string(), s(v, "string"));
        assert_eq!(back.thread.to_string(), s(v, "thread_id"));
        assert_eq!(
            back.peer().map(|p| p.to_string()).as_deref(),
            v["peer_id"].as_str()
        );
        // The `/thread` component is the tail: 96 03 || len || id bytes.
        let id = ThreadId::from_str(s(v, "thread_id")).expect("id parses");
        let mut tail = vec![0x96, 0x03, id.as_bytes().len() as u8];
        tail.extend_from_slice(id.as_bytes());
        assert!(bytes.ends_with(&tail));
    }
}

#[test]
fn record_vectors_check_out_independently() {
    let file = load("records.json");
    let domain = h(&file, "signing_domain_hex");
    assert_eq!(domain, b"threaddb/v1/record-signature\0");
    assert_eq!(u(&file, "format_version"), 1);
    let labels = &file["aead_labels"];
    let (record_label, header_label, body_label) =
        (s(labels, "record"), s(labels, "header"), s(labels, "body"));
    let records = list(&file, "records");
    assert_eq!(records.len(), 4);
    let mut last_cid_of_log: std::collections::HashMap<String, String> = Default::default();

    for v in records {
        let name = s(v, "name");
        let input = &v["inputs"];
        let random = &v["random"];
        let out = &v["outputs"];

        // Inputs.
        let thread = ThreadId::from_str(s(input, "thread_id")).expect("thread id");
        assert_eq!(thread.as_bytes(), &h(input, "thread_id_hex")[..]);
        let service = key32(input, "service_key_hex");
        let read = key32(input, "read_key_hex");
        let log_key = PrivateKey::from_seed(key32(input, "log_seed_hex"));
        assert_eq!(log_key.to_protobuf(), h(input, "log_private_protobuf_hex"));
        let log = LogId::from_str(s(input, "log_id")).expect("log id");
        assert_eq!(&log.as_bytes()[..], &h(input, "log_id_hex")[..]);
        assert_eq!(
            log.public_key(),
            log_key.public(),
            "{name}: log id is the log key's peer id"
        );
        let author_pb = h(input, "author_public_protobuf_hex");
        let author = PublicKey::from_protobuf(&author_pb).expect("author");
        assert_eq!(author.to_string(), s(input, "author"));
        let counter = u(input, "counter");
        let clock = u(input, "clock");
        let prev = input["prev"].as_str();
        let time: u64 = s(input, "time").parse().expect("decimal time");
        let body = h(input, "body_hex");
        let log_name = s(v, "log").to_string();
        assert_eq!(
            prev,
            last_cid_of_log.get(&log_name).map(String::as_str),
            "{name}: prev is the previous record of the same log"
        );
        assert_eq!(prev.is_none(), counter == 1);

        let body_key = key32(random, "body_key_hex");
        let body_block = h(out, "body_block_hex");
        let header_block = h(out, "header_block_hex");
        let event_block = h(out, "event_block_hex");
        let record_block = h(out, "record_block_hex");

        // CIDs.
        assert_eq!(cid_string(&body_block), s(out, "body_cid"), "{name}");
        assert_eq!(cid_string(&header_block), s(out, "header_cid"), "{name}");
        assert_eq!(cid_string(&event_block), s(out, "event_cid"), "{name}");
        assert_eq!(cid_string(&record_block), s(out, "record_cid"), "{name}");

        // Body: sealed with the per-event key under the body label.
        let (plain, nonce) = aead_open(&body_key, body_label, &body_block);
        assert_eq!(plain, body, "{name}: body plaintext");
        assert_eq!(nonce[..], h(random, "body_nonce_hex")[..]);

        // Header: {"k": body key, "t": time, "v": 1} sealed with the read key.
        let header_plain = cbor_map(&[
            ("k", cbor_bytes(&body_key)),
            ("t", cbor_uint(time)),
            ("v", cbor_uint(1)),
        ]);
        assert_eq!(header_plain, h(out, "header_plaintext_hex"), "{name}");
        let (plain, nonce) = aead_open(&read, header_label, &header_block);
        assert_eq!(plain, header_plain, "{name}: header plaintext");
        assert_eq!(nonce[..], h(random, "header_nonce_hex")[..]);

        // Event: {"b": link(body), "h": link(header), "v": 1}, in clear.
        let event = cbor_map(&[
            ("b", cbor_link(&cid_bytes(&body_block))),
            ("h", cbor_link(&cid_bytes(&header_block))),
            ("v", cbor_uint(1)),
        ]);
        assert_eq!(event, event_block, "{name}: event block");

        // Signed map and signature.
        let prev_value = match prev {
            Some(text) => cbor_link(&cid_from_string(text)),
            None => vec![0xf6],
        };
        let mut unsigned: Vec<(&str, Vec<u8>)> = vec![
            ("a", cbor_bytes(&author_pb)),
            ("c", cbor_uint(counter)),
            ("e", cbor_link(&cid_bytes(&event_block))),
            ("l", cbor_uint(clock)),
            ("p", prev_value),
            ("t", cbor_bytes(thread.as_bytes())),
            ("v", cbor_uint(1)),
        ];
        let mut signing_input = domain.clone();
        signing_input.extend(cbor_map(&unsigned));
        assert_eq!(
            signing_input,
            h(out, "signing_input_hex"),
            "{name}: signing input"
        );
        let signature = h(out, "signature_hex");
        let sig = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
        ed25519_dalek::VerifyingKey::from_bytes(&log_key.public().to_raw())
            .expect("valid key")
            .verify_strict(&signing_input, &sig)
            .expect("signature verifies strictly");
        assert_eq!(log_key.sign(&signing_input)[..], signature[..]);

        // Envelope: the signed map plus "s", sealed with the service key.
        unsigned.insert(5, ("s", cbor_bytes(&signature)));
        let envelope = cbor_map(&unsigned);
        assert_eq!(
            envelope,
            h(out, "envelope_plaintext_hex"),
            "{name}: envelope"
        );
        let (plain, nonce) = aead_open(&service, record_label, &record_block);
        assert_eq!(plain, envelope, "{name}: envelope plaintext");
        assert_eq!(nonce[..], h(random, "envelope_nonce_hex")[..]);

        // Bundle.
        let bundle_bytes = cbor_map(&[
            ("b", cbor_bytes(&body_block)),
            ("e", cbor_bytes(&event_block)),
            ("h", cbor_bytes(&header_block)),
            ("r", cbor_bytes(&record_block)),
            ("v", cbor_uint(1)),
        ]);
        assert_eq!(bundle_bytes, h(out, "bundle_hex"), "{name}: bundle");

        // The library accepts it and reads back every input.
        let bundle = RecordBundle::decode(&bundle_bytes).expect("bundle decodes");
        let verified = record::verify(
            bundle.clone(),
            &thread,
            &log,
            &ServiceKey::from_bytes(service),
        )
        .expect("record verifies");
        assert_eq!(verified.cid().to_string(), s(out, "record_cid"));
        assert_eq!(verified.counter().get(), counter);
        assert_eq!(verified.clock().0, clock);
        assert_eq!(verified.prev().map(|c| c.to_string()).as_deref(), prev);
        assert_eq!(verified.author(), &author);
        assert_eq!(verified.signature()[..], signature[..]);
        let opened = record::open(verified, &ReadKey::from_bytes(read)).expect("record opens");
        assert_eq!(opened.body(), &body[..]);
        assert_eq!(opened.time(), time);

        // Creating from the inputs with the published random values gives the same bytes.
        let mut rng = ReplayRng(
            [
                "body_key_hex",
                "body_nonce_hex",
                "header_nonce_hex",
                "envelope_nonce_hex",
            ]
            .iter()
            .map(|f| h(random, f))
            .collect(),
        );
        let prev_cid = prev.map(|p| cid::Cid::from_str(p).expect("CID"));
        let draft = RecordDraft {
            thread: &thread,
            author: &author,
            prev: prev_cid,
            counter: LogCounter::new(counter).expect("counter >= 1"),
            clock: LamportClock(clock),
            time,
            body: &body,
        };
        let key = ThreadKey::new(
            ServiceKey::from_bytes(service),
            Some(ReadKey::from_bytes(read)),
        );
        let created = record::create(&draft, &log_key, &key, &mut rng).expect("create");
        assert!(
            rng.0.is_empty(),
            "{name}: creation drew fewer values than listed"
        );
        assert_eq!(created.record().bundle(), &bundle, "{name}: re-creation");

        last_cid_of_log.insert(log_name, s(out, "record_cid").to_string());
    }
}

fn run_case(case: &Value) -> Result<(), RecordError> {
    let stage = s(case, "stage");
    if stage == "decode_bundle" {
        return RecordBundle::decode(&h(case, "bundle_hex")).map(drop);
    }
    let blocks = &case["blocks"];
    let bundle = RecordBundle {
        record: h(blocks, "record_hex"),
        event: h(blocks, "event_hex"),
        header: h(blocks, "header_hex"),
        body: h(blocks, "body_hex"),
    };
    let thread = ThreadId::from_str(s(case, "thread_id")).expect("thread id");
    let log = LogId::from_str(s(case, "log_id")).expect("log id");
    let service = ServiceKey::from_bytes(key32(case, "service_key_hex"));
    let verified = record::verify(bundle, &thread, &log, &service);
    match stage {
        "verify" => verified.map(drop),
        "open" => {
            let verified = verified.expect("open-stage cases verify");
            record::open(verified, &ReadKey::from_bytes(key32(case, "read_key_hex"))).map(drop)
        }
        other => panic!("unknown stage {other}"),
    }
}

#[test]
fn rejection_vectors_fail_with_their_error() {
    let file = load("rejections.json");
    let mut kinds = std::collections::BTreeSet::new();
    for case in list(&file, "cases") {
        let name = s(case, "name");
        let err = match run_case(case) {
            Ok(()) => panic!("rejection vector {name} was accepted"),
            Err(e) => e,
        };
        let expected = &case["error"];
        assert_eq!(
            vectors_gen::error_kind(&err),
            s(expected, "kind"),
            "{name}: {err}"
        );
        assert_eq!(
            vectors_gen::error_block(&err).as_deref(),
            expected["block"].as_str(),
            "{name}: {err}"
        );
        assert_eq!(err.to_string(), s(expected, "display"), "{name}");
        kinds.insert(s(expected, "kind").to_string());
    }
    // Every way a bundle can be refused is pinned (NoReadKey is about creating, not reading).
    for kind in [
        "TooLarge",
        "Decode",
        "NonCanonical",
        "UnsupportedVersion",
        "Malformed",
        "CannotDecrypt",
        "LinkMismatch",
        "WrongThread",
        "BadSignature",
    ] {
        assert!(kinds.contains(kind), "no rejection vector for {kind}");
    }
}
