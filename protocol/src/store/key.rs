//! Order-preserving composite keys: encodings whose byte order equals the order of the tuples
//! they encode, so that range and prefix scans over a key space follow the tuple order.
//!
//! Each key starts with a key-space tag byte, followed by fields:
//! * `u8`, `u32`, `u64`: fixed width, big-endian;
//! * `fixed`: raw bytes; only order-preserving if every key has the same length at that position
//!   (hashes, fixed-size ids);
//! * `bytes` / `str`: variable length, self-delimiting: every `0x00` is written as `0x00 0xff`
//!   and the field ends with `0x00 0x01`. A shorter string sorts before its extensions and no
//!   encoded field is a prefix of another, so a prefix scan on `tag ‖ bytes(a)` only finds `a`.

use super::StoreError;

/// Builds a composite key field by field (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyBuf {
    buf: Vec<u8>,
}

impl KeyBuf {
    /// A key in key space `tag`.
    pub fn new(tag: u8) -> Self {
        KeyBuf { buf: vec![tag] }
    }

    /// A key continuing an already-encoded prefix.
    pub fn with_prefix(prefix: &[u8]) -> Self {
        KeyBuf {
            buf: prefix.to_vec(),
        }
    }

    /// Appends one byte.
    pub fn u8(mut self, v: u8) -> Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(mut self, v: u32) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw bytes of a fixed-length field.
    pub fn fixed(mut self, v: &[u8]) -> Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a variable-length byte string, escaped and terminated.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        for &b in v {
            self.buf.push(b);
            if b == 0 {
                self.buf.push(0xff);
            }
        }
        self.buf.extend_from_slice(&[0x00, 0x01]);
        self
    }

    /// Appends a UTF-8 string, encoded like [`bytes`](Self::bytes).
    pub fn str(self, v: &str) -> Self {
        self.bytes(v.as_bytes())
    }

    /// Drops the fields after the first `len` bytes, to build keys that share a prefix in one
    /// buffer (no effect when the key is not longer).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// The key so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished key.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads back the fields of a key built with [`KeyBuf`], in the same order. Keys come from
/// storage, so a malformed one is reported as [`StoreError::Corrupt`].
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("malformed key: {what}"))
}

impl<'a> KeyReader<'a> {
    /// A reader positioned at the start of `key` (its tag byte).
    pub fn new(key: &'a [u8]) -> Self {
        KeyReader { rest: key }
    }

    /// Reads `n` raw bytes.
    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(corrupt("truncated field"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.fixed(1)?[0])
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, StoreError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.fixed(4)?);
        Ok(u32::from_be_bytes(b))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, StoreError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.fixed(8)?);
        Ok(u64::from_be_bytes(b))
    }

    /// Reads an escaped, terminated byte string.
    pub fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match self.rest.get(i..i + 2) {
                Some([0x00, 0x01]) => break,
                Some([0x00, 0xff]) => {
                    out.push(0);
                    i += 2;
                }
                Some([0x00, _]) => return Err(corrupt("bad escape in byte string")),
                _ => match self.rest.get(i) {
                    Some(&b) if b != 0 => {
                        out.push(b);
                        i += 1;
                    }
                    _ => return Err(corrupt("unterminated byte string")),
                },
            }
        }
        self.rest = &self.rest[i + 2..];
        Ok(out)
    }

    /// Reads a string written with [`KeyBuf::str`].
    pub fn str(&mut self) -> Result<String, StoreError> {
        String::from_utf8(self.bytes()?).map_err(|_| corrupt("string field is not UTF-8"))
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Succeeds only if every byte was read.
    pub fn finish(self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes"))
        }
    }
}
