//! A reader of canonical DAG-CBOR for the fixed shapes this crate writes (peer messages and
//! record blocks), without serde.
//!
//! Serde's decoder turns every map key into a string matched by name and goes through generic
//! visitors; for small fixed maps that costs as much as the work done with the value. Our
//! encoders write one canonical form (keys in canonical order, integers and lengths in
//! shortest form, nothing after the item), and the serde decoder refuses the non-canonical
//! forms it can see, so a reader that accepts only that form can answer first. Each method
//! returns `None` for anything else; callers then ask serde, which gives the error.

/// CBOR major type of unsigned integers.
const UINT: u8 = 0;
/// CBOR major type of byte strings.
const BYTES: u8 = 2;
/// CBOR major type of text strings.
pub(crate) const TEXT: u8 = 3;
/// CBOR major type of arrays.
pub(crate) const ARRAY: u8 = 4;
/// CBOR major type of maps.
const MAP: u8 = 5;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
/// Tag 42 (a CID) in its shortest head.
const CID_TAG: [u8; 2] = [0xd8, 0x2a];

/// A position in the bytes of one item.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    /// An item's head of major type `major`: its argument, which must be in shortest form.
    fn head(&mut self, major: u8) -> Option<u64> {
        let first = *self.take(1)?.first()?;
        if first >> 5 != major {
            return None;
        }
        let (n, min): (usize, u64) = match first & 0x1f {
            small @ 0..=23 => return Some(u64::from(small)),
            24 => (1, 24),
            25 => (2, 1 << 8),
            26 => (4, 1 << 16),
            27 => (8, 1 << 32),
            _ => return None,
        };
        let mut value = 0u64;
        for b in self.take(n)? {
            value = value << 8 | u64::from(*b);
        }
        (value >= min).then_some(value)
    }

    /// A length that cannot exceed the bytes left (each counted item takes at least one).
    pub(crate) fn len(&mut self, major: u8) -> Option<usize> {
        let n = usize::try_from(self.head(major)?).ok()?;
        (n <= self.rest.len()).then_some(n)
    }

    /// A map head of exactly `size` entries.
    pub(crate) fn map(&mut self, size: usize) -> Option<()> {
        (self.len(MAP)? == size).then_some(())
    }

    /// A text key equal to `key`.
    pub(crate) fn key(&mut self, key: &str) -> Option<()> {
        let n = self.len(TEXT)?;
        (self.take(n)? == key.as_bytes()).then_some(())
    }

    /// A byte string.
    pub(crate) fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.len(BYTES)?;
        Some(self.take(n)?.to_vec())
    }

    /// The member `key` holding a byte string.
    pub(crate) fn bytes_member(&mut self, key: &str) -> Option<Vec<u8>> {
        self.key(key)?;
        self.bytes()
    }

    /// The member `key` holding an unsigned integer.
    pub(crate) fn uint_member(&mut self, key: &str) -> Option<u64> {
        self.key(key)?;
        self.head(UINT)
    }

    /// The member `key` holding a boolean.
    pub(crate) fn bool_member(&mut self, key: &str) -> Option<bool> {
        self.key(key)?;
        match *self.take(1)?.first()? {
            FALSE => Some(false),
            TRUE => Some(true),
            _ => None,
        }
    }

    /// The member `key` holding a list of byte strings.
    pub(crate) fn list_member(&mut self, key: &str) -> Option<Vec<serde_bytes::ByteBuf>> {
        self.key(key)?;
        let n = self.len(ARRAY)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(serde_bytes::ByteBuf::from(self.bytes()?));
        }
        Some(items)
    }

    /// The member `key` holding a CID (tag 42 over `0x00 ‖ binary CID`).
    pub(crate) fn cid_member(&mut self, key: &str) -> Option<cid::Cid> {
        self.key(key)?;
        self.cid()
    }

    /// The member `key` holding a CID or null.
    pub(crate) fn opt_cid_member(&mut self, key: &str) -> Option<Option<cid::Cid>> {
        self.key(key)?;
        if self.rest.first() == Some(&NULL) {
            self.take(1)?;
            return Some(None);
        }
        self.cid().map(Some)
    }

    fn cid(&mut self) -> Option<cid::Cid> {
        if self.take(2)? != CID_TAG {
            return None;
        }
        let n = self.len(BYTES)?;
        let (&prefix, binary) = self.take(n)?.split_first()?;
        if prefix != 0 {
            return None;
        }
        let cid = cid::Cid::try_from(binary).ok()?;
        (cid.encoded_len() == binary.len()).then_some(cid)
    }

    /// The value read, if every byte was read.
    pub(crate) fn end<T>(&self, value: T) -> Option<T> {
        self.rest.is_empty().then_some(value)
    }
}
