//! `identifiers.json`: thread ids, thread keys, identities and thread addresses.

use super::{GENERATE_COMMAND, counting};
use serde_json::{Value, json};
use threads_protocol::addr::ThreadAddr;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::rng::seeded;

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
