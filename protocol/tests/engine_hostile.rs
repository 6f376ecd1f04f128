//! Hostile and broken peers: every bad input is refused, reported, and changes nothing.

mod common;

use common::*;
use serde_bytes::ByteBuf;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::message::{self, LogHeightEntry, Payload};
use threads_protocol::engine::{AcceptAll, Event, Misbehaviour, NewThread, Output, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::{ServiceKey, ThreadKey};
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordDraft};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;

/// One honest host holding a thread, and an attacker identity that knows the thread key.
struct Scene {
    net: Loopback<MemoryStore, AcceptAll>,
    store: MemoryStore,
    thread: ThreadId,
    key: ThreadKey,
    attacker: PrivateKey,
    /// Messages the host sent to the attacker.
    sent: Vec<Vec<u8>>,
}

fn scene() -> Scene {
    let (mut net, stores) = net(1, 11);
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    net.hosts[0]
        .create_record(Time(0), &info.id, None, b"honest", 0)
        .unwrap();
    net.collect();
    let mut s = Scene {
        net,
        store: stores[0].clone(),
        thread: info.id,
        key: info.key,
        attacker: PrivateKey::from_seed([9; 32]),
        sent: Vec::new(),
    };
    // The attacker holds the service key, so it can prove membership and becomes a known peer.
    let key = s.key.service().clone();
    let digest = Payload::Digest {
        thread: s.thread.to_vec(),
        digest: vec![0; 32],
    };
    assert!(s.send(&key, &digest).is_empty());
    s.sent.clear();
    s
}

impl Scene {
    fn attacker_id(&self) -> LogId {
        self.attacker.public().peer_id()
    }

    /// Sends raw bytes from the attacker and returns the misbehaviour reports it caused.
    fn send_raw(&mut self, bytes: &[u8]) -> Vec<Misbehaviour> {
        let from = self.attacker_id();
        let before = self.net.events[0].len();
        self.net.hosts[0].handle_message(Time(1), &from, bytes);
        while let Some(out) = self.net.hosts[0].poll_output() {
            match out {
                Output::Transmit { to, bytes } if to == from => self.sent.push(bytes),
                Output::Transmit { .. } => {}
                Output::Event(e) => self.net.events[0].push(e),
            }
        }
        self.net.events[0][before..]
            .iter()
            .filter_map(|e| match e {
                Event::PeerMisbehaved { reason, .. } => Some((**reason).clone()),
                _ => None,
            })
            .collect()
    }

    fn send(&mut self, key: &ServiceKey, payload: &Payload) -> Vec<Misbehaviour> {
        let to = *self.net.hosts[0].peer_id();
        let bytes = message::encode(key, &self.attacker_id(), &to, payload);
        self.send_raw(&bytes)
    }

    /// A record of a log keyed by `log_key`, at `counter` with `prev`.
    fn record(
        &self,
        log_key: &PrivateKey,
        counter: u64,
        prev: Option<cid::Cid>,
        body: &[u8],
    ) -> Vec<u8> {
        let author = log_key.public();
        let draft = RecordDraft {
            thread: &self.thread,
            author: &author,
            prev,
            counter: LogCounter::new(counter).unwrap(),
            clock: LamportClock(counter),
            time: 0,
            body,
        };
        let mut rng = seeded(counter);
        record::create(&draft, log_key, &self.key, &mut rng)
            .unwrap()
            .record()
            .bundle()
            .encode()
    }

    fn push(&mut self, log: &LogId, records: Vec<Vec<u8>>) -> Vec<Misbehaviour> {
        let key = self.key.service().clone();
        let payload = Payload::Push {
            thread: self.thread.to_vec(),
            log: log.as_bytes().to_vec(),
            records: records.into_iter().map(ByteBuf::from).collect(),
        };
        self.send(&key, &payload)
    }

    fn unchanged_since(&self, digest: [u8; 32]) -> bool {
        self.store.digest() == digest
    }
}

#[test]
fn garbage_is_refused() {
    let mut s = scene();
    let d = s.store.digest();
    for bytes in [&b""[..], b"\xff\xff\xff", b"\xa0", &[0x42; 1000]] {
        let r = s.send_raw(bytes);
        assert!(
            matches!(r.as_slice(), [Misbehaviour::InvalidMessage(_)]),
            "{r:?}"
        );
    }
    assert!(s.unchanged_since(d));
}

#[test]
fn oversized_message_is_refused_before_decoding() {
    let mut s = scene();
    let d = s.store.digest();
    let big = vec![0u8; s.net.hosts[0].config().max_message_len + 1];
    let r = s.send_raw(&big);
    assert!(
        matches!(&r[..], [Misbehaviour::InvalidMessage(m)] if m.to_string().contains("exceeds the limit")),
        "{r:?}"
    );
    assert!(s.unchanged_since(d));
}

#[test]
fn unknown_thread_and_wrong_proof_are_refused() {
    let mut s = scene();
    let d = s.store.digest();
    let stranger = ThreadId::random(threads_protocol::id::Variant::Raw, &mut seeded(5));
    let key = s.key.service().clone();
    let r = s.send(
        &key,
        &Payload::Digest {
            thread: stranger.to_vec(),
            digest: vec![0; 32],
        },
    );
    assert!(
        matches!(&r[..], [Misbehaviour::UnknownThread(id)] if *id == stranger),
        "{r:?}"
    );
    let wrong = ServiceKey::from_bytes([1; 32]);
    let r = s.send(
        &wrong,
        &Payload::Digest {
            thread: s.thread.to_vec(),
            digest: vec![0; 32],
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::BadProof(_)]), "{r:?}");
    // Neither the unknown-thread sender's nor the wrong prover's messages were answered.
    assert!(s.sent.is_empty());
    assert!(s.unchanged_since(d));
}

#[test]
fn forged_and_tampered_records_are_refused() {
    let mut s = scene();
    let d = s.store.digest();
    let log_key = PrivateKey::from_seed([3; 32]);
    let log = log_key.public().peer_id();
    // Signed by another key than the log's.
    let forged = s.record(&PrivateKey::from_seed([4; 32]), 1, None, b"forged");
    let r = s.push(&log, vec![forged]);
    assert!(matches!(&r[..], [Misbehaviour::BadRecord { .. }]), "{r:?}");
    // One flipped byte.
    let mut tampered = s.record(&log_key, 1, None, b"tampered");
    let n = tampered.len();
    tampered[n - 5] ^= 0x10;
    let r = s.push(&log, vec![tampered]);
    assert!(matches!(&r[..], [Misbehaviour::BadRecord { .. }]), "{r:?}");
    assert!(s.unchanged_since(d));
    assert_eq!(s.net.hosts[0].heads(&s.thread).unwrap().len(), 1);
}

#[test]
fn replays_are_harmless_and_gaps_are_pulled() {
    let mut s = scene();
    let log_key = PrivateKey::from_seed([3; 32]);
    let log = log_key.public().peer_id();
    let r1 = s.record(&log_key, 1, None, b"one");
    let cid1 = record::RecordBundle::decode(&r1).unwrap().cid();
    let r2 = s.record(&log_key, 2, Some(cid1), b"two");
    assert!(s.push(&log, vec![r1.clone()]).is_empty());
    let d = s.store.digest();
    // The same record again: nothing changes, nothing is reported.
    assert!(s.push(&log, vec![r1.clone(), r1]).is_empty());
    assert!(s.unchanged_since(d));
    // A record beyond the head is not applied; the host asks for what is missing.
    let cid2 = record::RecordBundle::decode(&r2).unwrap().cid();
    let r3 = s.record(&log_key, 3, Some(cid2), b"three");
    assert!(s.push(&log, vec![r3]).is_empty());
    assert!(s.unchanged_since(d));
    let pulls: Vec<u64> = s
        .sent
        .iter()
        .filter_map(|m| match message::decode(m, usize::MAX).unwrap().1 {
            Payload::Pull { from, .. } => Some(from),
            _ => None,
        })
        .collect();
    assert_eq!(pulls, vec![2]);
}

#[test]
fn a_fork_is_reported_and_the_first_record_kept() {
    let mut s = scene();
    let log_key = PrivateKey::from_seed([3; 32]);
    let log = log_key.public().peer_id();
    let a = s.record(&log_key, 1, None, b"a");
    let b = s.record(&log_key, 1, None, b"b");
    assert!(s.push(&log, vec![a.clone()]).is_empty());
    let d = s.store.digest();
    let before = s.net.events[0].len();
    // The fork proves the log key equivocated; the relaying peer is not accused.
    assert!(s.push(&log, vec![b]).is_empty());
    let forks: Vec<_> = s.net.events[0][before..]
        .iter()
        .filter(|e| matches!(e, Event::LogForked(f) if f.counter.get() == 1))
        .collect();
    assert_eq!(forks.len(), 1);
    assert!(s.unchanged_since(d));
}

#[test]
fn floods_of_logs_are_bounded() {
    let mut s = scene();
    s.net.hosts[0] = host(
        s.store.reopen(),
        AcceptAll,
        1,
        threads_protocol::engine::Config {
            max_logs_per_thread: 4,
            ..config()
        },
    );
    let key = s.key.service().clone();
    let logs: Vec<LogHeightEntry> = (0..100u8)
        .map(|i| LogHeightEntry {
            height: 5,
            log: PrivateKey::from_seed([i; 32])
                .public()
                .peer_id()
                .as_bytes()
                .to_vec(),
        })
        .collect();
    let r = s.send(
        &key,
        &Payload::Heights {
            thread: s.thread.to_vec(),
            logs,
            peers: vec![],
            reply: false,
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::TooManyLogs(_)]), "{r:?}");
    let pulls = s.sent.len();
    assert!(pulls <= 4, "{pulls} pulls queued for a 4-log limit");
    // Records of new logs past the limit are refused (the thread has 1 log already).
    let mut refused = 0;
    for i in 0..6u8 {
        let k = PrivateKey::from_seed([100 + i; 32]);
        let rec = s.record(&k, 1, None, b"x");
        if !s.push(&k.public().peer_id(), vec![rec]).is_empty() {
            refused += 1;
        }
    }
    assert_eq!(s.net.hosts[0].heads(&s.thread).unwrap().len(), 4);
    assert_eq!(refused, 3);
}

#[test]
fn invitations_with_bad_keys_are_refused() {
    let mut s = scene();
    let d = s.store.digest();
    // A read key must never be handed out in an invitation, and a held thread keeps its key.
    let full = ThreadKey::random(&mut seeded(8), true);
    let to = *s.net.hosts[0].peer_id();
    let bytes = message::encode(
        full.service(),
        &s.attacker_id(),
        &to,
        &Payload::Invite {
            thread: s.thread.to_vec(),
            service_key: full.to_bytes(),
        },
    );
    let r = s.send_raw(&bytes);
    assert!(matches!(&r[..], [Misbehaviour::RefusedInvite(..)]), "{r:?}");
    let other = ServiceKey::from_bytes([2; 32]);
    let r = s.send(
        &other,
        &Payload::Invite {
            thread: s.thread.to_vec(),
            service_key: vec![2; 32],
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::RefusedInvite(..)]), "{r:?}");
    assert!(s.unchanged_since(d));
}
