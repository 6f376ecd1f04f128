//! The peer messages' canonical DAG-CBOR, written straight into one buffer.
//!
//! `serde_ipld_dagcbor` encodes every struct by serialising each member into a buffer of its
//! own, copying it into a list, sorting the list and copying it out again (it cannot know that
//! the members already come in canonical order); a nested struct repeats that one level down.
//! For the small, hot messages of the peer protocol (a frame, its payload, the log heights)
//! that made encoding cost more than the HMAC over the result. Here each message's members are
//! written in their canonical order (every key is one letter, so the order is the letters'
//! byte order) with `cbor4ii`'s primitives. The bytes are the same as the serde encoding's:
//! the tests check it on every kind of payload, and `reader` reads them back.

use cbor4ii::core::enc::{self, Encode};
use cbor4ii::core::types::{Array, Bytes, Map};
use cbor4ii::core::utils::BufWriter;

use super::{Frame, LogHeightEntry, Payload};

/// A growing buffer, with the few CBOR items messages use.
struct Out(BufWriter);

/// What `BufWriter` reports: only that memory for the buffer could not be reserved.
type WriteError = <BufWriter as enc::Write>::Error;

impl Out {
    fn with_capacity(n: usize) -> Self {
        Out(BufWriter::new(Vec::with_capacity(n)))
    }

    fn done(self) -> Vec<u8> {
        self.0.into_inner()
    }

    /// Runs one encoding step. The items written here are always valid CBOR, so a step fails
    /// only when memory runs out, which growing any other `Vec` would abort on as well.
    fn put(&mut self, step: impl FnOnce(&mut BufWriter) -> Result<(), enc::Error<WriteError>>) {
        step(&mut self.0).expect("encoding a peer message fails only without memory");
    }

    fn map(&mut self, len: usize) {
        self.put(|w| Map::bounded(len, w));
    }

    fn array(&mut self, len: usize) {
        self.put(|w| Array::bounded(len, w));
    }

    fn key(&mut self, key: &str) {
        self.put(|w| key.encode(w));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.put(|w| Bytes(b).encode(w));
    }

    fn uint(&mut self, n: u64) {
        self.put(|w| n.encode(w));
    }

    /// A member whose value is a byte string.
    fn bytes_member(&mut self, key: &str, b: &[u8]) {
        self.key(key);
        self.bytes(b);
    }

    /// A member whose value is an unsigned integer.
    fn uint_member(&mut self, key: &str, n: u64) {
        self.key(key);
        self.uint(n);
    }

    /// A member whose value is a boolean.
    fn bool_member(&mut self, key: &str, b: bool) {
        self.key(key);
        self.put(|w| b.encode(w));
    }

    /// A member whose value is a list of byte strings.
    fn list_member(&mut self, key: &str, items: &[serde_bytes::ByteBuf]) {
        self.key(key);
        self.array(items.len());
        for item in items {
            self.bytes(item);
        }
    }
}

/// The canonical encoding of a frame around an encoded payload: `{"m": payload, "p": proof,
/// "v": version}`.
pub(super) fn frame(payload: &[u8], proof: &[u8], version: u64) -> Vec<u8> {
    let mut out = Out::with_capacity(payload.len() + proof.len() + 16);
    out.map(3);
    out.bytes_member("m", payload);
    out.bytes_member("p", proof);
    out.uint_member("v", version);
    out.done()
}

/// The canonical encoding of a payload: a one-member map from the variant's name to a map of
/// its fields, each map's keys in byte order.
pub(super) fn payload(p: &Payload) -> Vec<u8> {
    let mut out = Out::with_capacity(estimate(p));
    out.map(1);
    out.key(p.kind());
    match p {
        Payload::Digest { thread, digest } => {
            out.map(2);
            out.bytes_member("d", digest);
            out.bytes_member("t", thread);
        }
        Payload::Heights {
            thread,
            logs,
            peers,
            reply,
        } => {
            out.map(4);
            out.key("l");
            out.array(logs.len());
            for LogHeightEntry { height, log } in logs {
                out.map(2);
                out.uint_member("h", *height);
                out.bytes_member("l", log);
            }
            out.list_member("p", peers);
            out.bool_member("r", *reply);
            out.bytes_member("t", thread);
        }
        Payload::Pull {
            thread,
            log,
            from,
            max,
        } => {
            out.map(4);
            out.uint_member("f", *from);
            out.bytes_member("l", log);
            out.uint_member("n", u64::from(*max));
            out.bytes_member("t", thread);
        }
        Payload::Page {
            thread,
            log,
            from,
            records,
            height,
        } => {
            out.map(5);
            out.uint_member("f", *from);
            out.uint_member("h", *height);
            out.bytes_member("l", log);
            out.list_member("r", records);
            out.bytes_member("t", thread);
        }
        Payload::Push {
            thread,
            log,
            records,
        } => {
            out.map(3);
            out.bytes_member("l", log);
            out.list_member("r", records);
            out.bytes_member("t", thread);
        }
        Payload::Invite {
            thread,
            service_key,
        } => {
            out.map(2);
            out.bytes_member("k", service_key);
            out.bytes_member("t", thread);
        }
    }
    out.done()
}

/// Bytes to reserve for a payload: its byte strings plus a little for every item's header,
/// so that a page of records is copied into the buffer once, without regrowing it.
fn estimate(p: &Payload) -> usize {
    let items = |v: &[serde_bytes::ByteBuf]| v.iter().map(|b| b.len() + 5).sum::<usize>();
    64 + p.thread_bytes().len()
        + match p {
            Payload::Digest { digest, .. } => digest.len(),
            Payload::Heights { logs, peers, .. } => {
                logs.iter().map(|l| l.log.len() + 16).sum::<usize>() + items(peers)
            }
            Payload::Pull { log, .. } => log.len(),
            Payload::Page { log, records, .. } | Payload::Push { log, records, .. } => {
                log.len() + items(records)
            }
            Payload::Invite { service_key, .. } => service_key.len(),
        }
}

/// Stops compiling when [`Frame`] gains a member, which [`frame`] would then have to write
/// (the payload's variants are matched member by member in [`payload`] already).
const _: fn(Frame) = |f| {
    let Frame {
        payload: _,
        proof: _,
        version: _,
    } = f;
};

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::record::wire;
    use serde_bytes::ByteBuf;

    fn bufs(n: usize, len: usize) -> Vec<ByteBuf> {
        (0..n)
            .map(|i| ByteBuf::from(vec![i as u8; len + i]))
            .collect()
    }

    /// Every kind of payload, with empty, short and long (multi-byte length) members and
    /// integers at the edges of each CBOR integer width.
    pub(in crate::engine::message) fn samples() -> Vec<Payload> {
        let mut out = Vec::new();
        for (n, len) in [(0, 0), (1, 3), (3, 40), (30, 300), (2, 70_000)] {
            let t = vec![7u8; len % 40 + 1];
            for int in [
                0u64,
                23,
                24,
                255,
                256,
                65_535,
                65_536,
                u32::MAX as u64,
                u64::MAX,
            ] {
                out.push(Payload::Digest {
                    thread: t.clone(),
                    digest: vec![1; len],
                });
                out.push(Payload::Heights {
                    thread: t.clone(),
                    logs: (0..n)
                        .map(|i| LogHeightEntry {
                            height: int.wrapping_add(i as u64),
                            log: vec![i as u8; 38],
                        })
                        .collect(),
                    peers: bufs(n, 38),
                    reply: n % 2 == 0,
                });
                out.push(Payload::Pull {
                    thread: t.clone(),
                    log: vec![2; len],
                    from: int,
                    max: int as u32,
                });
                out.push(Payload::Page {
                    thread: t.clone(),
                    log: vec![3; 38],
                    from: int,
                    records: bufs(n, len),
                    height: int / 2,
                });
                out.push(Payload::Push {
                    thread: t.clone(),
                    log: vec![4; 38],
                    records: bufs(n, len),
                });
                out.push(Payload::Invite {
                    thread: t.clone(),
                    service_key: vec![5; 32],
                });
            }
        }
        out
    }

    #[test]
    fn payloads_encode_exactly_as_the_serde_encoding_does() {
        let samples = samples();
        assert!(samples.len() > 200);
        for p in &samples {
            assert_eq!(payload(p), wire::encode(p), "{}", p.kind());
        }
    }

    #[test]
    fn frames_encode_exactly_as_the_serde_encoding_does() {
        for p in samples().iter().step_by(7) {
            let bytes = payload(p);
            for (proof, version) in [(vec![9u8; 32], 1), (vec![], 0), (vec![1; 300], u64::MAX)] {
                let serde = wire::encode(&Frame {
                    payload: bytes.clone(),
                    proof: proof.clone(),
                    version,
                });
                assert_eq!(frame(&bytes, &proof, version), serde);
            }
        }
    }
}
