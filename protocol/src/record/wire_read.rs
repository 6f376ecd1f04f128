//! The record nodes read back from their canonical bytes without serde (see
//! [`crate::cbor_read`]). Each reader accepts the form [`super::wire::Node::write`] writes and
//! nothing else it can see; [`super::wire::decode`] still compares what it returns with the
//! bytes and asks serde about anything the reader refuses, so decoding accepts and refuses
//! exactly what it did with serde alone.

use super::wire::{
    BundleNode, EventNode, HeaderNode, SealedNode, SignedRecordNode, UnsignedRecordNode,
};
use crate::cbor_read::Reader;

pub(super) fn sealed(bytes: &[u8]) -> Option<SealedNode> {
    let mut r = Reader::new(bytes);
    r.map(3)?;
    let ciphertext = r.bytes_member("c")?;
    let nonce = r.bytes_member("n")?;
    let version = r.uint_member("v")?;
    r.end(SealedNode {
        ciphertext,
        nonce,
        version,
    })
}

pub(super) fn event(bytes: &[u8]) -> Option<EventNode> {
    let mut r = Reader::new(bytes);
    r.map(3)?;
    let body = r.cid_member("b")?;
    let header = r.cid_member("h")?;
    let version = r.uint_member("v")?;
    r.end(EventNode {
        body,
        header,
        version,
    })
}

pub(super) fn header(bytes: &[u8]) -> Option<HeaderNode> {
    let mut r = Reader::new(bytes);
    r.map(3)?;
    let body_key = r.bytes_member("k")?;
    let time = r.uint_member("t")?;
    let version = r.uint_member("v")?;
    r.end(HeaderNode {
        body_key,
        time,
        version,
    })
}

pub(super) fn unsigned(bytes: &[u8]) -> Option<UnsignedRecordNode> {
    let mut r = Reader::new(bytes);
    r.map(7)?;
    let author = r.bytes_member("a")?;
    let counter = r.uint_member("c")?;
    let event = r.cid_member("e")?;
    let clock = r.uint_member("l")?;
    let prev = r.opt_cid_member("p")?;
    let thread = r.bytes_member("t")?;
    let version = r.uint_member("v")?;
    r.end(UnsignedRecordNode {
        author,
        counter,
        event,
        clock,
        prev,
        thread,
        version,
    })
}

pub(super) fn signed(bytes: &[u8]) -> Option<SignedRecordNode> {
    let mut r = Reader::new(bytes);
    r.map(8)?;
    let author = r.bytes_member("a")?;
    let counter = r.uint_member("c")?;
    let event = r.cid_member("e")?;
    let clock = r.uint_member("l")?;
    let prev = r.opt_cid_member("p")?;
    let signature = r.bytes_member("s")?;
    let thread = r.bytes_member("t")?;
    let version = r.uint_member("v")?;
    r.end(SignedRecordNode {
        author,
        counter,
        event,
        clock,
        prev,
        signature,
        thread,
        version,
    })
}

pub(super) fn bundle(bytes: &[u8]) -> Option<BundleNode> {
    let mut r = Reader::new(bytes);
    r.map(5)?;
    let body = r.bytes_member("b")?;
    let event = r.bytes_member("e")?;
    let header = r.bytes_member("h")?;
    let record = r.bytes_member("r")?;
    let version = r.uint_member("v")?;
    r.end(BundleNode {
        body,
        event,
        header,
        record,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::super::wire::{self, Node};
    use super::super::{BlockKind, RecordBundle, RecordDraft, RecordError, create, seal};
    use crate::counter::{LamportClock, LogCounter};
    use crate::id::{ThreadId, Variant};
    use crate::identity::PrivateKey;
    use crate::key::ThreadKey;
    use crate::rng::seeded;
    use cid::Cid;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;

    /// The canonical bytes of every kind of block of two records (the first has no `prev`),
    /// with the kind each is decoded as.
    fn samples() -> Vec<(Kind, Vec<u8>)> {
        let mut rng = seeded(11);
        let thread = ThreadId::random(Variant::Raw, &mut rng);
        let key = ThreadKey::random(&mut rng, true);
        let log_key = PrivateKey::generate(&mut rng);
        let author = PrivateKey::generate(&mut rng).public();
        let mut out = Vec::new();
        let mut prev: Option<Cid> = None;
        for counter in 1..=2 {
            let draft = RecordDraft {
                thread: &thread,
                author: &author,
                prev,
                counter: LogCounter::new(counter).expect("not 0"),
                clock: LamportClock(counter + 3),
                time: 1_600_000_000_000_000_000,
                body: b"a body",
            };
            let record = create(&draft, &log_key, &key, &mut rng).expect("a valid draft");
            let bundle: &RecordBundle = record.record().bundle();
            prev = Some(record.record().cid());
            let open = |kind, sealed: &[u8], key: &[u8; 32]| {
                let node = seal::parse(kind, sealed, usize::MAX).expect("sealed");
                seal::open(kind, key, &node).expect("opens")
            };
            let envelope = open(BlockKind::Record, &bundle.record, key.service().as_bytes());
            let read = key.read().expect("a read key");
            let header = open(BlockKind::Header, &bundle.header, read.as_bytes());
            let signed: wire::SignedRecordNode =
                wire::decode(BlockKind::Record, &envelope, usize::MAX).expect("decodes");
            out.extend([
                (Kind::Bundle, bundle.encode()),
                (Kind::Sealed, bundle.record.clone()),
                (Kind::Sealed, bundle.body.clone()),
                (Kind::Event, bundle.event.clone()),
                (Kind::Header, header),
                (Kind::Unsigned, signed.unsigned().to_canonical()),
                (Kind::Signed, envelope),
            ]);
        }
        out
    }

    /// The node type a sample is decoded as.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Sealed,
        Event,
        Header,
        Unsigned,
        Signed,
        Bundle,
    }

    /// `decode` and serde alone give the same value, or the same error.
    fn same_as_serde(kind: Kind, bytes: &[u8]) -> bool {
        fn one<T: Node + DeserializeOwned + PartialEq>(block: BlockKind, bytes: &[u8]) -> bool {
            let fast: Result<T, RecordError> = wire::decode(block, bytes, usize::MAX);
            fast == wire::decode_with_serde(block, bytes)
        }
        match kind {
            Kind::Sealed => one::<wire::SealedNode>(BlockKind::Record, bytes),
            Kind::Event => one::<wire::EventNode>(BlockKind::Event, bytes),
            Kind::Header => one::<wire::HeaderNode>(BlockKind::Header, bytes),
            Kind::Unsigned => one::<wire::UnsignedRecordNode>(BlockKind::Record, bytes),
            Kind::Signed => one::<wire::SignedRecordNode>(BlockKind::Record, bytes),
            Kind::Bundle => one::<wire::BundleNode>(BlockKind::Bundle, bytes),
        }
    }

    /// Whether the reader itself (not serde) takes the bytes.
    fn read_directly(kind: Kind, bytes: &[u8]) -> bool {
        match kind {
            Kind::Sealed => super::sealed(bytes).is_some(),
            Kind::Event => super::event(bytes).is_some(),
            Kind::Header => super::header(bytes).is_some(),
            Kind::Unsigned => super::unsigned(bytes).is_some(),
            Kind::Signed => super::signed(bytes).is_some(),
            Kind::Bundle => super::bundle(bytes).is_some(),
        }
    }

    #[test]
    fn the_canonical_blocks_of_records_are_read_without_serde() {
        for (kind, bytes) in samples() {
            assert!(read_directly(kind, &bytes), "{kind:?}");
            assert!(same_as_serde(kind, &bytes), "{kind:?}");
        }
    }

    /// Every single-byte change, insertion and truncation of every kind of block decodes
    /// exactly as serde alone decodes it (value, or error and its message).
    #[test]
    fn decodes_every_mutation_as_serde_does() {
        let mut checked = 0;
        for (kind, bytes) in samples() {
            for i in 0..bytes.len() {
                for v in [
                    0x00, 0x01, 0x17, 0x18, 0x20, 0x40, 0x41, 0x60, 0x80, 0xa0, 0xd8, 0xf5, 0xf6,
                    0xff,
                ] {
                    let mut m = bytes.clone();
                    m[i] = v;
                    assert!(same_as_serde(kind, &m), "{kind:?}, byte {i} set to {v:#x}");
                    checked += 1;
                }
                assert!(same_as_serde(kind, &bytes[..i]), "{kind:?} cut at {i}");
                // An inserted 0x18 or 0x19 makes a following small head a long one.
                for v in [0x00, 0x18, 0x19] {
                    let mut longer = bytes.clone();
                    longer.insert(i, v);
                    assert!(
                        same_as_serde(kind, &longer),
                        "{kind:?}, {v:#x} inserted at {i}"
                    );
                }
            }
        }
        assert!(checked > 20_000, "{checked}");
    }

    proptest! {
        #[test]
        fn decodes_arbitrary_bytes_as_serde_does(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            kind in 0usize..6,
        ) {
            let kinds = [Kind::Sealed, Kind::Event, Kind::Header, Kind::Unsigned, Kind::Signed, Kind::Bundle];
            prop_assert!(same_as_serde(kinds[kind], &bytes));
        }

        #[test]
        fn decodes_a_changed_block_as_serde_does(
            which in 0usize..1000,
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
        ) {
            let samples = samples();
            let (kind, mut bytes) = samples[which % samples.len()].clone();
            let i = at.index(bytes.len());
            bytes[i] = value;
            prop_assert!(same_as_serde(kind, &bytes));
        }
    }
}
