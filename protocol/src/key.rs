//! Thread keys ([`ThreadKey`]): a service key plus an optional read key, byte- and
//! string-compatible with go-threads.
//!
//! * The **service key** lets a host replicate, verify and serve a thread's records without
//!   reading them.
//! * The **read key** additionally lets a peer decrypt events and build the database state.
//!
//! Binary form: `service (32 bytes) || read (32 bytes, optional)`, so exactly 32 or 64 bytes.
//! String form: multibase base32 (`b...`) of the bytes; parsing accepts any multibase. A read
//! key without a service key cannot be expressed. See `spec/identifiers.md`.
//!
//! Key bytes never appear in `Debug` output.

use std::fmt;
use std::str::FromStr;

use crate::multibase_str::{self, MultibaseError};

/// Length of every symmetric key, in bytes.
pub const SYM_KEY_LEN: usize = 32;

/// A 32-byte symmetric key. `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct SymKey([u8; SYM_KEY_LEN]);

impl SymKey {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; SYM_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh key drawn from `rng`.
    pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = [0u8; SYM_KEY_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; SYM_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymKey(<redacted>)")
    }
}

/// Defines a role-specific wrapper around [`SymKey`], so a read key cannot be passed where a
/// service key is expected.
macro_rules! role_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(SymKey);

        impl $name {
            /// Wraps raw key bytes.
            pub const fn from_bytes(bytes: [u8; SYM_KEY_LEN]) -> Self {
                Self(SymKey::from_bytes(bytes))
            }

            /// A fresh key drawn from `rng`.
            pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
                Self(SymKey::random(rng))
            }

            /// The raw key bytes.
            pub const fn as_bytes(&self) -> &[u8; SYM_KEY_LEN] {
                self.0.as_bytes()
            }

            /// The underlying symmetric key.
            pub const fn sym(&self) -> &SymKey {
                &self.0
            }
        }

        impl From<SymKey> for $name {
            fn from(key: SymKey) -> Self {
                Self(key)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

role_key!(
    /// The key that lets a host replicate, verify and serve a thread's records.
    ServiceKey
);
role_key!(
    /// The key that lets a peer decrypt a thread's events.
    ReadKey
);

/// Why bytes or a string are not a valid thread key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is not 32 or 64 bytes long (go-threads' message, which API clients see).
    #[error("invalid key")]
    InvalidLength {
        /// Length of the rejected value, in bytes.
        len: usize,
    },
    /// The string is not valid multibase.
    #[error("invalid key string: {0}")]
    Multibase(#[from] MultibaseError),
}

/// The keys of one thread: always a service key, and a read key for peers that may read.
#[derive(Clone, PartialEq, Eq)]
pub struct ThreadKey {
    service: ServiceKey,
    read: Option<ReadKey>,
}

impl ThreadKey {
    /// Length of the binary form with a read key.
    pub const FULL_LEN: usize = 2 * SYM_KEY_LEN;

    /// Combines a service key and an optional read key.
    pub const fn new(service: ServiceKey, read: Option<ReadKey>) -> Self {
        Self { service, read }
    }

    /// Fresh keys drawn from `rng`; with a read key when `with_read` is true (databases always
    /// need one).
    pub fn random(rng: &mut impl rand_core::CryptoRng, with_read: bool) -> Self {
        let service = ServiceKey::random(rng);
        let read = with_read.then(|| ReadKey::random(rng));
        Self { service, read }
    }

    /// Parses the binary form: 32 bytes (service only) or 64 bytes (service then read).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = || KeyError::InvalidLength { len: bytes.len() };
        match bytes.len() {
            SYM_KEY_LEN => {
                let service: [u8; SYM_KEY_LEN] = bytes.try_into().map_err(|_| invalid())?;
                Ok(Self::new(ServiceKey::from_bytes(service), None))
            }
            Self::FULL_LEN => {
                let (s, r) = bytes.split_at(SYM_KEY_LEN);
                let service: [u8; SYM_KEY_LEN] = s.try_into().map_err(|_| invalid())?;
                let read: [u8; SYM_KEY_LEN] = r.try_into().map_err(|_| invalid())?;
                Ok(Self::new(
                    ServiceKey::from_bytes(service),
                    Some(ReadKey::from_bytes(read)),
                ))
            }
            _ => Err(invalid()),
        }
    }

    /// The binary form: 32 or 64 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FULL_LEN);
        out.extend_from_slice(self.service.as_bytes());
        if let Some(read) = &self.read {
            out.extend_from_slice(read.as_bytes());
        }
        out
    }

    /// The service key.
    pub const fn service(&self) -> &ServiceKey {
        &self.service
    }

    /// The read key, if this peer may read the thread.
    pub const fn read(&self) -> Option<&ReadKey> {
        self.read.as_ref()
    }

    /// Whether a read key is present.
    pub const fn can_read(&self) -> bool {
        self.read.is_some()
    }

    /// The same keys without the read key: what a replicator is given.
    pub fn without_read(&self) -> Self {
        Self::new(self.service.clone(), None)
    }
}

impl fmt::Debug for ThreadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadKey")
            .field("service", &self.service)
            .field("read", &self.read)
            .finish()
    }
}

impl fmt::Display for ThreadKey {
    /// The string form: multibase base32 of the bytes. This is secret material: never log it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase_str::encode_b32(self.to_bytes()))
    }
}

impl FromStr for ThreadKey {
    type Err = KeyError;

    /// Parses a multibase string in any base.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bytes = multibase_str::decode_bounded(s, Self::FULL_LEN)?;
        Self::from_bytes(&bytes)
    }
}

impl TryFrom<&[u8]> for ThreadKey {
    type Error = KeyError;

    fn try_from(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_doc_example(s: &str, len: usize) -> ThreadKey {
        let key: ThreadKey = s.parse().unwrap();
        assert_eq!(key.to_bytes().len(), len);
        assert_eq!(key.can_read(), len == 64);
        assert_eq!(key.to_string(), s);
        assert_eq!(ThreadKey::from_bytes(&key.to_bytes()).unwrap(), key);
        key
    }

    #[test]
    fn sequential_vector() {
        let bytes: Vec<u8> = (0..64).collect();
        let s = "baaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypsaijcemsckjrhfausukzmfuxc6mbrgiztinjwg44dsor3hq6t4py";
        let key = check_doc_example(s, 64);
        assert_eq!(key.to_bytes(), bytes);
        assert_eq!(key.service().as_bytes()[..], bytes[..32]);
        assert_eq!(key.read().unwrap().as_bytes()[..], bytes[32..]);
        assert_eq!(ThreadKey::from_bytes(&bytes).unwrap().to_string(), s);
        assert_eq!(s.len(), 104);
    }

    #[test]
    fn upstream_doc_examples() {
        let full = check_doc_example(
            "brv7t5l2h55uklz5qwpntcat26csaasfchzof3emmdy6povabcd3a2to2qdkqdkto2prfhizerqqudqsdvwherbiy4nazqxjejgdr4oy",
            64,
        );
        assert_eq!(&full.to_bytes()[..4], &hex::decode("8d7f3eaf").unwrap()[..]);
        assert_eq!(&full.to_bytes()[61..], &hex::decode("871e3b").unwrap()[..]);
        let service_only =
            check_doc_example("bp2vvqody5zm6yqycsnazb4kpqvycbdosos352zvpsorxce5koh7q", 32);
        assert_eq!(
            &service_only.to_bytes()[..4],
            &hex::decode("7eab5838").unwrap()[..]
        );
        assert_eq!(
            &service_only.to_bytes()[29..],
            &hex::decode("aa71ff").unwrap()[..]
        );
        assert!(service_only.read().is_none());
        check_doc_example("bkhg3q73fiz2t6nyfmnqy7te6nvqgtnpuj43b562k43cycspfnfaa", 32);
    }

    #[test]
    fn invalid_lengths() {
        for len in [0usize, 1, 31, 33, 63, 65, 96] {
            let err = ThreadKey::from_bytes(&vec![1u8; len]).unwrap_err();
            assert_eq!(err, KeyError::InvalidLength { len });
            assert_eq!(err.to_string(), "invalid key");
        }
        let s = multibase_str::encode_b32([1u8; 40]);
        assert_eq!(
            s.parse::<ThreadKey>().unwrap_err().to_string(),
            "invalid key"
        );
        assert!(
            "b!!"
                .parse::<ThreadKey>()
                .unwrap_err()
                .to_string()
                .starts_with("invalid key string: ")
        );
        assert!("".parse::<ThreadKey>().is_err());
        assert!("b".repeat(2000).parse::<ThreadKey>().is_err());
    }

    #[test]
    fn random_and_debug() {
        let mut rng = crate::rng::seeded(1);
        let full = ThreadKey::random(&mut rng, true);
        let service_only = ThreadKey::random(&mut rng, false);
        assert!(full.can_read() && !service_only.can_read());
        assert_eq!(full.to_bytes().len(), 64);
        assert_eq!(full.to_string().len(), 104);
        assert_eq!(service_only.to_string().len(), 53);
        assert_eq!(full.without_read().to_bytes(), full.to_bytes()[..32]);
        assert_eq!(ThreadKey::random(&mut crate::rng::seeded(1), true), full);
        let debug = format!("{full:?}");
        assert!(debug.contains("redacted"));
        let hex_bytes = hex::encode(full.service().as_bytes());
        assert!(!debug.contains(&hex_bytes[..8]));
        assert!(!debug.contains(&format!("{}", full.service().as_bytes()[0])));
    }

    proptest! {
        #[test]
        fn prop_round_trip(bytes in proptest::collection::vec(any::<u8>(), 32..=64)) {
            let bytes = if bytes.len() == 32 || bytes.len() == 64 { bytes } else { bytes[..32].to_vec() };
            let key = ThreadKey::from_bytes(&bytes).unwrap();
            prop_assert_eq!(key.to_bytes(), bytes);
            prop_assert_eq!(key.to_string().parse::<ThreadKey>().unwrap(), key);
        }

        #[test]
        fn prop_arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), s in ".{0,200}", mb in "[bzfm][a-z2-7]{0,120}") {
            let _ = ThreadKey::from_bytes(&bytes);
            let _ = mb.parse::<ThreadKey>();
            if let Ok(key) = s.parse::<ThreadKey>() {
                prop_assert_eq!(key.to_string().parse::<ThreadKey>().unwrap(), key);
            }
        }
    }
}
