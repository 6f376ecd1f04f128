//! Thread addresses: a host multiaddr followed by a `/thread/<id>` component.
//!
//! go-threads registers `/thread` as multiaddr protocol code 406 (varint `96 03`) with a
//! variable-length value. Binary: `96 03 || varint(len) || thread id bytes`; text:
//! `/thread/<id string>`. A typical address is
//! `/ip4/1.2.3.4/tcp/4006/p2p/12D3KooW.../thread/bafk...`.
//!
//! The `multiaddr` crate does not know code 406, so the host prefix is parsed with the crate and
//! the `/thread` component by hand. The `/thread` component must be the last one: anything after
//! it is an error. Inputs are bounded by [`ThreadAddr::MAX_LEN`].

use std::fmt;
use std::str::FromStr;

use multiaddr::{Multiaddr, Protocol};

use crate::id::{IdError, ThreadId};
use crate::log_id::LogId;

/// Multiaddr protocol code of `/thread`.
pub const THREAD_CODE: u32 = 406;

/// Text that introduces the `/thread` component.
const THREAD_TEXT: &str = "/thread/";

/// Why bytes or text are not a valid thread address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The input is longer than [`ThreadAddr::MAX_LEN`].
    #[error("thread address too long: {len} bytes, at most {max} are accepted")]
    TooLong {
        /// Length of the rejected input.
        len: usize,
        /// [`ThreadAddr::MAX_LEN`].
        max: usize,
    },
    /// There is no `/thread` component.
    #[error("address has no /thread component")]
    MissingThread,
    /// The part before `/thread` is not a valid multiaddr.
    #[error("invalid host multiaddr before /thread: {0}")]
    Host(String),
    /// The length of the `/thread` value is not a valid varint.
    #[error("invalid length varint in the /thread component")]
    BadLength,
    /// The `/thread` value is shorter than its declared length.
    #[error("truncated /thread component: declares {declared} bytes but {available} remain")]
    Truncated {
        /// Length declared by the varint.
        declared: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The `/thread` value is not a valid thread id.
    #[error("invalid thread id in /thread component: {0}")]
    Id(#[from] IdError),
    /// Something follows the `/thread` component.
    #[error("unexpected data after the /thread component ({0} bytes)")]
    Trailing(usize),
}

/// A host address plus the thread it serves: `<host>/thread/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThreadAddr {
    /// Where the thread can be reached, usually ending in `/p2p/<host peer id>`; may be empty.
    pub host: Multiaddr,
    /// The thread.
    pub thread: ThreadId,
}

impl ThreadAddr {
    /// Largest accepted address, in bytes (binary) or characters (text).
    pub const MAX_LEN: usize = 1024;

    /// Combines a host address and a thread id.
    pub fn new(host: Multiaddr, thread: ThreadId) -> Self {
        Self { host, thread }
    }

    /// The binary form: host bytes, then `96 03 || varint(len) || id`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let id = self.thread.as_bytes();
        let mut out = self.host.to_vec();
        let mut buf = unsigned_varint::encode::u32_buffer();
        out.extend_from_slice(unsigned_varint::encode::u32(THREAD_CODE, &mut buf));
        let mut buf = unsigned_varint::encode::usize_buffer();
        out.extend_from_slice(unsigned_varint::encode::usize(id.len(), &mut buf));
        out.extend_from_slice(id);
        out
    }

    /// Parses the binary form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AddrError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(AddrError::TooLong {
                len: bytes.len(),
                max: Self::MAX_LEN,
            });
        }
        let mut rest = bytes;
        loop {
            if rest.is_empty() {
                return Err(AddrError::MissingThread);
            }
            let (code, after_code) = unsigned_varint::decode::u32(rest)
                .map_err(|e| AddrError::Host(format!("invalid protocol code: {e}")))?;
            if code == THREAD_CODE {
                let host_len = bytes.len() - rest.len();
                let host = Multiaddr::try_from(bytes[..host_len].to_vec())
                    .map_err(|e| AddrError::Host(e.to_string()))?;
                let thread = parse_thread_value(after_code)?;
                return Ok(Self { host, thread });
            }
            let (_, next) =
                Protocol::from_bytes(rest).map_err(|e| AddrError::Host(e.to_string()))?;
            rest = next;
        }
    }

    /// The peer id of the last `/p2p` component of the host, if there is one and it is an
    /// Ed25519 peer id.
    pub fn peer(&self) -> Option<LogId> {
        self.host
            .iter()
            .filter_map(|p| match p {
                Protocol::P2p(peer) => Some(peer),
                _ => None,
            })
            .last()
            .and_then(|peer| LogId::from_bytes(&peer.to_bytes()).ok())
    }
}

/// Parses `varint(len) || id` and checks nothing follows.
fn parse_thread_value(input: &[u8]) -> Result<ThreadId, AddrError> {
    let (len, value) = unsigned_varint::decode::usize(input).map_err(|_| AddrError::BadLength)?;
    if len > value.len() {
        return Err(AddrError::Truncated {
            declared: len,
            available: value.len(),
        });
    }
    let (id, trailing) = value.split_at(len);
    let thread = ThreadId::from_bytes(id)?;
    if !trailing.is_empty() {
        return Err(AddrError::Trailing(trailing.len()));
    }
    Ok(thread)
}

impl fmt::Display for ThreadAddr {
    /// `<host>/thread/<base32 id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{THREAD_TEXT}{}", self.host, self.thread)
    }
}

impl FromStr for ThreadAddr {
    type Err = AddrError;

    /// Parses `<host>/thread/<id>`; the id may use any multibase.
    fn from_str(s: &str) -> Result<Self, AddrError> {
        if s.len() > Self::MAX_LEN {
            return Err(AddrError::TooLong {
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        let at = s.rfind(THREAD_TEXT).ok_or(AddrError::MissingThread)?;
        let (host, id) = (&s[..at], &s[at + THREAD_TEXT.len()..]);
        if let Some(slash) = id.find('/') {
            return Err(AddrError::Trailing(id.len() - slash));
        }
        let host = if host.is_empty() {
            Multiaddr::empty()
        } else {
            host.parse::<Multiaddr>()
                .map_err(|e| AddrError::Host(e.to_string()))?
        };
        let thread = id.parse::<ThreadId>()?;
        Ok(Self { host, thread })
    }
}

impl TryFrom<&[u8]> for ThreadAddr {
    type Error = AddrError;

    fn try_from(bytes: &[u8]) -> Result<Self, AddrError> {
        Self::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Variant;
    use proptest::prelude::*;

    const TEXT: &str = "/ip4/127.0.0.1/tcp/4006/p2p/12D3KooWLzZQcU5zq6TSDbEP8tPVPdrAQsd5Gnj1MXP5x8ZLzfa4/thread/bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy";
    const HEX: &str = concat!(
        "047f000001",
        "060fa6",
        "a50326",
        "002408011220a60d1287066a086ba3756f2cef386118e5d59b3160881381d0787c20864b3f2d",
        "960322",
        "0155000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    );

    #[test]
    fn vector_round_trips() {
        let bytes = hex::decode(HEX).unwrap();
        assert_eq!(bytes.len(), 86);
        let from_text: ThreadAddr = TEXT.parse().unwrap();
        assert_eq!(hex::encode(from_text.to_bytes()), HEX);
        let from_bytes = ThreadAddr::from_bytes(&bytes).unwrap();
        assert_eq!(from_bytes.to_string(), TEXT);
        assert_eq!(from_bytes, from_text);
        let seq: Vec<u8> = (0..32).collect();
        assert_eq!(from_text.thread, ThreadId::new(Variant::Raw, &seq).unwrap());
        assert_eq!(
            from_text.peer().unwrap().to_string(),
            "12D3KooWLzZQcU5zq6TSDbEP8tPVPdrAQsd5Gnj1MXP5x8ZLzfa4"
        );
        assert_eq!(
            from_text.host.to_string(),
            TEXT.split("/thread/").next().unwrap()
        );
    }

    #[test]
    fn bare_thread_and_no_peer() {
        let id = ThreadId::new(Variant::AccessControlled, &[9; 32]).unwrap();
        let addr = ThreadAddr::new(Multiaddr::empty(), id);
        let text = addr.to_string();
        assert_eq!(text, format!("/thread/{id}"));
        assert_eq!(text.parse::<ThreadAddr>().unwrap(), addr);
        assert_eq!(ThreadAddr::from_bytes(&addr.to_bytes()).unwrap(), addr);
        assert_eq!(addr.peer(), None);
        let host: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        assert_eq!(ThreadAddr::new(host, id).peer(), None);
    }

    #[test]
    fn text_accepts_other_bases_and_emits_base32() {
        let text = "/ip4/127.0.0.1/tcp/4006/thread/z2kJJ2GxWRuHkjG4gLvKyZkcs4QuwrpZbi1v3G8XVYBrCJJ";
        let addr: ThreadAddr = text.parse().unwrap();
        assert_eq!(
            addr.to_string(),
            "/ip4/127.0.0.1/tcp/4006/thread/bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy"
        );
    }

    #[test]
    fn binary_errors() {
        let bytes = hex::decode(HEX).unwrap();
        let host_only = &bytes[..49];
        assert_eq!(
            ThreadAddr::from_bytes(host_only),
            Err(AddrError::MissingThread)
        );
        assert_eq!(ThreadAddr::from_bytes(&[]), Err(AddrError::MissingThread));
        assert_eq!(
            ThreadAddr::from_bytes(&bytes[..85]),
            Err(AddrError::Truncated {
                declared: 34,
                available: 33
            })
        );
        assert_eq!(
            ThreadAddr::from_bytes(&bytes[..51]),
            Err(AddrError::BadLength)
        );
        assert_eq!(
            ThreadAddr::from_bytes(&[&bytes[..], &[0x06]].concat()),
            Err(AddrError::Trailing(1))
        );
        let mut bad_id = bytes.clone();
        bad_id[53] = 0x56;
        assert!(matches!(
            ThreadAddr::from_bytes(&bad_id),
            Err(AddrError::Id(IdError::Variant(0x56)))
        ));
        let empty_id = [0x96, 0x03, 0x00];
        assert_eq!(
            ThreadAddr::from_bytes(&empty_id),
            Err(AddrError::Id(IdError::VarintBufferTooSmall))
        );
        assert!(matches!(
            ThreadAddr::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(AddrError::Host(_))
        ));
        assert!(matches!(
            ThreadAddr::from_bytes(&[0x04, 0x7f]),
            Err(AddrError::Host(_))
        ));
        assert!(matches!(
            ThreadAddr::from_bytes(&vec![0u8; 2000]),
            Err(AddrError::TooLong { len: 2000, .. })
        ));
    }

    #[test]
    fn text_errors() {
        let host = TEXT.split("/thread/").next().unwrap();
        assert_eq!(host.parse::<ThreadAddr>(), Err(AddrError::MissingThread));
        assert_eq!(
            format!("{host}/thread").parse::<ThreadAddr>(),
            Err(AddrError::MissingThread)
        );
        assert!(matches!(
            format!("{host}/thread/bafk!").parse::<ThreadAddr>(),
            Err(AddrError::Id(IdError::Multibase(_)))
        ));
        assert_eq!(
            format!("{host}/thread/").parse::<ThreadAddr>(),
            Err(AddrError::Id(IdError::TooShort))
        );
        assert_eq!(
            format!("{TEXT}/tcp/1").parse::<ThreadAddr>(),
            Err(AddrError::Trailing(6))
        );
        assert_eq!(
            format!("{TEXT}/").parse::<ThreadAddr>(),
            Err(AddrError::Trailing(1))
        );
        assert!(matches!(
            "/ip4/999.0.0.1/thread/bafkqaaa".parse::<ThreadAddr>(),
            Err(AddrError::Host(_))
        ));
        assert!(matches!(
            "ip4/1.2.3.4/thread/bafkqaaa".parse::<ThreadAddr>(),
            Err(AddrError::Host(_))
        ));
        assert!(matches!(
            "/thread/bafkqaaa/thread/bafkqaaa".parse::<ThreadAddr>(),
            Err(AddrError::Host(_))
        ));
        let long = format!("/dns4/{}/thread/bafkqaaa", "a".repeat(2000));
        assert!(matches!(
            long.parse::<ThreadAddr>(),
            Err(AddrError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn prop_round_trip(random in proptest::collection::vec(any::<u8>(), 1..=126), port in any::<u16>(), ip in any::<[u8; 4]>()) {
            let thread = ThreadId::new(Variant::Raw, &random).unwrap();
            let host = Multiaddr::empty()
                .with(Protocol::Ip4(ip.into()))
                .with(Protocol::Tcp(port));
            let addr = ThreadAddr::new(host, thread);
            prop_assert_eq!(ThreadAddr::from_bytes(&addr.to_bytes()).unwrap(), addr.clone());
            prop_assert_eq!(addr.to_string().parse::<ThreadAddr>().unwrap(), addr);
        }

        #[test]
        fn prop_arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), s in ".{0,200}") {
            let _ = ThreadAddr::from_bytes(&bytes);
            let _ = s.parse::<ThreadAddr>();
            let _ = format!("/thread/{s}").parse::<ThreadAddr>();
            let framed = [&[0x96, 0x03][..], &bytes].concat();
            let _ = ThreadAddr::from_bytes(&framed);
        }
    }
}
