//! Log ids: the libp2p peer id of a log's Ed25519 public key (also used for host ids).
//!
//! An Ed25519 public key protobuf is 36 bytes, short enough for libp2p to inline it with the
//! *identity* multihash instead of hashing it, so a peer id is
//! `00 (identity code) || 24 (length 36) || 08 01 12 20 || raw public key (32)` — 38 bytes. Its
//! string form is plain base58btc without a multibase prefix and always starts with
//! `12D3KooW`.
//!
//! Since every peer id of an Ed25519 key contains the key itself, a [`LogId`] always yields its
//! [`PublicKey`] without a lookup. Peer ids of larger keys (RSA) are a sha2-256 hash
//! (`12 20 || digest`); they do not contain the key and are rejected, as only Ed25519 is
//! supported (see [`crate::identity`]). The CIDv1 text form of peer ids (`bafz...`) is not
//! accepted.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::identity::{IdentityError, PUBLIC_PROTOBUF_LEN, PublicKey};

/// Multihash code of the identity "hash" (the digest is the input itself).
const IDENTITY_CODE: u64 = 0x00;
/// Multihash code of sha2-256.
const SHA2_256_CODE: u64 = 0x12;

/// Why bytes or a string are not a valid (Ed25519) peer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogIdError {
    /// The multihash header is missing or truncated.
    #[error("malformed peer id: {0}")]
    Malformed(&'static str),
    /// A sha2-256 peer id: it hashes a non-Ed25519 key, which we do not support.
    #[error(
        "unsupported peer id: a sha2-256 peer id hashes an RSA or other large key; only Ed25519 \
         peer ids (identity multihash, 12D3KooW...) are supported"
    )]
    Sha256,
    /// Neither identity nor sha2-256.
    #[error("unsupported peer id multihash code {0:#x}: expected 0x00 (identity)")]
    UnsupportedCode(u64),
    /// The multihash digest length does not match the data.
    #[error("malformed peer id: digest declares {declared} bytes but {actual} follow")]
    LengthMismatch {
        /// Length declared in the multihash header.
        declared: u64,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// The inlined key is not a valid Ed25519 public key protobuf.
    #[error("invalid key inside peer id: {0}")]
    Key(#[from] IdentityError),
    /// The string is not base58btc.
    #[error("invalid peer id string: not base58btc ({0})")]
    Base58(String),
    /// The string is far longer than any peer id.
    #[error("invalid peer id string: {0} characters is too long")]
    TooLong(usize),
}

/// The id of a log (or host): the libp2p peer id of an Ed25519 public key.
///
/// Holds both the 38 id bytes and the decoded key, so [`LogId::public_key`] is free. Equality,
/// ordering and hashing use the id bytes.
#[derive(Clone, Copy)]
pub struct LogId {
    bytes: [u8; LogId::LEN],
    key: PublicKey,
}

impl LogId {
    /// Length of the binary form.
    pub const LEN: usize = 2 + PUBLIC_PROTOBUF_LEN;

    /// Longest string accepted by [`FromStr`] (real ids are 52 characters).
    pub const MAX_STR_LEN: usize = 128;

    /// The peer id of `key`.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let mut bytes = [0u8; Self::LEN];
        bytes[0] = IDENTITY_CODE as u8;
        bytes[1] = PUBLIC_PROTOBUF_LEN as u8;
        bytes[2..].copy_from_slice(&key.to_protobuf());
        Self { bytes, key: *key }
    }

    /// Parses the binary form (a multihash), accepting only identity multihashes of Ed25519
    /// public keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LogIdError> {
        if bytes.is_empty() {
            return Err(LogIdError::Malformed("empty input"));
        }
        let (code, rest) = unsigned_varint::decode::u64(bytes)
            .map_err(|_| LogIdError::Malformed("invalid multihash code varint"))?;
        match code {
            IDENTITY_CODE => {}
            SHA2_256_CODE => return Err(LogIdError::Sha256),
            other => return Err(LogIdError::UnsupportedCode(other)),
        }
        let (declared, digest) = unsigned_varint::decode::u64(rest)
            .map_err(|_| LogIdError::Malformed("invalid multihash length varint"))?;
        if usize::try_from(declared).ok() != Some(digest.len()) {
            return Err(LogIdError::LengthMismatch {
                declared,
                actual: digest.len(),
            });
        }
        let key = PublicKey::from_protobuf(digest)?;
        Ok(Self::from_public_key(&key))
    }

    /// The 38-byte binary form.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.bytes
    }

    /// The Ed25519 public key this id inlines.
    pub const fn public_key(&self) -> PublicKey {
        self.key
    }
}

impl PartialEq for LogId {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for LogId {}

impl PartialOrd for LogId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

/// Lets maps keyed by `LogId` be searched with the 38 id bytes, so a known id found in a
/// message need not be parsed (and its key decompressed) again. Consistent with `Eq`, `Ord` and
/// `Hash`, which all use the bytes.
impl std::borrow::Borrow<[u8; LogId::LEN]> for LogId {
    fn borrow(&self) -> &[u8; LogId::LEN] {
        &self.bytes
    }
}

impl Hash for LogId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl AsRef<[u8]> for LogId {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<PublicKey> for LogId {
    fn from(key: PublicKey) -> Self {
        Self::from_public_key(&key)
    }
}

impl TryFrom<&[u8]> for LogId {
    type Error = LogIdError;

    fn try_from(bytes: &[u8]) -> Result<Self, LogIdError> {
        Self::from_bytes(bytes)
    }
}

impl fmt::Display for LogId {
    /// base58btc of the bytes, without multibase prefix (`12D3KooW...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.bytes).into_string())
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({self})")
    }
}

impl FromStr for LogId {
    type Err = LogIdError;

    /// Parses the base58btc form.
    fn from_str(s: &str) -> Result<Self, LogIdError> {
        if s.len() > Self::MAX_STR_LEN {
            return Err(LogIdError::TooLong(s.len()));
        }
        let bytes = bs58::decode(s)
            .into_vec()
            .map_err(|e| LogIdError::Base58(e.to_string()))?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrivateKey;
    use proptest::prelude::*;

    const FIRST: &str = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB";
    const FIRST_RAW: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    const SECOND: &str = "12D3KooWSs44epAmv2ewxG4fyTB83WeWFaruUvcrSkFJMUcw9Mpe";
    const SECOND_RAW: &str = "fd46f2e185a57fa276eaa025f28bb749f0f3bd0c23dc9d1dc2a0f600c8af94db";

    fn check(s: &str, raw_hex: &str) {
        let bytes = hex::decode(format!("002408011220{raw_hex}")).unwrap();
        let id: LogId = s.parse().unwrap();
        assert_eq!(id.as_bytes()[..], bytes[..]);
        assert_eq!(id.to_string(), s);
        assert_eq!(hex::encode(id.public_key().to_raw()), raw_hex);
        let from_bytes = LogId::from_bytes(&bytes).unwrap();
        assert_eq!(from_bytes, id);
        assert_eq!(from_bytes.public_key().peer_id(), id);
    }

    #[test]
    fn vectors() {
        check(FIRST, FIRST_RAW);
        check(SECOND, SECOND_RAW);
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            LogId::from_public_key(&PrivateKey::from_seed(seed).public()).to_string(),
            FIRST
        );
    }

    #[test]
    fn errors() {
        let good = FIRST.parse::<LogId>().unwrap().as_bytes().to_vec();
        assert!(matches!(
            LogId::from_bytes(&[]),
            Err(LogIdError::Malformed(_))
        ));
        assert!(matches!(
            LogId::from_bytes(&[0x00]),
            Err(LogIdError::Malformed(_))
        ));
        assert!(matches!(
            LogId::from_bytes(&[0x80]),
            Err(LogIdError::Malformed(_))
        ));
        let sha = [&[0x12, 0x20][..], &[7u8; 32]].concat();
        let err = LogId::from_bytes(&sha).unwrap_err();
        assert_eq!(err, LogIdError::Sha256);
        assert!(err.to_string().contains("only Ed25519"));
        // the sha2-256 peer id of an RSA key ("Qm..." form)
        assert_eq!(
            "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N".parse::<LogId>(),
            Err(LogIdError::Sha256)
        );
        assert_eq!(
            LogId::from_bytes(&[0x13, 0x00]),
            Err(LogIdError::UnsupportedCode(0x13))
        );
        assert_eq!(
            LogId::from_bytes(&good[..37]),
            Err(LogIdError::LengthMismatch {
                declared: 36,
                actual: 35
            })
        );
        assert_eq!(
            LogId::from_bytes(&[good.as_slice(), &[0]].concat()),
            Err(LogIdError::LengthMismatch {
                declared: 36,
                actual: 37
            })
        );
        // identity multihash of a secp256k1 key
        let mut secp = vec![0x00, 0x25, 0x08, 0x02, 0x12, 0x21, 0x02];
        secp.extend_from_slice(&[0x11; 32]);
        assert_eq!(
            LogId::from_bytes(&secp),
            Err(LogIdError::Key(IdentityError::UnsupportedKeyType(2)))
        );
        assert!(matches!(
            "0OIl".parse::<LogId>(),
            Err(LogIdError::Base58(_))
        ));
        assert!(matches!(
            "1".repeat(500).parse::<LogId>(),
            Err(LogIdError::TooLong(500))
        ));
        assert!("".parse::<LogId>().is_err());
    }

    #[test]
    fn ordering_and_hash_use_bytes() {
        let a: LogId = FIRST.parse().unwrap();
        let b: LogId = SECOND.parse().unwrap();
        assert_eq!(a.cmp(&b), a.as_bytes().cmp(b.as_bytes()));
        let set: std::collections::HashSet<LogId> = [a, b, a].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    proptest! {
        #[test]
        fn prop_round_trip(seed in any::<[u8; 32]>()) {
            let id = PrivateKey::from_seed(seed).public().peer_id();
            prop_assert_eq!(LogId::from_bytes(id.as_bytes()).unwrap(), id);
            let s = id.to_string();
            prop_assert!(s.starts_with("12D3KooW"));
            prop_assert_eq!(s.parse::<LogId>().unwrap(), id);
        }

        #[test]
        fn prop_arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), s in ".{0,200}") {
            let _ = LogId::from_bytes(&bytes);
            let _ = s.parse::<LogId>();
            let mut framed = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
            framed.extend_from_slice(&bytes);
            let _ = LogId::from_bytes(&framed);
        }
    }
}
