//! The stored form of an undo log (`spec/convergence.md` §3).
//!
//! An undo log lists keys in key order, and the keys of one record share long prefixes (the
//! thread's state prefix, the collection, often the index and value). The compact encoding
//! (version 1) writes the common prefix of all keys once and each key as the length it shares
//! with the previous one plus the rest:
//!
//! ```text
//! 01 ‖ uvarint(len P) ‖ P ‖ { uvarint(shared) ‖ uvarint(len rest) ‖ rest ‖ (00 | 01 ‖ uvarint(len v) ‖ v) }*
//! ```
//!
//! where the keys are `P ‖ (first `shared` bytes of the previous key's suffix) ‖ rest`, and
//! `00` stands for "absent", `01 ‖ v` for the old value `v`. `uvarint` is unsigned LEB128.
//! Stores written before hold the DAG-CBOR array `[[key, old value or null], ...]`, whose
//! first byte is an array header (`80`..`9f`), never `01`; both are read.

use super::UndoLog;
use serde_bytes::ByteBuf;
use threads_protocol::store::StoreError;

/// First byte of the compact encoding.
const COMPACT_V1: u8 = 0x01;

fn put_uvarint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Encodes an undo log compactly (the entries must be in key order, as runs produce them;
/// any order decodes back unchanged, only less compactly).
pub fn encode(undo: &UndoLog) -> Vec<u8> {
    let prefix_len = match undo.first() {
        None => 0,
        Some((first, _)) => undo
            .iter()
            .fold(first.len(), |n, (k, _)| n.min(common_prefix(first, k))),
    };
    let prefix = undo.first().map_or(&[][..], |(k, _)| &k[..prefix_len]);
    let size: usize = undo
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 8)
        .sum();
    let mut out = Vec::with_capacity(size + prefix_len + 8);
    out.push(COMPACT_V1);
    put_uvarint(&mut out, prefix_len);
    out.extend_from_slice(prefix);
    let mut previous: &[u8] = &[];
    for (key, old) in undo {
        let suffix = &key[prefix_len..];
        let shared = common_prefix(previous, suffix);
        put_uvarint(&mut out, shared);
        put_uvarint(&mut out, suffix.len() - shared);
        out.extend_from_slice(&suffix[shared..]);
        match old {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                put_uvarint(&mut out, v.len());
                out.extend_from_slice(v);
            }
        }
        previous = suffix;
    }
    out
}

/// Reads a stored undo log, in either encoding.
pub fn decode(bytes: &[u8]) -> Result<UndoLog, StoreError> {
    if bytes.first() != Some(&COMPACT_V1) {
        return serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("undo log: {e}")));
    }
    let mut r = Reader { bytes, at: 1 };
    let prefix = r.take_len()?.to_vec();
    let mut out = UndoLog::new();
    let mut previous: Vec<u8> = Vec::new();
    while r.at < bytes.len() {
        let shared = r.uvarint()?;
        if shared > previous.len() {
            return Err(malformed());
        }
        let rest = r.take_len()?;
        let mut suffix = previous[..shared].to_vec();
        suffix.extend_from_slice(rest);
        let old = match r.byte()? {
            0 => None,
            1 => Some(ByteBuf::from(r.take_len()?.to_vec())),
            _ => return Err(malformed()),
        };
        let mut key = prefix.clone();
        key.extend_from_slice(&suffix);
        out.push((ByteBuf::from(key), old));
        previous = suffix;
    }
    Ok(out)
}

fn malformed() -> StoreError {
    StoreError::Corrupt("undo log: malformed compact encoding".into())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self.bytes.get(self.at).ok_or_else(malformed)?;
        self.at += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<usize, StoreError> {
        let mut v: usize = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = usize::from(b & 0x7f);
            if shift > 0 && part.leading_zeros() < shift as u32 {
                return Err(malformed());
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed())
    }

    fn take_len(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.uvarint()?;
        let end = self.at.checked_add(n).ok_or_else(malformed)?;
        let out = self.bytes.get(self.at..end).ok_or_else(malformed)?;
        self.at = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: &[(&[u8], Option<&[u8]>)]) -> UndoLog {
        entries
            .iter()
            .map(|(k, v)| {
                (
                    ByteBuf::from(k.to_vec()),
                    v.map(|v| ByteBuf::from(v.to_vec())),
                )
            })
            .collect()
    }

    #[test]
    fn round_trips_and_reads_the_old_encoding() {
        let long = vec![7u8; 300];
        for undo in [
            log(&[]),
            log(&[(b"k", None)]),
            log(&[(b"", Some(b""))]),
            log(&[
                (b"0state\x02people\x00\x01a", None),
                (b"0state\x02people\x00\x01ab", Some(b"{}")),
                (b"0state\x03people\x00\x01age", Some(&long)),
                (b"0t", None),
            ]),
        ] {
            let compact = encode(&undo);
            assert_eq!(compact[0], COMPACT_V1);
            assert_eq!(decode(&compact).unwrap(), undo);
            let old = serde_ipld_dagcbor::to_vec(&undo).unwrap();
            assert_eq!(decode(&old).unwrap(), undo);
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let good = encode(&log(&[(b"abc", Some(b"v")), (b"abd", None)]));
        for n in 1..good.len() {
            // Every strict prefix that cuts an entry is refused, never a panic.
            let _ = decode(&good[..n]);
        }
        assert!(decode(&[COMPACT_V1, 5, b'a']).is_err());
        assert!(decode(&[COMPACT_V1, 0, 3, 0, 0]).is_err()); // shares more than there was
        assert!(decode(&[COMPACT_V1, 0, 0, 1, b'k', 2]).is_err()); // bad presence byte
        assert!(
            decode(&[
                COMPACT_V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])
            .is_err()
        );
        assert!(decode(&[0xa0]).is_err());
    }
}
