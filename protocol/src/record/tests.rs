use super::*;
use crate::counter::{LamportClock, LogCounter};
use crate::id::{ThreadId, Variant};
use crate::identity::PrivateKey;
use crate::key::{ServiceKey, ThreadKey};
use crate::rng::{ProtocolRng, seeded};
use proptest::prelude::*;

struct Fixture {
    rng: ProtocolRng,
    thread: ThreadId,
    key: ThreadKey,
    log_key: PrivateKey,
    author: PrivateKey,
}

fn fixture(seed: u64) -> Fixture {
    let mut rng = seeded(seed);
    let thread = ThreadId::random(Variant::Raw, &mut rng);
    let key = ThreadKey::random(&mut rng, true);
    let log_key = PrivateKey::generate(&mut rng);
    let author = PrivateKey::generate(&mut rng);
    Fixture {
        rng,
        thread,
        key,
        log_key,
        author,
    }
}

impl Fixture {
    fn log(&self) -> LogId {
        LogId::from_public_key(&self.log_key.public())
    }

    fn make(&mut self, counter: u64, prev: Option<Cid>, body: &[u8]) -> OpenedRecord {
        let author = self.author.public();
        let draft = RecordDraft {
            thread: &self.thread,
            author: &author,
            prev,
            counter: LogCounter::new(counter).unwrap(),
            clock: LamportClock(counter + 3),
            time: 1_600_000_000_000_000_000,
            body,
        };
        create(&draft, &self.log_key, &self.key, &mut self.rng).unwrap()
    }

    fn verify(&self, bundle: RecordBundle) -> Result<VerifiedRecord, RecordError> {
        verify(bundle, &self.thread, &self.log(), self.key.service())
    }
}

#[test]
fn create_verify_open_round_trip() {
    let mut f = fixture(1);
    let first = f.make(1, None, b"hello");
    let second = f.make(2, Some(first.record().cid()), b"world");

    let v = f.verify(second.record().bundle().clone()).unwrap();
    assert_eq!(v, *second.record());
    assert_eq!(v.counter(), LogCounter::new(2).unwrap());
    assert_eq!(v.clock(), LamportClock(5));
    assert_eq!(v.prev(), Some(first.record().cid()));
    assert_eq!(v.author(), &f.author.public());
    assert_eq!(v.log(), &f.log());

    let opened = open(v, f.key.read().unwrap()).unwrap();
    assert_eq!(opened.body(), b"world");
    assert_eq!(opened.time(), 1_600_000_000_000_000_000);
}

#[test]
fn bundle_encoding_round_trips() {
    let mut f = fixture(2);
    let r = f.make(1, None, b"x");
    let bytes = r.record().bundle().encode();
    assert_eq!(RecordBundle::decode(&bytes).unwrap(), *r.record().bundle());
    assert_eq!(r.record().bundle().cid(), r.record().cid());
}

#[test]
fn wrong_service_key_cannot_decrypt_envelope() {
    let mut f = fixture(3);
    let r = f.make(1, None, b"x");
    let other = ServiceKey::from_bytes([7; 32]);
    let err = verify(r.record().bundle().clone(), &f.thread, &f.log(), &other).unwrap_err();
    assert_eq!(
        err,
        RecordError::CannotDecrypt {
            block: BlockKind::Record
        }
    );
    assert!(err.to_string().contains("cannot decrypt"));
}

#[test]
fn wrong_read_key_cannot_decrypt_header() {
    let mut f = fixture(4);
    let r = f.make(1, None, b"x");
    let other = ThreadKey::random(&mut f.rng, true);
    let err = open(r.into_record(), other.read().unwrap()).unwrap_err();
    assert_eq!(
        err,
        RecordError::CannotDecrypt {
            block: BlockKind::Header
        }
    );
}

#[test]
fn record_signed_by_another_key_fails() {
    let mut f = fixture(5);
    let r = f.make(1, None, b"x");
    let stranger = LogId::from_public_key(&PrivateKey::generate(&mut f.rng).public());
    let err = verify(
        r.record().bundle().clone(),
        &f.thread,
        &stranger,
        f.key.service(),
    )
    .unwrap_err();
    assert!(matches!(err, RecordError::BadSignature { .. }), "{err}");
}

#[test]
fn record_offered_for_another_thread_fails() {
    let mut f = fixture(6);
    let r = f.make(1, None, b"x");
    let other = ThreadId::random(Variant::Raw, &mut f.rng);
    let err = verify(
        r.record().bundle().clone(),
        &other,
        &f.log(),
        f.key.service(),
    )
    .unwrap_err();
    assert_eq!(err, RecordError::WrongThread);
}

#[test]
fn blocks_swapped_between_records_fail() {
    let mut f = fixture(7);
    let a = f.make(1, None, b"a").into_record().into_bundle();
    let b = f.make(1, None, b"b").into_record().into_bundle();
    for (which, expected) in [
        ("event", BlockKind::Event),
        ("header", BlockKind::Header),
        ("body", BlockKind::Body),
    ] {
        let mut mixed = a.clone();
        match which {
            "event" => mixed.event = b.event.clone(),
            "header" => mixed.header = b.header.clone(),
            _ => mixed.body = b.body.clone(),
        }
        assert_eq!(
            f.verify(mixed).unwrap_err(),
            RecordError::LinkMismatch { block: expected }
        );
    }
}

#[test]
fn every_single_byte_change_is_detected() {
    let mut f = fixture(8);
    let first = f.make(1, None, b"first");
    let r = f.make(2, Some(first.record().cid()), b"some body bytes");
    let bundle = r.record().bundle().clone();
    for block in 0..4 {
        let len = match block {
            0 => bundle.record.len(),
            1 => bundle.event.len(),
            2 => bundle.header.len(),
            _ => bundle.body.len(),
        };
        for i in 0..len {
            let mut t = bundle.clone();
            let bytes = match block {
                0 => &mut t.record,
                1 => &mut t.event,
                2 => &mut t.header,
                _ => &mut t.body,
            };
            bytes[i] ^= 0x01;
            assert!(
                f.verify(t).is_err(),
                "flipping bit 0 of byte {i} of block {block} went unnoticed"
            );
        }
    }
}

#[test]
fn position_rules_are_enforced_at_creation() {
    let mut f = fixture(9);
    let author = f.author.public();
    let mut draft = RecordDraft {
        thread: &f.thread,
        author: &author,
        prev: None,
        counter: LogCounter::new(2).unwrap(),
        clock: LamportClock(2),
        time: 0,
        body: b"",
    };
    assert!(matches!(
        create(&draft, &f.log_key, &f.key, &mut f.rng),
        Err(RecordError::Malformed { .. })
    ));
    draft.counter = LogCounter::FIRST;
    draft.clock = LamportClock(0);
    assert!(matches!(
        create(&draft, &f.log_key, &f.key, &mut f.rng),
        Err(RecordError::Malformed { .. })
    ));
}

#[test]
fn oversized_body_is_refused() {
    let mut f = fixture(10);
    let author = f.author.public();
    let body = vec![0u8; MAX_BODY_LEN + 1];
    let draft = RecordDraft {
        thread: &f.thread,
        author: &author,
        prev: None,
        counter: LogCounter::FIRST,
        clock: LamportClock(1),
        time: 0,
        body: &body,
    };
    assert!(matches!(
        create(&draft, &f.log_key, &f.key, &mut f.rng),
        Err(RecordError::TooLarge { .. })
    ));
}

#[test]
fn largest_body_round_trips() {
    let mut f = fixture(11);
    let body = vec![0xabu8; MAX_BODY_LEN];
    let r = f.make(1, None, &body);
    let bundle = r.record().bundle().clone();
    assert!(bundle.encode().len() <= MAX_BUNDLE_LEN);
    let v = f
        .verify(RecordBundle::decode(&bundle.encode()).unwrap())
        .unwrap();
    assert_eq!(open(v, f.key.read().unwrap()).unwrap().body(), &body[..]);
}

#[test]
fn creating_without_read_key_is_refused() {
    let mut f = fixture(12);
    let service_only = ThreadKey::from_bytes(f.key.service().as_bytes()).unwrap();
    let author = f.author.public();
    let draft = RecordDraft {
        thread: &f.thread,
        author: &author,
        prev: None,
        counter: LogCounter::FIRST,
        clock: LamportClock(1),
        time: 0,
        body: b"",
    };
    assert_eq!(
        create(&draft, &f.log_key, &service_only, &mut f.rng).unwrap_err(),
        RecordError::NoReadKey
    );
}

#[test]
fn non_canonical_bundle_is_refused() {
    // {"b": h'', "e": h'', "h": h'', "r": h'', "v": 1} in canonical order decodes ...
    let canonical = hex::decode("a5616240616540616840617240617601").unwrap();
    assert!(RecordBundle::decode(&canonical).is_ok());
    // ... the same map with "r" first does not.
    let shuffled = hex::decode("a5617240616240616540616840617601").unwrap();
    assert_eq!(
        RecordBundle::decode(&shuffled).unwrap_err(),
        RecordError::NonCanonical {
            block: BlockKind::Bundle
        }
    );
    // Unknown members are refused too.
    let extra = hex::decode("a6616240616540616840617240617601617840").unwrap();
    assert!(matches!(
        RecordBundle::decode(&extra),
        Err(RecordError::Decode { .. })
    ));
}

#[test]
fn same_seed_gives_same_bytes() {
    let a = fixture(13).make(1, None, b"deterministic");
    let b = fixture(13).make(1, None, b"deterministic");
    assert_eq!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_any_body(seed in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..4096), counter in 1u64..1_000_000) {
        let mut f = fixture(seed);
        let prev = (counter > 1).then(|| block_cid(b"previous"));
        let r = f.make(counter, prev, &body);
        let bytes = r.record().bundle().encode();
        let v = f.verify(RecordBundle::decode(&bytes).unwrap()).unwrap();
        prop_assert_eq!(v.counter().get(), counter);
        prop_assert_eq!(v.prev(), prev);
        let o = open(v, f.key.read().unwrap()).unwrap();
        prop_assert_eq!(o.body(), &body[..]);
    }

    #[test]
    fn any_tamper_is_detected(seed in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..512), block in 0usize..4, pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut f = fixture(seed);
        let mut t = f.make(1, None, &body).into_record().into_bundle();
        let bytes = match block { 0 => &mut t.record, 1 => &mut t.event, 2 => &mut t.header, _ => &mut t.body };
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(f.verify(t).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture(0);
        let _ = RecordBundle::decode(&bytes);
        let bundle = RecordBundle { record: bytes.clone(), event: bytes.clone(), header: bytes.clone(), body: bytes };
        prop_assert!(f.verify(bundle).is_err());
    }
}

#[test]
fn a_link_not_written_d8_2a_is_a_decode_error() {
    // formats.md §1.3: a link must be written `d8 2a`. The same tag in a two-byte head
    // (`d9 00 2a`) is not a link of the subset, like another tag number: `Decode`, although
    // integers and lengths in a longer head are `NonCanonical`.
    let mut f = fixture(7);
    let event = f.make(1, None, b"x").into_record().into_bundle().event;
    assert!(wire::decode::<wire::EventNode>(BlockKind::Event, &event, usize::MAX).is_ok());
    let at = event
        .windows(2)
        .position(|w| w == [0xd8, 0x2a])
        .expect("the event links with tag 42");
    let mut longer = event[..at].to_vec();
    longer.extend_from_slice(&[0xd9, 0x00, 0x2a]);
    longer.extend_from_slice(&event[at + 2..]);
    let mut other = event.clone();
    other[at + 1] = 0x2b;
    for bytes in [longer, other] {
        assert!(matches!(
            wire::decode::<wire::EventNode>(BlockKind::Event, &bytes, usize::MAX),
            Err(RecordError::Decode {
                block: BlockKind::Event,
                ..
            })
        ));
    }
    // A version integer in a longer head than needed (`18 01` for 1) is `NonCanonical`.
    let v = event.len() - 1;
    assert_eq!(event[v], 0x01);
    let mut long_int = event[..v].to_vec();
    long_int.extend_from_slice(&[0x18, 0x01]);
    assert_eq!(
        wire::decode::<wire::EventNode>(BlockKind::Event, &long_int, usize::MAX).unwrap_err(),
        RecordError::NonCanonical {
            block: BlockKind::Event
        }
    );
}

/// A CID of the block form from a seed (or, for `raw`, of another codec).
fn any_cid(seed: u8, raw: bool) -> cid::Cid {
    let c = block_cid(&[seed; 3]);
    if raw {
        cid::Cid::new_v1(0x55, *c.hash())
    } else {
        c
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The hand-written canonical encoders write exactly what serde_ipld_dagcbor writes, and
    /// the comparison accepts exactly those bytes.
    #[test]
    fn hand_encoders_match_serde(
        a in prop::collection::vec(any::<u8>(), 0..300),
        b in prop::collection::vec(any::<u8>(), 0..70_000),
        n in any::<u64>(),
        m in prop_oneof![Just(0u64), 0u64..30, 0u64..300, 0u64..70_000, any::<u64>()],
        seed in any::<u8>(),
        raw in any::<bool>(),
        prev in any::<bool>(),
    ) {
        use wire::{Node, encode};
        fn same<T: Node + serde::Serialize + PartialEq + std::fmt::Debug>(
            v: &T,
        ) -> Result<(), TestCaseError> {
            let serde = encode(v);
            prop_assert_eq!(&v.to_canonical(), &serde);
            // The reader takes every canonical encoding back to its value.
            let read = T::read(&serde);
            prop_assert_eq!(read.as_ref(), Some(v));
            prop_assert!(v.is_encoded_by(&serde));
            let mut longer = serde.clone();
            longer.push(0);
            prop_assert!(!v.is_encoded_by(&longer));
            prop_assert!(!v.is_encoded_by(&serde[..serde.len() - 1]));
            Ok(())
        }
        same(&wire::SealedNode { ciphertext: b.clone(), nonce: a.clone(), version: m })?;
        same(&wire::EventNode { body: any_cid(seed, raw), header: any_cid(!seed, false), version: n })?;
        same(&wire::HeaderNode { body_key: a.clone(), time: n, version: m })?;
        let p = prev.then(|| any_cid(seed.wrapping_add(1), raw));
        let signed = wire::SignedRecordNode {
            author: a.clone(),
            counter: m,
            event: any_cid(seed, false),
            clock: n,
            prev: p,
            signature: a.clone(),
            thread: b[..b.len().min(40)].to_vec(),
            version: m,
        };
        same(&signed)?;
        same(&signed.unsigned())?;
        let mut unsigned = Vec::new();
        signed.write_unsigned(&mut unsigned);
        prop_assert_eq!(unsigned, encode(&signed.unsigned()));
        same(&wire::BundleNode {
            body: b.clone(),
            event: a.clone(),
            header: a.clone(),
            record: b[..b.len().min(1000)].to_vec(),
            version: n,
        })?;
        let bundle = RecordBundle { record: a.clone(), event: b.clone(), header: vec![], body: a };
        prop_assert_eq!(bundle.encode(), encode(&wire::BundleNode {
            body: bundle.body.clone(),
            event: bundle.event.clone(),
            header: vec![],
            record: bundle.record.clone(),
            version: FORMAT_VERSION,
        }));
    }
}

#[test]
fn memo_recalls_only_what_checking_again_would_give() {
    let mut f = fixture(9);
    let other = fixture(10);
    let r = f.make(1, None, b"memo");
    let bundle = r.record().bundle().clone();
    let scope = memo::MemoScope::open();
    let first = f.verify(bundle.clone()).unwrap();
    let again = f.verify(bundle.clone()).unwrap();
    assert_eq!(first, again);
    assert_eq!(again, *r.record());
    // The same envelope with one bit flipped elsewhere is checked for real, and refused.
    let mut tampered = bundle.clone();
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    assert!(f.verify(tampered).is_err());
    // The same bytes offered for another log or thread, or under another service key.
    let service = f.key.service();
    assert!(verify(bundle.clone(), &f.thread, &other.log(), service).is_err());
    assert!(verify(bundle.clone(), &other.thread, &f.log(), service).is_err());
    assert!(verify(bundle.clone(), &f.thread, &f.log(), other.key.service()).is_err());
    // Opening: the same result twice; another read key is refused.
    let read = f.key.read().unwrap();
    let opened = open_body(&bundle, read).unwrap();
    assert_eq!(opened, open_body(&bundle, read).unwrap());
    assert_eq!(opened.1, b"memo");
    assert!(open_body(&bundle, other.key.read().unwrap()).is_err());
    drop(scope);
    assert!(!memo::active());
    assert_eq!(f.verify(bundle).unwrap(), *r.record());
}
