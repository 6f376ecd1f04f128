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

/// Bytes [`KeyBuf::with_prefix`] reserves beyond the prefix.
const FIELD_ROOM: usize = 48;

/// Builds a composite key field by field (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyBuf {
    buf: Vec<u8>,
}

impl KeyBuf {
    /// A key in key space `tag`.
    pub fn new(tag: u8) -> Self {
        // Room for the fields of most keys (a thread id, a log id and a counter, or a fold
        // key with an order key), so that appending them does not move the key again.
        let mut buf = Vec::with_capacity(1 + 2 * FIELD_ROOM);
        buf.push(tag);
        KeyBuf { buf }
    }

    /// A key continuing an already-encoded prefix.
    pub fn with_prefix(prefix: &[u8]) -> Self {
        // Room for the fields that usually follow (an id or two), so that appending them does
        // not move the key again.
        let mut buf = Vec::with_capacity(prefix.len() + FIELD_ROOM);
        buf.extend_from_slice(prefix);
        KeyBuf { buf }
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
        self.buf.reserve(v.len() + 2);
        // Copied in runs between zero bytes (most fields have none).
        let mut rest = v;
        while let Some(i) = rest.iter().position(|&b| b == 0) {
            self.buf.extend_from_slice(&rest[..=i]);
            self.buf.push(0xff);
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
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
        // Copied in runs up to each zero byte, which is an escape or the terminator.
        let mut out = Vec::new();
        let mut rest = self.rest;
        loop {
            let Some(zero) = rest.iter().position(|&b| b == 0) else {
                return Err(corrupt("unterminated byte string"));
            };
            out.extend_from_slice(&rest[..zero]);
            match rest.get(zero + 1) {
                Some(0x01) => {
                    self.rest = &rest[zero + 2..];
                    return Ok(out);
                }
                Some(0xff) => {
                    out.push(0);
                    rest = &rest[zero + 2..];
                }
                Some(_) => return Err(corrupt("bad escape in byte string")),
                None => return Err(corrupt("unterminated byte string")),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The escape of [`KeyBuf::bytes`], one byte at a time.
    fn escaped(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in v {
            out.push(b);
            if b == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0x00, 0x01]);
        out
    }

    #[test]
    fn byte_fields_escape_every_zero_wherever_it_is() {
        // Every string of up to five bytes over {00, 01, ff}, after a prefix and alone.
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=5 {
            let mut next = Vec::new();
            for s in strings.iter().filter(|s| s.len() == len - 1) {
                for b in [0x00, 0x01, 0xff] {
                    let mut t = s.clone();
                    t.push(b);
                    next.push(t);
                }
            }
            strings.extend(next);
        }
        assert_eq!(strings.len(), 1 + 3 + 9 + 27 + 81 + 243);
        for s in &strings {
            assert_eq!(KeyBuf::new(7).bytes(s).as_bytes()[1..], escaped(s)[..]);
            let with = KeyBuf::with_prefix(b"pre").bytes(s).bytes(s).into_vec();
            assert_eq!(with, [b"pre".to_vec(), escaped(s), escaped(s)].concat());
            let mut r = KeyReader::new(&with[3..]);
            assert_eq!(r.bytes().unwrap(), *s);
            assert_eq!(r.bytes().unwrap(), *s);
            r.finish().unwrap();
        }
    }

    /// The reading rule spelled out byte by byte: what [`KeyReader::bytes`] must agree with.
    fn read_slowly(v: &[u8]) -> Option<(Vec<u8>, usize)> {
        let (mut out, mut i) = (Vec::new(), 0);
        loop {
            match (v.get(i), v.get(i + 1)) {
                (Some(0), Some(0x01)) => return Some((out, i + 2)),
                (Some(0), Some(0xff)) => {
                    out.push(0);
                    i += 2;
                }
                (Some(0), _) | (None, _) => return None,
                (Some(&b), _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
    }

    #[test]
    fn byte_fields_read_well_formed_and_malformed_bytes_by_the_rule() {
        // Every string of up to six bytes over {00, 01, 02, ff}: terminated, unterminated,
        // bad escapes, a zero at the end.
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 1..=6 {
            let next: Vec<Vec<u8>> = last
                .iter()
                .flat_map(|s| [0x00, 0x01, 0x02, 0xff].map(|b| [s.as_slice(), &[b]].concat()))
                .collect();
            strings.extend(next.iter().cloned());
            last = next;
        }
        let (mut read, mut refused) = (0, 0);
        for s in &strings {
            let mut r = KeyReader::new(s);
            match (r.bytes(), read_slowly(s)) {
                (Ok(got), Some((want, used))) => {
                    assert_eq!((got, r.rest()), (want, &s[used..]), "{s:?}");
                    read += 1;
                }
                (Err(_), None) => refused += 1,
                (got, want) => panic!("{s:?}: {got:?} against {want:?}"),
            }
        }
        assert!(
            read > 100 && refused > 1000,
            "{read} read, {refused} refused"
        );
    }
}
