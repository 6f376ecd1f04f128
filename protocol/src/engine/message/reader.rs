//! Peer messages read back from their canonical bytes without serde.
//!
//! Decoding through serde cost a message about as much as its HMAC: every map key is decoded
//! into a string and matched by name, and the payload's enum goes through serde's generic
//! visitors. Peers send the canonical encoding ([`super::canonical`]), and the serde decoder
//! accepts nothing else (keys in canonical order, integers and lengths in shortest form), so
//! this reader accepts exactly that: maps of the expected size with the expected keys in
//! order, shortest heads, no trailing bytes. What it accepts is the canonical encoding of the
//! value it returns, which serde reads to the same value. For any other bytes it returns
//! `None` and [`super::decode`] asks serde, which refuses them and says why, so the messages
//! accepted and the errors given are the same as with serde alone (the tests compare both on
//! every single-byte change of each kind of message and on arbitrary bytes).

use super::{Frame, LogHeightEntry, Payload};
use crate::cbor_read::{ARRAY, Reader, TEXT};

/// A frame, if `bytes` are its canonical encoding.
pub(super) fn frame(bytes: &[u8]) -> Option<Frame> {
    let mut r = Reader::new(bytes);
    r.map(3)?;
    let payload = r.bytes_member("m")?;
    let proof = r.bytes_member("p")?;
    let version = r.uint_member("v")?;
    r.end(Frame {
        payload,
        proof,
        version,
    })
}

/// A payload, if `bytes` are its canonical encoding.
pub(super) fn payload(bytes: &[u8]) -> Option<Payload> {
    let mut r = Reader::new(bytes);
    r.map(1)?;
    let n = r.len(TEXT)?;
    let kind = r.take(n)?;
    let p = match kind {
        b"digest" => {
            r.map(2)?;
            let digest = r.bytes_member("d")?;
            let thread = r.bytes_member("t")?;
            Payload::Digest { thread, digest }
        }
        b"heights" => {
            r.map(4)?;
            r.key("l")?;
            let n = r.len(ARRAY)?;
            let mut logs = Vec::with_capacity(n);
            for _ in 0..n {
                r.map(2)?;
                let height = r.uint_member("h")?;
                let log = r.bytes_member("l")?;
                logs.push(LogHeightEntry { height, log });
            }
            let peers = r.list_member("p")?;
            let reply = r.bool_member("r")?;
            let thread = r.bytes_member("t")?;
            Payload::Heights {
                thread,
                logs,
                peers,
                reply,
            }
        }
        b"pull" => {
            r.map(4)?;
            let from = r.uint_member("f")?;
            let log = r.bytes_member("l")?;
            let max = u32::try_from(r.uint_member("n")?).ok()?;
            let thread = r.bytes_member("t")?;
            Payload::Pull {
                thread,
                log,
                from,
                max,
            }
        }
        b"page" => {
            r.map(5)?;
            let from = r.uint_member("f")?;
            let height = r.uint_member("h")?;
            let log = r.bytes_member("l")?;
            let records = r.list_member("r")?;
            let thread = r.bytes_member("t")?;
            Payload::Page {
                thread,
                log,
                from,
                records,
                height,
            }
        }
        b"push" => {
            r.map(3)?;
            let log = r.bytes_member("l")?;
            let records = r.list_member("r")?;
            let thread = r.bytes_member("t")?;
            Payload::Push {
                thread,
                log,
                records,
            }
        }
        b"invite" => {
            r.map(2)?;
            let service_key = r.bytes_member("k")?;
            let thread = r.bytes_member("t")?;
            Payload::Invite {
                thread,
                service_key,
            }
        }
        _ => return None,
    };
    r.end(p)
}

#[cfg(test)]
mod tests {
    use super::super::{MessageError, canonical, decode};
    use super::*;
    use proptest::prelude::*;

    /// The decoder before this reader: serde alone.
    fn serde_decode(bytes: &[u8]) -> Result<(Frame, Payload), MessageError> {
        let frame: Frame =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| MessageError::Decode {
                what: "frame",
                reason: e.to_string(),
            })?;
        if frame.version != super::super::PROTOCOL_VERSION {
            return Err(MessageError::Version(frame.version));
        }
        let payload: Payload =
            serde_ipld_dagcbor::from_slice(&frame.payload).map_err(|e| MessageError::Decode {
                what: "payload",
                reason: e.to_string(),
            })?;
        Ok((frame, payload))
    }

    fn message(p: &Payload) -> Vec<u8> {
        canonical::frame(&canonical::payload(p), &[9; 32], 1)
    }

    /// Whatever the reader accepts is the canonical encoding of what it returns, which serde
    /// reads to the same value.
    fn check_payload_bytes(bytes: &[u8]) {
        if let Some(p) = payload(bytes) {
            assert_eq!(canonical::payload(&p), bytes);
            let by_serde: Payload = serde_ipld_dagcbor::from_slice(bytes).expect("serde reads it");
            assert_eq!(by_serde, p);
        }
    }

    #[test]
    fn reads_back_every_kind_of_payload_and_frame() {
        for p in canonical::tests::samples() {
            let bytes = canonical::payload(&p);
            assert_eq!(payload(&bytes).as_ref(), Some(&p), "{}", p.kind());
            let framed = canonical::frame(&bytes, &[9; 32], 7);
            let f = frame(&framed).expect("a canonical frame");
            assert_eq!((f.payload, f.proof, f.version), (bytes, vec![9; 32], 7));
        }
    }

    #[test]
    fn refuses_bytes_that_are_not_canonical() {
        let p = Payload::Pull {
            thread: vec![1; 3],
            log: vec![2; 3],
            from: 5,
            max: 9,
        };
        let canonical = canonical::payload(&p);
        // `from` (5) written in two bytes instead of one: refused here, and by serde too.
        let long = [&canonical[..9], &[0x18, 5], &canonical[10..]].concat();
        assert_eq!(payload(&long), None);
        assert!(serde_ipld_dagcbor::from_slice::<Payload>(&long).is_err());
        // The members in another order (`l` before `f`): refused here, and by serde too.
        let mut swapped = canonical[..7].to_vec();
        swapped.extend_from_slice(&canonical[10..16]);
        swapped.extend_from_slice(&canonical[7..10]);
        swapped.extend_from_slice(&canonical[16..]);
        assert_eq!(swapped.len(), canonical.len());
        assert_eq!(payload(&swapped), None);
        assert!(serde_ipld_dagcbor::from_slice::<Payload>(&swapped).is_err());
        assert_eq!(payload(&canonical), Some(p));
        // Trailing bytes, a larger map, a `max` beyond u32: refused here (serde decides).
        assert_eq!(payload(&[&canonical[..], &[0]].concat()), None);
        assert_eq!(payload(&[&[0xa2], &canonical[1..]].concat()), None);
        let big = Payload::Page {
            thread: vec![1],
            log: vec![2],
            from: 1,
            records: vec![],
            height: 1,
        };
        let mut bytes = canonical::payload(&big);
        bytes[1..6].copy_from_slice(b"\x64pull");
        assert_eq!(payload(&bytes), None);
    }

    /// Every single-byte change and every truncation of messages of each kind decodes
    /// exactly as serde alone decodes it (value, or error and its message).
    #[test]
    fn decodes_every_mutation_as_serde_does() {
        let mut checked = 0;
        for p in canonical::tests::samples().iter().step_by(5) {
            let bytes = message(p);
            if bytes.len() > 600 {
                continue;
            }
            for i in 0..bytes.len() {
                for v in [
                    0x00, 0x01, 0x17, 0x18, 0x40, 0x41, 0x60, 0x80, 0xa0, 0xf5, 0xff,
                ] {
                    let mut m = bytes.clone();
                    m[i] = v;
                    assert_eq!(decode(&m, usize::MAX), serde_decode(&m));
                    check_payload_bytes(&m);
                    if let Ok((f, _)) = serde_decode(&m) {
                        check_payload_bytes(&f.payload);
                    }
                    checked += 1;
                }
                assert_eq!(decode(&bytes[..i], usize::MAX), serde_decode(&bytes[..i]));
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    proptest! {
        #[test]
        fn decodes_arbitrary_bytes_as_serde_does(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            prop_assert_eq!(decode(&bytes, usize::MAX), serde_decode(&bytes));
            check_payload_bytes(&bytes);
        }

        #[test]
        fn decodes_a_changed_payload_as_serde_does(
            which in 0usize..1000,
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
        ) {
            let samples = canonical::tests::samples();
            let p = &samples[which % samples.len()];
            let mut inner = canonical::payload(p);
            let i = at.index(inner.len());
            inner[i] = value;
            check_payload_bytes(&inner);
            let m = canonical::frame(&inner, &[1; 32], 1);
            prop_assert_eq!(decode(&m, usize::MAX), serde_decode(&m));
        }
    }
}
