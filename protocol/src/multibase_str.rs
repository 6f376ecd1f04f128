//! Multibase text helpers shared by every identifier and key string.
//!
//! All our string forms are [multibase](https://github.com/multiformats/multibase): one prefix
//! character naming the base, then the encoded bytes. We always *emit* base32 lowercase without
//! padding (prefix `b`), as go-threads and the JS client do, and *accept* every base the
//! `multibase` crate knows (base58btc `z`, base16 `f`, base64 `m`, ...), because peers and
//! clients may hand us any of them.
//!
//! Decoding untrusted text is bounded: [`decode_bounded`] refuses strings that are too long to
//! hold at most `max_bytes` bytes in any base before decoding, so a huge string cannot make us
//! allocate or spend quadratic time in the base-x decoders.

use multibase::Base;

/// Why a multibase string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultibaseError {
    /// The string is empty, so it has no base prefix.
    #[error("empty string: a multibase string starts with a base prefix such as 'b'")]
    Empty,
    /// The first character does not name a known base.
    #[error("unknown multibase prefix {0:?}: expected e.g. 'b' (base32) or 'z' (base58btc)")]
    UnknownBase(char),
    /// The characters after the prefix are not valid in the named base.
    #[error("invalid characters for multibase prefix {0:?}")]
    InvalidData(char),
    /// The string is longer than any encoding of the largest accepted value.
    #[error("string of {len} bytes is too long: the value holds at most {max_bytes} bytes")]
    TooLong {
        /// Length of the rejected string, in bytes.
        len: usize,
        /// Largest decoded size the caller accepts.
        max_bytes: usize,
    },
}

/// Encodes `bytes` as multibase base32 lowercase without padding (`b...`), the canonical string
/// form of thread ids, thread keys and identity keys.
pub fn encode_b32(bytes: impl AsRef<[u8]>) -> String {
    multibase::encode(Base::Base32Lower, bytes)
}

/// Decodes a multibase string in any supported base.
///
/// Prefer [`decode_bounded`] for input from outside the process.
pub fn decode_any(s: &str) -> Result<Vec<u8>, MultibaseError> {
    let prefix = s.chars().next().ok_or(MultibaseError::Empty)?;
    match multibase::decode(s) {
        Ok((_, bytes)) => Ok(bytes),
        Err(multibase::Error::UnknownBase(c)) => Err(MultibaseError::UnknownBase(c)),
        Err(multibase::Error::InvalidBaseString) => Err(MultibaseError::InvalidData(prefix)),
    }
}

/// Decodes a multibase string in any supported base, refusing strings too long to encode at
/// most `max_bytes` bytes.
///
/// The cheapest encoding per byte is base2 (8 characters per byte), so any string longer than
/// `8 * max_bytes` plus a little slack for the prefix and padding is rejected before decoding.
/// The caller still checks the decoded length against its own limits.
pub fn decode_bounded(s: &str, max_bytes: usize) -> Result<Vec<u8>, MultibaseError> {
    let limit = max_bytes.saturating_mul(8).saturating_add(16);
    if s.len() > limit {
        return Err(MultibaseError::TooLong {
            len: s.len(),
            max_bytes,
        });
    }
    decode_any(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_base32_lowercase_unpadded() {
        assert_eq!(encode_b32([]), "b");
        assert_eq!(encode_b32([0x00]), "baa");
        assert_eq!(encode_b32(b"hello"), "bnbswy3dp");
    }

    #[test]
    fn decodes_other_bases() {
        assert_eq!(decode_any("bnbswy3dp").unwrap(), b"hello");
        assert_eq!(decode_any("f68656c6c6f").unwrap(), b"hello");
        assert_eq!(decode_any("zCn8eVZg").unwrap(), b"hello");
        assert_eq!(decode_any("BNBSWY3DP").unwrap(), b"hello");
    }

    #[test]
    fn errors() {
        assert_eq!(decode_any(""), Err(MultibaseError::Empty));
        assert_eq!(decode_any("Xabc"), Err(MultibaseError::UnknownBase('X')));
        assert_eq!(decode_any("b!!"), Err(MultibaseError::InvalidData('b')));
        let long = "b".repeat(100);
        assert!(matches!(
            decode_bounded(&long, 4),
            Err(MultibaseError::TooLong { len: 100, .. })
        ));
        assert!(decode_bounded("bnbswy3dp", 5).is_ok());
    }
}
