//! The key type of the memory store's committed map.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// Longest key held inline: with the length and the variant tag the key takes 64 bytes, one
/// cache line. Nearly every key of a document store is shorter (32–63 bytes in the documents
/// benchmark).
const INLINE: usize = 62;

/// A key of the committed map. Short keys sit inside the B-tree node that holds them, so that
/// comparing one during a descent or a range scan reads the node, not another allocation
/// somewhere else on the heap (a cache miss per comparison at a million instances), and copying
/// a node copies bytes instead of touching reference counts. Longer keys are shared slices.
#[derive(Clone)]
pub(super) enum MapKey {
    /// A key of at most `INLINE` bytes: its length and bytes (the rest zero).
    Inline {
        /// Bytes in use.
        len: u8,
        /// The key, then zeros.
        bytes: [u8; INLINE],
    },
    /// A longer key.
    Shared(Arc<[u8]>),
}

impl MapKey {
    /// The key's bytes.
    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            MapKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            MapKey::Shared(b) => b,
        }
    }
}

impl From<&[u8]> for MapKey {
    fn from(key: &[u8]) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..key.len()].copy_from_slice(key);
                MapKey::Inline { len, bytes }
            }
            _ => MapKey::Shared(Arc::from(key)),
        }
    }
}

impl Borrow<[u8]> for MapKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for MapKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for MapKey {}

impl PartialOrd for MapKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MapKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x?}", self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<MapKey>(), 64);
    }

    #[test]
    fn keys_order_as_their_bytes_whether_inline_or_shared() {
        let lens = [0, 1, INLINE - 1, INLINE, INLINE + 1, 300];
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for len in lens {
            for fill in [0u8, 7, 255] {
                keys.push(vec![fill; len]);
                let mut k = vec![fill; len];
                if let Some(last) = k.last_mut() {
                    *last = last.wrapping_add(1);
                }
                keys.push(k);
            }
        }
        for a in &keys {
            let ka = MapKey::from(&a[..]);
            assert_eq!(ka.as_slice(), &a[..]);
            for b in &keys {
                let kb = MapKey::from(&b[..]);
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
    }
}
