//! Thread identifiers ([`ThreadId`]), byte- and string-compatible with go-threads.
//!
//! A thread id is `varint(version = 1) || varint(variant) || random`. The variant is a tag:
//! [`Variant::Raw`] (`0x55`) or [`Variant::AccessControlled`] (`0x70`); no access control exists
//! behind the second one. Both varints always fit in one byte, so every valid id starts with
//! `01 55` or `01 70`. The string form is multibase base32 (`b...`); parsing accepts any
//! multibase. See `spec/identifiers.md` for the full format.
//!
//! Decisions that differ from go-threads, all on input go-threads never produces:
//! * ids longer than [`ThreadId::MAX_LEN`] bytes are rejected (go-threads has no limit);
//! * non-minimal varints (e.g. `81 00` for 1) are rejected so that every id has exactly one byte
//!   form (go-threads accepts them).
//!
//! The error messages of the other cases are go-threads' own, because API clients see them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::multibase_str::{self, MultibaseError};

/// The only thread id version.
pub const VERSION: u8 = 1;

/// The kind tag of a thread id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Variant {
    /// A plain thread (`0x55`); what the JS client creates by default.
    Raw = 0x55,
    /// Tagged as access-controlled (`0x70`); a label only, nothing enforces it.
    AccessControlled = 0x70,
}

impl Variant {
    /// The varint value of this variant in the id bytes.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The variant for a decoded varint value, if it is one of the two known ones.
    pub const fn from_code(code: u64) -> Option<Self> {
        match code {
            0x55 => Some(Self::Raw),
            0x70 => Some(Self::AccessControlled),
            _ => None,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Raw => "raw",
            Self::AccessControlled => "access_controlled",
        })
    }
}

/// Why bytes or a string are not a valid thread id.
///
/// The messages of the go-threads cases match go-threads word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is shorter than two characters.
    #[error("id too short")]
    TooShort,
    /// The version varint is not 1.
    #[error("expected 1 as the id version number, got: {0}")]
    Version(u64),
    /// The variant varint is neither 0x55 nor 0x70 (shown in decimal, as go-threads does).
    #[error("expected Raw or AccessControlled as the id variant, got: {0}")]
    Variant(u64),
    /// Nothing follows the variant.
    #[error("expected random id bytes but there are none")]
    NoRandom,
    /// The input ends inside a varint (or is empty).
    #[error("reading varint: buffer too small")]
    VarintBufferTooSmall,
    /// A varint does not fit in 64 bits.
    #[error("reading varint: varint bigger than 64bits and not supported")]
    VarintTooBig,
    /// A varint has superfluous trailing zero groups (e.g. `81 00`).
    #[error("reading varint: varint not minimally encoded")]
    VarintNotMinimal,
    /// The id is longer than [`ThreadId::MAX_LEN`].
    #[error("id too long: {len} bytes, at most {max} are accepted")]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
        /// [`ThreadId::MAX_LEN`].
        max: usize,
    },
    /// The string is not valid multibase.
    #[error("invalid id string: {0}")]
    Multibase(#[from] MultibaseError),
}

/// A thread (and database) identifier: `01 || variant || random`, at most
/// [`ThreadId::MAX_LEN`] bytes.
///
/// Stored inline so that it is `Copy`. Equality, ordering and hashing use the id bytes.
#[derive(Clone, Copy)]
pub struct ThreadId {
    len: u8,
    bytes: [u8; ThreadId::MAX_LEN],
}

impl ThreadId {
    /// Largest accepted id, in bytes (2 header bytes + up to 126 random bytes).
    ///
    /// go-threads sets no limit; ids come from peers and clients, so we bound them. Real ids are
    /// 34 bytes; go-threads cannot even create random parts longer than 255 bytes.
    pub const MAX_LEN: usize = 128;

    /// Number of random bytes in ids we create (34-byte ids).
    pub const RANDOM_LEN: usize = 32;

    /// Builds an id from a variant and its random part (at least 1 byte, at most
    /// `MAX_LEN - 2`).
    pub fn new(variant: Variant, random: &[u8]) -> Result<Self, IdError> {
        if random.is_empty() {
            return Err(IdError::NoRandom);
        }
        let len = random.len().saturating_add(2);
        if len > Self::MAX_LEN {
            return Err(IdError::TooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[0] = VERSION;
        bytes[1] = variant.code();
        bytes[2..len].copy_from_slice(random);
        Ok(Self {
            len: len as u8,
            bytes,
        })
    }

    /// A fresh id with [`Self::RANDOM_LEN`] random bytes drawn from `rng`.
    pub fn random(variant: Variant, rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[0] = VERSION;
        bytes[1] = variant.code();
        rng.fill_bytes(&mut bytes[2..2 + Self::RANDOM_LEN]);
        Self {
            len: (2 + Self::RANDOM_LEN) as u8,
            bytes,
        }
    }

    /// Parses the binary form (what protobuf fields and multiaddrs carry).
    pub fn from_bytes(data: &[u8]) -> Result<Self, IdError> {
        if data.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                len: data.len(),
                max: Self::MAX_LEN,
            });
        }
        let (version, n) = read_uvarint(data)?;
        if version != u64::from(VERSION) {
            return Err(IdError::Version(version));
        }
        let (code, cn) = read_uvarint(&data[n..])?;
        let variant = Variant::from_code(code).ok_or(IdError::Variant(code))?;
        Self::new(variant, &data[n + cn..])
    }

    /// The binary form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The binary form as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    /// The id version; always 1.
    pub fn version(&self) -> u8 {
        self.bytes[0]
    }

    /// The variant tag.
    pub fn variant(&self) -> Variant {
        // Construction guarantees byte 1 is one of the two codes.
        match self.bytes[1] {
            0x70 => Variant::AccessControlled,
            _ => Variant::Raw,
        }
    }

    /// The random part (everything after the two header bytes; never empty).
    pub fn random_part(&self) -> &[u8] {
        &self.bytes[2..usize::from(self.len)]
    }
}

/// Reads one unsigned LEB128 varint like Go's `binary.Uvarint`, plus a minimality check.
/// Returns the value and the number of bytes read.
fn read_uvarint(buf: &[u8]) -> Result<(u64, usize), IdError> {
    let mut value: u64 = 0;
    let mut shift: u32 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i == 10 {
            return Err(IdError::VarintTooBig);
        }
        if b < 0x80 {
            if i == 9 && b > 1 {
                return Err(IdError::VarintTooBig);
            }
            if i > 0 && b == 0 {
                return Err(IdError::VarintNotMinimal);
            }
            return Ok((value | (u64::from(b) << shift), i + 1));
        }
        value |= u64::from(b & 0x7f) << shift;
        shift += 7;
    }
    Err(IdError::VarintBufferTooSmall)
}

impl PartialEq for ThreadId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ThreadId {}

impl PartialOrd for ThreadId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ThreadId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for ThreadId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl AsRef<[u8]> for ThreadId {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl TryFrom<&[u8]> for ThreadId {
    type Error = IdError;

    fn try_from(data: &[u8]) -> Result<Self, IdError> {
        Self::from_bytes(data)
    }
}

impl fmt::Display for ThreadId {
    /// The canonical string: multibase base32 (`bafk...` for Raw, `bafy...` for
    /// AccessControlled).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase_str::encode_b32(self.as_bytes()))
    }
}

impl fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadId({self})")
    }
}

impl FromStr for ThreadId {
    type Err = IdError;

    /// Parses a multibase string in any base, as go-threads' `thread.Decode` does.
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() < 2 {
            return Err(IdError::TooShort);
        }
        let data = multibase_str::decode_bounded(s, Self::MAX_LEN)?;
        Self::from_bytes(&data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(n: u8) -> Vec<u8> {
        (0..n).collect()
    }

    /// (string, hex) rows of COMPAT §a that round-trip.
    const ROUND_TRIP: &[(&str, &str)] = &[
        (
            "bafk34jivfbzwubzic5uxfzedsgi4e622stycsxaxymq5g2j3mdkipsa",
            "0155be251528736a0728176972e4839191c27b5a94f0295c17c321d3693b60d487c8",
        ),
        (
            "bafyft2zpa7fbgoiwvwavnljbcuvp3t5cuauimqkfuxotfneer54jkwa",
            "017059eb2f07ca133916ad8156ad21152afdcfa2a028864145a5dd32b4848f789558",
        ),
        (
            "bafkspl2vhuhmtxebkdq3lqqnz5a7k",
            "015527af553d0ec9dc8150e1b5c20dcf41f5",
        ),
        (
            "bafkqaaaaaaaaaaaaaaaaaaaaaaaaa",
            "015500000000000000000000000000000000",
        ),
        (
            "bafkwf6lewg4eaodvqms5feq35lqik4bydfswx3722qz2ltqzy3qopka",
            "015562f964b1b84038758325d2921beae085703819656beffad433a5ce19c6e0e7a8",
        ),
        (
            "bafk3vxncb3cpgcrfsfntr5livvb47nedwqz32b7a42exfygvwzodwuq",
            "0155badda20ec4f30a25915b38f568ad43cfb483b433bd07e0e68972e0d5b65c3b52",
        ),
        (
            "bafk5cxypkuo2mbfcml74uejlpsux4klpgjg73emjq4iaqnc7fsr3b5q",
            "0155d15f0f551da604a262ffca112b7ca97e296f324dfd9189871008345f2ca3b0f6",
        ),
        (
            "bafktbzj3z4gc7x44dc7izjieurbboybszntx6vapj3umytpilvuqjva",
            "015530e53bcf0c2fdf9c18be8ca504a442176032cb677f540f4ee8cc4de85d6904d4",
        ),
        (
            "bafkzjg7rdddl73kg4cq7iszrnyajs22ipbamersunjqkav52ajs36qq",
            "0155949bf118c6bfed46e0a1f44b316e00996b487840c246546a60a057ba0265bf42",
        ),
    ];

    fn check_round_trip(s: &str, bytes: &[u8]) {
        let parsed: ThreadId = s.parse().unwrap();
        assert_eq!(parsed.as_bytes(), bytes, "{s}");
        assert_eq!(parsed.to_string(), s);
        let from_bytes = ThreadId::from_bytes(bytes).unwrap();
        assert_eq!(from_bytes.to_string(), s);
        assert_eq!(from_bytes, parsed);
    }

    #[test]
    fn sequential_random_vectors() {
        let raw = [vec![0x01, 0x55], seq(32)].concat();
        let ac = [vec![0x01, 0x70], seq(32)].concat();
        check_round_trip(
            "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy",
            &raw,
        );
        check_round_trip(
            "bafyaaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy",
            &ac,
        );
        let id = ThreadId::new(Variant::Raw, &seq(32)).unwrap();
        assert_eq!(id.as_bytes(), &raw[..]);
        assert_eq!(id.variant(), Variant::Raw);
        assert_eq!(id.version(), 1);
        assert_eq!(id.random_part(), &seq(32)[..]);
        let id = ThreadId::new(Variant::AccessControlled, &seq(32)).unwrap();
        assert_eq!(id.variant(), Variant::AccessControlled);
    }

    #[test]
    fn base58_vectors_decode_only() {
        let raw: ThreadId = "z2kJJ2GxWRuHkjG4gLvKyZkcs4QuwrpZbi1v3G8XVYBrCJJ"
            .parse()
            .unwrap();
        assert_eq!(raw.as_bytes(), &[vec![0x01, 0x55], seq(32)].concat()[..]);
        let ac: ThreadId = "z2tKVaHMoj6j2e1TuVCTiMkqpiVfHEYgDcZyR1umN4unuwk"
            .parse()
            .unwrap();
        assert_eq!(ac.as_bytes(), &[vec![0x01, 0x70], seq(32)].concat()[..]);
        assert!(raw.to_string().starts_with("bafk"));
        assert!(ac.to_string().starts_with("bafy"));
    }

    #[test]
    fn table_vectors() {
        for (s, h) in ROUND_TRIP {
            check_round_trip(s, &hex::decode(h).unwrap());
        }
        let zero_ac = format!("bafy{}", "a".repeat(52));
        check_round_trip(&zero_ac, &[&[0x01, 0x70][..], &[0u8; 32]].concat());
        let id: ThreadId = "bafkwf6lewg4eaodvqms5feq35lqik4bydfswx3722qz2ltqzy3qopka"
            .parse()
            .unwrap();
        assert_eq!((id.version(), id.variant().code()), (1, 85));
        assert_eq!(id.to_string().len(), 56);
    }

    #[test]
    fn short_random_part_is_accepted() {
        let id: ThreadId = "bafkqaaa".parse().unwrap();
        assert_eq!(id.as_bytes(), [0x01, 0x55, 0x00, 0x00]);
        assert_eq!(id.random_part(), [0x00, 0x00]);
    }

    fn err_str(s: &str) -> String {
        s.parse::<ThreadId>().unwrap_err().to_string()
    }

    fn err_bytes(b: &[u8]) -> String {
        ThreadId::from_bytes(b).unwrap_err().to_string()
    }

    #[test]
    fn go_error_messages() {
        assert_eq!(err_str("b"), "id too short");
        assert_eq!(err_str(""), "id too short");
        assert_eq!(
            crate::multibase_str::decode_any("zzzz").unwrap(),
            [0x02, 0xfa, 0x27]
        );
        assert_eq!(
            err_str("zzzz"),
            "expected 1 as the id version number, got: 2"
        );
        assert_eq!(
            err_bytes(&[0x01, 0x56, 0x00]),
            "expected Raw or AccessControlled as the id variant, got: 86"
        );
        assert_eq!(
            err_bytes(&[0x01, 0x80, 0x01, 0x00]),
            "expected Raw or AccessControlled as the id variant, got: 128"
        );
        assert_eq!(
            err_bytes(&[0x01, 0x55]),
            "expected random id bytes but there are none"
        );
        let no_random = crate::multibase_str::encode_b32([0x01, 0x55]);
        assert_eq!(
            err_str(&no_random),
            "expected random id bytes but there are none"
        );
        for truncated in [&[][..], &[0x01], &[0x80], &[0x01, 0xd5]] {
            assert_eq!(err_bytes(truncated), "reading varint: buffer too small");
        }
        let too_big = "reading varint: varint bigger than 64bits and not supported";
        assert_eq!(err_bytes(&[0xff; 11]), too_big);
        assert_eq!(
            err_bytes(&[[0xff; 9].as_slice(), &[0x02]].concat()),
            too_big
        );
        assert_eq!(
            err_bytes(&[
                0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            too_big
        );
    }

    #[test]
    fn our_extra_errors() {
        assert_eq!(
            err_bytes(&[0x81, 0x00, 0x55, 0x00]),
            "reading varint: varint not minimally encoded"
        );
        let long = [&[0x01, 0x55][..], &[7u8; 127]].concat();
        assert_eq!(
            err_bytes(&long),
            "id too long: 129 bytes, at most 128 are accepted"
        );
        assert!(ThreadId::from_bytes(&long[..128]).is_ok());
        assert!(ThreadId::new(Variant::Raw, &[0; 127]).is_err());
        assert!(ThreadId::new(Variant::Raw, &[]).is_err());
        assert!(err_str("b!!!").starts_with("invalid id string: "));
        assert!(err_str("Xabc").starts_with("invalid id string: "));
        let huge = format!("b{}", "a".repeat(5000));
        assert!(matches!(
            huge.parse::<ThreadId>(),
            Err(IdError::Multibase(MultibaseError::TooLong { .. }))
        ));
    }

    #[test]
    fn random_ids_are_deterministic_per_seed() {
        let a = ThreadId::random(Variant::Raw, &mut crate::rng::seeded(7));
        let b = ThreadId::random(Variant::Raw, &mut crate::rng::seeded(7));
        let c = ThreadId::random(Variant::Raw, &mut crate::rng::seeded(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_bytes().len(), 34);
        assert_eq!(a.to_string().len(), 56);
        assert!(a.to_string().starts_with("bafk"));
    }

    #[test]
    fn ordering_and_equality_follow_bytes() {
        let short = ThreadId::new(Variant::Raw, &[0]).unwrap();
        let long = ThreadId::new(Variant::Raw, &[0, 0]).unwrap();
        let ac = ThreadId::new(Variant::AccessControlled, &[0]).unwrap();
        assert!(short < long && long < ac);
        assert_ne!(short, long);
    }

    proptest! {
        #[test]
        fn prop_round_trip(ac in any::<bool>(), random in proptest::collection::vec(any::<u8>(), 1..=126)) {
            let variant = if ac { Variant::AccessControlled } else { Variant::Raw };
            let id = ThreadId::new(variant, &random).unwrap();
            prop_assert_eq!(ThreadId::from_bytes(id.as_bytes()).unwrap(), id);
            prop_assert_eq!(id.to_string().parse::<ThreadId>().unwrap(), id);
            prop_assert_eq!(id.random_part(), &random[..]);
            prop_assert_eq!(id.variant(), variant);
        }

        #[test]
        fn prop_multibase_like_strings_never_panic(s in "[bzfmMBFk0-9][a-zA-Z0-9+/=]{0,120}") {
            if let Ok(id) = s.parse::<ThreadId>() {
                prop_assert_eq!(id.to_string().parse::<ThreadId>().unwrap(), id);
            }
        }

        #[test]
        fn prop_arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), s in ".{0,200}") {
            if let Ok(id) = ThreadId::from_bytes(&bytes) {
                prop_assert_eq!(id.as_bytes(), &bytes[..]);
            }
            if let Ok(id) = s.parse::<ThreadId>() {
                prop_assert_eq!(id.to_string().parse::<ThreadId>().unwrap(), id);
            }
        }
    }
}
