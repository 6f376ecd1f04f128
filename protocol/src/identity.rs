//! Ed25519 identities (users, hosts, logs) in the libp2p protobuf key framing.
//!
//! A key is serialized as the protobuf message `{ 1: KeyType (varint), 2: Data (bytes) }`:
//!
//! * public key: `08 01 12 20 || key (32)` — 36 bytes;
//! * private key: `08 01 12 40 || seed (32) || public key (32)` — 68 bytes; the legacy form
//!   `08 01 12 60 || seed || public || public` (100 bytes) is accepted on input, never emitted.
//!
//! The string form of either is multibase base32 (`b...`) of those bytes; parsing accepts any
//! multibase. Public key strings always start with `bbaarei`.
//!
//! Decisions:
//! * **Only Ed25519 (key type 1) is supported.** go-threads accepts any libp2p key type for
//!   identities, but the JS client and every go-threads component that creates keys only make
//!   Ed25519 ones. Other types are rejected with [`IdentityError::UnsupportedKeyType`].
//! * **Parsing is strict**: the framing bytes must be exactly the ones above (fields in order,
//!   minimal varints, no unknown fields, no trailing bytes), and a private key's embedded public
//!   key must match its seed. Every malformed input is a typed error.
//! * **Verification is strict** ([`ed25519_dalek::VerifyingKey::verify_strict`]): besides plain
//!   RFC 8032 checks it rejects small-order public keys and non-canonical signatures, so a weak
//!   key cannot produce signatures that verify for many messages. Honest signers are unaffected.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::log_id::LogId;
use crate::multibase_str::{self, MultibaseError};

/// libp2p key type number of Ed25519.
pub const ED25519_KEY_TYPE: u64 = 1;
/// Length of the public key protobuf.
pub const PUBLIC_PROTOBUF_LEN: usize = 36;
/// Length of the private key protobuf we emit.
pub const PRIVATE_PROTOBUF_LEN: usize = 68;
/// Length of the legacy private key protobuf we still accept.
pub const LEGACY_PRIVATE_PROTOBUF_LEN: usize = 100;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const PUBLIC_HEADER: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
const PRIVATE_HEADER: [u8; 4] = [0x08, 0x01, 0x12, 0x40];

/// Why a key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The string is not valid multibase.
    #[error("invalid key string: {0}")]
    Multibase(#[from] MultibaseError),
    /// The bytes are not a well-formed libp2p key protobuf.
    #[error("malformed key protobuf: {0}")]
    Malformed(&'static str),
    /// The key type is not Ed25519.
    #[error("unsupported key type {0}: only Ed25519 (1) is supported")]
    UnsupportedKeyType(u64),
    /// The key data has the wrong length for an Ed25519 key of this kind.
    #[error("invalid Ed25519 {kind} key data length {got}: expected {expected}")]
    DataLength {
        /// "public" or "private".
        kind: &'static str,
        /// Length found.
        got: usize,
        /// Accepted length(s), as text.
        expected: &'static str,
    },
    /// The 32 public key bytes are not a point on the curve.
    #[error("invalid Ed25519 public key: not a valid curve point")]
    InvalidPoint,
    /// The public key embedded in a private key is not the one its seed derives.
    #[error("private key is inconsistent: its embedded public key does not match its seed")]
    KeyMismatch,
    /// A signature is not 64 bytes long.
    #[error("invalid signature length {0}: Ed25519 signatures are 64 bytes")]
    SignatureLength(usize),
    /// The signature does not verify for this key and message.
    #[error("signature verification failed")]
    BadSignature,
}

/// Reads a minimal protobuf varint (at most 10 bytes); returns the value and the rest.
fn read_varint(buf: &[u8]) -> Result<(u64, &[u8]), IdentityError> {
    unsigned_varint::decode::u64(buf)
        .map_err(|_| IdentityError::Malformed("invalid or truncated varint"))
}

/// Splits a libp2p key protobuf into its Ed25519 key data, checking the framing strictly.
fn parse_frame(bytes: &[u8]) -> Result<&[u8], IdentityError> {
    let rest = match bytes.split_first() {
        None => return Err(IdentityError::Malformed("empty input")),
        Some((0x08, rest)) => rest,
        Some(_) => {
            return Err(IdentityError::Malformed(
                "expected the key type field (tag 0x08) first",
            ));
        }
    };
    let (key_type, rest) = read_varint(rest)?;
    if key_type != ED25519_KEY_TYPE {
        return Err(IdentityError::UnsupportedKeyType(key_type));
    }
    let rest = match rest.split_first() {
        Some((0x12, rest)) => rest,
        _ => {
            return Err(IdentityError::Malformed(
                "expected the key data field (tag 0x12) after the key type",
            ));
        }
    };
    let (len, data) = read_varint(rest)?;
    match usize::try_from(len) {
        Ok(len) if len == data.len() => Ok(data),
        Ok(len) if len < data.len() => Err(IdentityError::Malformed(
            "unexpected bytes after the key data",
        )),
        _ => Err(IdentityError::Malformed(
            "key data shorter than its declared length",
        )),
    }
}

/// An Ed25519 public key: the identity of a user, host or log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// How many recently decoded public keys each thread keeps.
const DECODED_KEYS: usize = 16;

/// Recently decoded keys (raw bytes and key), and the slot to fill next.
type DecodedKeys = ([Option<([u8; 32], PublicKey)>; DECODED_KEYS], usize);

std::thread_local! {
    /// Public keys recently decoded on this thread: decoding decompresses a curve point (a
    /// tenth of a signature check), and the same few keys (log ids, authors, peers) are decoded
    /// again and again. Only keys that decoded are kept, so the outcome is the same as decoding
    /// every time.
    static DECODED: std::cell::RefCell<DecodedKeys> =
        const { std::cell::RefCell::new(([None; DECODED_KEYS], 0)) };
}

impl PublicKey {
    /// Builds a key from its 32 raw bytes, checking that they are a valid curve point.
    pub fn from_raw(raw: &[u8; 32]) -> Result<Self, IdentityError> {
        let cached = DECODED.with(|c| {
            let c = c.borrow();
            c.0.iter()
                .flatten()
                .find(|(b, _)| b == raw)
                .map(|(_, k)| *k)
        });
        if let Some(key) = cached {
            return Ok(key);
        }
        let key = VerifyingKey::from_bytes(raw)
            .map(Self)
            .map_err(|_| IdentityError::InvalidPoint)?;
        DECODED.with(|c| {
            let mut c = c.borrow_mut();
            let slot = c.1 % DECODED_KEYS;
            c.0[slot] = Some((*raw, key));
            c.1 = slot + 1;
        });
        Ok(key)
    }

    /// The 32 raw key bytes.
    pub fn to_raw(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 36-byte libp2p protobuf form `08 01 12 20 || key`.
    pub fn to_protobuf(&self) -> [u8; PUBLIC_PROTOBUF_LEN] {
        let mut out = [0u8; PUBLIC_PROTOBUF_LEN];
        out[..4].copy_from_slice(&PUBLIC_HEADER);
        out[4..].copy_from_slice(self.0.as_bytes());
        out
    }

    /// Parses the libp2p protobuf form (Ed25519 only, strict framing).
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, IdentityError> {
        let data = parse_frame(bytes)?;
        let raw: &[u8; 32] = data.try_into().map_err(|_| IdentityError::DataLength {
            kind: "public",
            got: data.len(),
            expected: "32",
        })?;
        Self::from_raw(raw)
    }

    /// Verifies an Ed25519 signature (strict RFC 8032, see the module doc) over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), IdentityError> {
        let sig =
            Signature::from_slice(sig).map_err(|_| IdentityError::SignatureLength(sig.len()))?;
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| IdentityError::BadSignature)
    }

    /// The libp2p peer id of this key, which is also the id of a log it owns.
    pub fn peer_id(&self) -> LogId {
        LogId::from_public_key(self)
    }

    /// The underlying `ed25519-dalek` key.
    pub const fn as_dalek(&self) -> &VerifyingKey {
        &self.0
    }
}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state);
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl fmt::Display for PublicKey {
    /// Multibase base32 of the protobuf form (`bbaarei...`), as `thread.PubKey` strings are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase_str::encode_b32(self.to_protobuf()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = IdentityError;

    /// Parses a multibase string (any base) of the protobuf form.
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let bytes = multibase_str::decode_bounded(s, PUBLIC_PROTOBUF_LEN)?;
        Self::from_protobuf(&bytes)
    }
}

/// An Ed25519 private key. `Debug` prints only the public half.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// A fresh key whose 32-byte seed is drawn from `rng`.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The key derived from a 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed. Secret.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `msg` (plain RFC 8032 Ed25519, deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }

    /// The 68-byte libp2p protobuf form `08 01 12 40 || seed || public`. Secret.
    pub fn to_protobuf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PRIVATE_PROTOBUF_LEN);
        out.extend_from_slice(&PRIVATE_HEADER);
        out.extend_from_slice(&self.0.to_bytes());
        out.extend_from_slice(self.0.verifying_key().as_bytes());
        out
    }

    /// Parses the libp2p protobuf form: 64-byte data (`seed || public`) or the legacy 96-byte
    /// data (`seed || public || public`). Every embedded public key must match the seed.
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, IdentityError> {
        let data = parse_frame(bytes)?;
        if data.len() != 64 && data.len() != 96 {
            return Err(IdentityError::DataLength {
                kind: "private",
                got: data.len(),
                expected: "64 (or legacy 96)",
            });
        }
        let (seed, publics) = data.split_at(32);
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| IdentityError::Malformed("private key seed"))?;
        let key = Self::from_seed(seed);
        let derived = key.0.verifying_key();
        if publics.chunks(32).any(|p| p != derived.as_bytes()) {
            return Err(IdentityError::KeyMismatch);
        }
        Ok(key)
    }

    /// The underlying `ed25519-dalek` key.
    pub const fn as_dalek(&self) -> &SigningKey {
        &self.0
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bytes() == other.0.to_bytes()
    }
}

impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public: {})", self.public())
    }
}

impl fmt::Display for PrivateKey {
    /// Multibase base32 of the 68-byte protobuf form. This is secret material meant for export
    /// (e.g. a client's identity file); never log it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase_str::encode_b32(self.to_protobuf()))
    }
}

impl FromStr for PrivateKey {
    type Err = IdentityError;

    /// Parses a multibase string (any base) of either protobuf form.
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let bytes = multibase_str::decode_bounded(s, LEGACY_PRIVATE_PROTOBUF_LEN)?;
        Self::from_protobuf(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RAW_PUB: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    const PUB_STRING: &str = "bbaareiadued3746occ7b24g5ddtuxqezm7snmme3uugv6ho4qzsbevjrxa";
    const PRIV_STRING: &str = "bbaareqaaaebagbafaydqqcikbmga2dqpcaireeyuculbogazdinryhi6d4b2cb576phbbpq5odorrz2lycmwpzgwgcn2kdk7dxoimzaskuy3q";
    const SIGNATURE: &str = "14a27374b4e03fd642d77ecaf9b9d46e9e427d757314de98e72cbaf7586b245bfeb02cce7054e43dab892e577b803ef3e73583db92856ee46e48f081eb35fa03";

    fn fixed_key() -> PrivateKey {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        PrivateKey::from_seed(seed)
    }

    fn legacy_protobuf(key: &PrivateKey) -> Vec<u8> {
        let mut out = vec![0x08, 0x01, 0x12, 0x60];
        out.extend_from_slice(&key.seed());
        out.extend_from_slice(&key.public().to_raw());
        out.extend_from_slice(&key.public().to_raw());
        out
    }

    #[test]
    fn fixed_seed_public_forms() {
        let public = fixed_key().public();
        assert_eq!(hex::encode(public.to_raw()), RAW_PUB);
        assert_eq!(
            hex::encode(public.to_protobuf()),
            format!("08011220{RAW_PUB}")
        );
        assert_eq!(public.to_string(), PUB_STRING);
        let parsed: PublicKey = PUB_STRING.parse().unwrap();
        assert_eq!(parsed, public);
        assert_eq!(
            PublicKey::from_protobuf(&public.to_protobuf()).unwrap(),
            public
        );
        assert_eq!(
            public.peer_id().to_string(),
            "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
        );
        assert_eq!(
            hex::encode(public.peer_id().as_bytes()),
            format!("002408011220{RAW_PUB}")
        );
    }

    #[test]
    fn fixed_seed_private_forms() {
        let key = fixed_key();
        let expected = format!(
            "08011240{}{RAW_PUB}",
            hex::encode(std::array::from_fn::<u8, 32, _>(|i| i as u8))
        );
        assert_eq!(hex::encode(key.to_protobuf()), expected);
        assert_eq!(key.to_string(), PRIV_STRING);
        let parsed: PrivateKey = PRIV_STRING.parse().unwrap();
        assert_eq!(parsed, key);
        let legacy = legacy_protobuf(&key);
        assert_eq!(legacy.len(), LEGACY_PRIVATE_PROTOBUF_LEN);
        assert_eq!(PrivateKey::from_protobuf(&legacy).unwrap(), key);
    }

    #[test]
    fn fixed_seed_challenge_signature() {
        let key = fixed_key();
        let challenge: Vec<u8> = (0..32u8).map(|i| 0xff - i).collect();
        let sig = key.sign(&challenge);
        assert_eq!(hex::encode(sig), SIGNATURE);
        key.public().verify(&challenge, &sig).unwrap();
        assert_eq!(
            key.public().verify(&challenge[1..], &sig),
            Err(IdentityError::BadSignature)
        );
        let mut tampered = sig;
        tampered[0] ^= 1;
        assert_eq!(
            key.public().verify(&challenge, &tampered),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            key.public().verify(&challenge, &sig[..63]),
            Err(IdentityError::SignatureLength(63))
        );
    }

    #[test]
    fn second_vector() {
        let proto =
            hex::decode("08011220fd46f2e185a57fa276eaa025f28bb749f0f3bd0c23dc9d1dc2a0f600c8af94db")
                .unwrap();
        // base64 `CAESIP1G8uGFpX+iduqgJfKLt0nw870MI9ydHcKg9gDIr5Tb` (multibase 'M' = base64 pad)
        let from_b64: PublicKey = "MCAESIP1G8uGFpX+iduqgJfKLt0nw870MI9ydHcKg9gDIr5Tb"
            .parse()
            .unwrap();
        assert_eq!(from_b64.to_protobuf()[..], proto[..]);
        let key = PublicKey::from_protobuf(&proto).unwrap();
        assert_eq!(
            key.to_string(),
            "bbaareih5i3zodbnfp6rhn2vaexzixn2j6dz32dbd3sor3qva6yamrl4u3m"
        );
        assert_eq!(
            key.peer_id().to_string(),
            "12D3KooWSs44epAmv2ewxG4fyTB83WeWFaruUvcrSkFJMUcw9Mpe"
        );
    }

    fn pub_err(bytes: &[u8]) -> IdentityError {
        PublicKey::from_protobuf(bytes).unwrap_err()
    }

    fn priv_err(bytes: &[u8]) -> IdentityError {
        PrivateKey::from_protobuf(bytes).unwrap_err()
    }

    #[test]
    fn malformed_public_keys() {
        let good = fixed_key().public().to_protobuf();
        assert!(matches!(pub_err(&[]), IdentityError::Malformed(_)));
        assert!(matches!(pub_err(&good[..35]), IdentityError::Malformed(_)));
        assert!(matches!(pub_err(&good[..3]), IdentityError::Malformed(_)));
        assert!(matches!(pub_err(&good[..2]), IdentityError::Malformed(_)));
        assert!(matches!(
            pub_err(&[good.as_slice(), &[0]].concat()),
            IdentityError::Malformed(_)
        ));
        assert!(matches!(
            pub_err(&[0x12, 0x20]),
            IdentityError::Malformed(_)
        ));
        assert!(matches!(
            pub_err(&[0x08, 0x81, 0x00, 0x12, 0x00]),
            IdentityError::Malformed(_)
        ));
        assert!(matches!(
            pub_err(&[0x08, 0x01, 0x1a, 0x00]),
            IdentityError::Malformed(_)
        ));
        assert_eq!(
            pub_err(&[0x08, 0x01, 0x12, 0x01, 0x00]),
            IdentityError::DataLength {
                kind: "public",
                got: 1,
                expected: "32"
            }
        );
        // secp256k1 public key (type 2, 33-byte compressed point)
        let mut secp = vec![0x08, 0x02, 0x12, 0x21, 0x02];
        secp.extend_from_slice(&[0x11; 32]);
        let err = pub_err(&secp);
        assert_eq!(err, IdentityError::UnsupportedKeyType(2));
        assert_eq!(
            err.to_string(),
            "unsupported key type 2: only Ed25519 (1) is supported"
        );
        assert_eq!(
            pub_err(&[0x08, 0x00, 0x12, 0x00]),
            IdentityError::UnsupportedKeyType(0)
        );
        // not a curve point: y = 2 does not decompress
        let mut bad_point = [0u8; 36];
        bad_point[..4].copy_from_slice(&PUBLIC_HEADER);
        bad_point[4] = 2;
        assert_eq!(pub_err(&bad_point), IdentityError::InvalidPoint);
        assert!(
            "b!!"
                .parse::<PublicKey>()
                .unwrap_err()
                .to_string()
                .starts_with("invalid key string")
        );
        assert!("b".repeat(1000).parse::<PublicKey>().is_err());
    }

    #[test]
    fn malformed_private_keys() {
        let key = fixed_key();
        let good = key.to_protobuf();
        assert_eq!(
            priv_err(&fixed_key().public().to_protobuf()),
            IdentityError::DataLength {
                kind: "private",
                got: 32,
                expected: "64 (or legacy 96)"
            }
        );
        assert!(matches!(priv_err(&good[..67]), IdentityError::Malformed(_)));
        let mut mismatch = good.clone();
        mismatch[67] ^= 1;
        assert_eq!(priv_err(&mismatch), IdentityError::KeyMismatch);
        let mut legacy = legacy_protobuf(&key);
        legacy[99] ^= 1;
        assert_eq!(priv_err(&legacy), IdentityError::KeyMismatch);
        let mut other_type = good.clone();
        other_type[1] = 3;
        assert_eq!(priv_err(&other_type), IdentityError::UnsupportedKeyType(3));
        assert!("".parse::<PrivateKey>().is_err());
    }

    #[test]
    fn debug_redacts_private_key() {
        let key = fixed_key();
        let debug = format!("{key:?}");
        assert!(debug.contains("redacted"));
        assert!(debug.contains(PUB_STRING));
        assert!(!debug.contains(PRIV_STRING));
        assert!(!debug.contains("000102"));
    }

    #[test]
    fn generate_uses_the_rng() {
        let a = PrivateKey::generate(&mut crate::rng::seeded(3));
        let b = PrivateKey::generate(&mut crate::rng::seeded(3));
        let c = PrivateKey::generate(&mut crate::rng::seeded(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    proptest! {
        #[test]
        fn prop_seed_round_trip(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = PrivateKey::from_seed(seed);
            prop_assert_eq!(PrivateKey::from_protobuf(&key.to_protobuf()).unwrap(), key.clone());
            prop_assert_eq!(key.to_string().parse::<PrivateKey>().unwrap(), key.clone());
            let public = key.public();
            prop_assert_eq!(PublicKey::from_protobuf(&public.to_protobuf()).unwrap(), public);
            prop_assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
            prop_assert!(public.to_string().starts_with("bbaarei"));
            prop_assert!(public.verify(&msg, &key.sign(&msg)).is_ok());
        }

        #[test]
        fn prop_arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120), s in ".{0,200}") {
            let _ = PublicKey::from_protobuf(&bytes);
            let _ = PrivateKey::from_protobuf(&bytes);
            let _ = s.parse::<PublicKey>();
            let _ = s.parse::<PrivateKey>();
            let public = fixed_key().public();
            let _ = public.verify(&bytes, &bytes);
        }

        #[test]
        fn prop_framed_garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..110)) {
            let bytes = [&[0x08, 0x01, 0x12][..], &tail].concat();
            let _ = PublicKey::from_protobuf(&bytes);
            let _ = PrivateKey::from_protobuf(&bytes);
        }
    }
}
