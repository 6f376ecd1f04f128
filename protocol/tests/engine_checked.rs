//! Messages checked before the engine (`RecordVerifier`, `Inbound::Checked`): the engine
//! reaches the same outcome as for the raw bytes, refuses a checked message bound to other keys
//! or another receiver, keeps log order and gaps, and never panics on hostile input.

mod common;

use common::*;
use proptest::prelude::*;
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::message::{self, Payload};
use threads_protocol::engine::{
    AcceptAll, CheckRange, CheckedRecord, Config, Event, InOrder, Inbound, Misbehaviour, NewThread,
    Output, RecordVerifier, Spread, Time,
};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::{ServiceKey, ThreadKey};
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordDraft};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;

/// One honest host holding a thread with one record, made from fixed seeds.
struct Side {
    net: Loopback<MemoryStore, AcceptAll>,
    store: MemoryStore,
}

fn side() -> (Side, ThreadId, ThreadKey) {
    let (mut net, stores) = net(1, 11);
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    net.hosts[0]
        .create_record(Time(0), &info.id, None, b"honest", 0)
        .unwrap();
    net.collect();
    (
        Side {
            net,
            store: stores[0].clone(),
        },
        info.id,
        info.key,
    )
}

/// Two identical hosts: one is fed raw bytes, the other the same bytes checked first.
struct Twin {
    raw: Side,
    checked: Side,
    thread: ThreadId,
    key: ThreadKey,
    attacker: PrivateKey,
}

/// What one input produced: outputs in order, and the store digest after it.
fn drain(side: &mut Side) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(o) = side.net.hosts[0].poll_output() {
        out.push(o);
    }
    out
}

fn misbehaviours(outputs: &[Output]) -> Vec<Misbehaviour> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::PeerMisbehaved { reason, .. }) => Some((**reason).clone()),
            _ => None,
        })
        .collect()
}

fn twin() -> Twin {
    let (raw, thread, key) = side();
    let (checked, thread2, _) = side();
    assert_eq!(thread, thread2, "both sides are made from the same seeds");
    let mut t = Twin {
        raw,
        checked,
        thread,
        key,
        attacker: PrivateKey::from_seed([9; 32]),
    };
    // The attacker holds the service key, so it proves membership and becomes a known peer.
    let service = t.key.service().clone();
    let digest = Payload::Digest {
        thread: t.thread.to_vec(),
        digest: vec![0; 32],
    };
    assert!(t.send(&service, &digest).is_empty());
    t
}

impl Twin {
    fn attacker_id(&self) -> LogId {
        self.attacker.public().peer_id()
    }

    /// Sends `bytes` to both sides (raw, and through a verifier) and checks that both did the
    /// same: same outputs, same stored state. Returns the misbehaviours reported.
    fn send_raw(&mut self, bytes: &[u8]) -> Vec<Misbehaviour> {
        let from = self.attacker_id();
        self.raw.net.hosts[0].handle_message(Time(1), &from, bytes);
        let raw_out = drain(&mut self.raw);
        let host = &self.checked.net.hosts[0];
        let verifiers: HashMap<ThreadId, RecordVerifier> = host
            .thread_ids()
            .into_iter()
            .filter_map(|t| host.verifier(&t).map(|v| (t, v)))
            .collect();
        let max = host.config().max_message_len;
        let inbound = Inbound::check(from, bytes.to_vec(), max, |t| verifiers.get(t));
        self.checked.net.hosts[0].handle_inbound(Time(1), inbound);
        let checked_out = drain(&mut self.checked);
        assert_eq!(raw_out, checked_out, "the checked path did otherwise");
        assert_eq!(self.raw.store.digest(), self.checked.store.digest());
        self.checked.net.hosts[0].check_invariants().unwrap();
        misbehaviours(&raw_out)
    }

    fn send(&mut self, key: &ServiceKey, payload: &Payload) -> Vec<Misbehaviour> {
        let to = *self.raw.net.hosts[0].peer_id();
        let bytes = message::encode(key, &self.attacker_id(), &to, payload);
        self.send_raw(&bytes)
    }

    fn record(&self, log_key: &PrivateKey, counter: u64, prev: Option<cid::Cid>) -> Vec<u8> {
        let author = log_key.public();
        let body = counter.to_be_bytes();
        let draft = RecordDraft {
            thread: &self.thread,
            author: &author,
            prev,
            counter: LogCounter::new(counter).unwrap(),
            clock: LamportClock(counter),
            time: 0,
            body: &body,
        };
        record::create(&draft, log_key, &self.key, &mut seeded(counter))
            .unwrap()
            .record()
            .bundle()
            .encode()
    }

    /// Records 1..=n of a log, each linked to the one before.
    fn chain(&self, log_key: &PrivateKey, n: u64) -> Vec<Vec<u8>> {
        let mut prev = None;
        (1..=n)
            .map(|c| {
                let r = self.record(log_key, c, prev);
                prev = Some(record::RecordBundle::decode(&r).unwrap().cid());
                r
            })
            .collect()
    }

    fn push_message(&self, log: &LogId, records: Vec<Vec<u8>>) -> Vec<u8> {
        let payload = Payload::Push {
            thread: self.thread.to_vec(),
            log: log.as_bytes().to_vec(),
            records: records.into_iter().map(ByteBuf::from).collect(),
        };
        let to = *self.raw.net.hosts[0].peer_id();
        message::encode(self.key.service(), &self.attacker_id(), &to, &payload)
    }

    fn push(&mut self, log: &LogId, records: Vec<Vec<u8>>) -> Vec<Misbehaviour> {
        let bytes = self.push_message(log, records);
        self.send_raw(&bytes)
    }

    fn height(&self, log: &LogId) -> u64 {
        self.checked.net.hosts[0]
            .heads(&self.thread)
            .unwrap()
            .iter()
            .find(|(l, _, _)| l == log)
            .map_or(0, |(_, h, _)| h.0)
    }
}

#[test]
fn hostile_messages_end_as_they_do_unchecked() {
    let mut t = twin();
    for bytes in [&b""[..], b"\xff\xff\xff", b"\xa0", &[0x42; 1000]] {
        let r = t.send_raw(bytes);
        assert!(matches!(r.as_slice(), [Misbehaviour::InvalidMessage(_)]));
    }
    let big = vec![0u8; t.raw.net.hosts[0].config().max_message_len + 1];
    assert_eq!(t.send_raw(&big).len(), 1);
    let stranger = ThreadId::random(threads_protocol::id::Variant::Raw, &mut seeded(5));
    let service = t.key.service().clone();
    let r = t.send(
        &service,
        &Payload::Digest {
            thread: stranger.to_vec(),
            digest: vec![0; 32],
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::UnknownThread(_)]));
    let wrong = ServiceKey::from_bytes([1; 32]);
    let r = t.send(
        &wrong,
        &Payload::Digest {
            thread: t.thread.to_vec(),
            digest: vec![0; 32],
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::BadProof(_)]));
    // Forged, tampered and undecodable records, an invalid log id.
    let log_key = PrivateKey::from_seed([3; 32]);
    let log = log_key.public().peer_id();
    let forged = t.record(&PrivateKey::from_seed([4; 32]), 1, None);
    assert!(matches!(
        &t.push(&log, vec![forged])[..],
        [Misbehaviour::BadRecord { .. }]
    ));
    let mut tampered = t.record(&log_key, 1, None);
    let n = tampered.len();
    tampered[n - 5] ^= 0x10;
    assert!(matches!(
        &t.push(&log, vec![tampered])[..],
        [Misbehaviour::BadRecord { .. }]
    ));
    assert!(matches!(
        &t.push(&log, vec![vec![0xa0]])[..],
        [Misbehaviour::BadRecord { .. }]
    ));
    let r = t.send(
        &service,
        &Payload::Push {
            thread: t.thread.to_vec(),
            log: vec![1, 2, 3],
            records: vec![],
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::InvalidField(_)]));
    // An unrequested page.
    let r = t.send(
        &service,
        &Payload::Page {
            thread: t.thread.to_vec(),
            log: log.as_bytes().to_vec(),
            from: 7,
            records: vec![],
            height: 9,
        },
    );
    assert!(matches!(&r[..], [Misbehaviour::UnexpectedPage(_)]));
    assert_eq!(t.height(&log), 0);
}

#[test]
fn order_replays_gaps_and_forks_hold_on_the_checked_path() {
    let mut t = twin();
    let log_key = PrivateKey::from_seed([3; 32]);
    let log = log_key.public().peer_id();
    let chain = t.chain(&log_key, 6);
    // In order, then replayed (nothing reported), then a valid record after a bad one.
    assert!(t.push(&log, chain[..2].to_vec()).is_empty());
    assert!(t.push(&log, chain[..2].to_vec()).is_empty());
    assert_eq!(t.height(&log), 2);
    // Beyond the head: nothing stored, record 3 is asked for.
    assert!(t.push(&log, chain[4..6].to_vec()).is_empty());
    assert_eq!(t.height(&log), 2);
    // Out of order within one message: 3 then 5 stores 3 and leaves the gap at 4.
    assert!(
        t.push(&log, vec![chain[2].clone(), chain[4].clone()])
            .is_empty()
    );
    assert_eq!(t.height(&log), 3);
    assert!(t.push(&log, chain[3..6].to_vec()).is_empty());
    assert_eq!(t.height(&log), 6);
    // A record beyond a bad one is not stored; the bad one is reported.
    let more = t.record(
        &log_key,
        7,
        record::RecordBundle::decode(&chain[5])
            .unwrap()
            .cid()
            .into(),
    );
    let r = t.push(&log, vec![vec![0xa0], more]);
    assert!(matches!(&r[..], [Misbehaviour::BadRecord { .. }]));
    assert_eq!(t.height(&log), 6);
    // A fork at 1 is reported as such, not as misbehaviour of the relaying peer.
    let other = {
        let author = log_key.public();
        let draft = RecordDraft {
            thread: &t.thread,
            author: &author,
            prev: None,
            counter: LogCounter::FIRST,
            clock: LamportClock(1),
            time: 0,
            body: b"other",
        };
        record::create(&draft, &log_key, &t.key, &mut seeded(77))
            .unwrap()
            .record()
            .bundle()
            .encode()
    };
    assert!(t.push(&log, vec![other]).is_empty());
    assert_eq!(t.height(&log), 6);
}

/// The misbehaviours `inbound` makes a host report, and whether it stored anything.
fn refusal(
    h: &mut threads_protocol::engine::Host<MemoryStore, AcceptAll>,
    inbound: Inbound,
) -> Vec<Misbehaviour> {
    while h.poll_output().is_some() {}
    h.handle_inbound(Time(1), inbound);
    let mut out = Vec::new();
    while let Some(o) = h.poll_output() {
        out.push(o);
    }
    misbehaviours(&out)
}

/// A checked message is refused by a host holding its thread with other keys, and by any
/// host but the one it was checked for; nothing of it is stored.
#[test]
fn a_checked_message_bound_to_other_keys_or_another_host_is_refused() {
    let t = twin();
    let log_key = PrivateKey::from_seed([3; 32]);
    let log = log_key.public().peer_id();
    let bytes = t.push_message(&log, t.chain(&log_key, 2));
    let from = t.attacker_id();
    let verifier = t.checked.net.hosts[0].verifier(&t.thread).unwrap();
    let inbound = verifier.check_message(from, bytes);
    assert!(matches!(&inbound, Inbound::Checked(m) if m.batch().map(|b| b.len()) == Some(2)));
    let identity = t.checked.net.hosts[0].identity().clone();
    let other_keys = NewThread {
        id: Some(t.thread),
        key: Some(ThreadKey::random(&mut seeded(99), true)),
        ..NewThread::default()
    };

    // The same host identity, the thread held with other keys.
    let store = MemoryStore::new();
    let mut same = threads_protocol::engine::Host::open(
        config(),
        store.clone(),
        AcceptAll,
        seeded(77),
        Some(identity),
        Time(0),
    )
    .unwrap();
    same.create_thread(Time(0), other_keys.clone()).unwrap();
    let digest = store.digest();
    let r = refusal(&mut same, inbound.clone());
    assert!(
        matches!(&r[..], [Misbehaviour::MismatchedCheck(id, "thread keys")] if *id == t.thread),
        "{r:?}"
    );
    assert_eq!(store.digest(), digest);

    // Another host, holding the thread with the same keys or others.
    for key in [Some(t.key.clone()), other_keys.key.clone()] {
        let store = MemoryStore::new();
        let mut other = host(store.clone(), AcceptAll, 12, config());
        other
            .create_thread(
                Time(0),
                NewThread {
                    id: Some(t.thread),
                    key,
                    ..NewThread::default()
                },
            )
            .unwrap();
        let digest = store.digest();
        let r = refusal(&mut other, inbound.clone());
        assert!(
            matches!(&r[..], [Misbehaviour::MismatchedCheck(id, "receiver")] if *id == t.thread),
            "{r:?}"
        );
        assert_eq!(store.digest(), digest);
    }

    // A verifier made with other keys does not check a message proven with the real ones:
    // it stays raw, for the engine to judge.
    let mut h = host(MemoryStore::new(), AcceptAll, 11_000, config());
    h.create_thread(Time(0), other_keys).unwrap();
    let fake = h.verifier(&t.thread).unwrap();
    let bytes = t.push_message(&log, t.chain(&log_key, 1));
    assert!(matches!(
        fake.check_message(from, bytes),
        Inbound::Raw { .. }
    ));
}

#[test]
fn a_message_about_another_thread_stays_unchecked() {
    let t = twin();
    let verifier = t.checked.net.hosts[0].verifier(&t.thread).unwrap();
    let stranger = ThreadId::random(threads_protocol::id::Variant::Raw, &mut seeded(5));
    let to = *t.checked.net.hosts[0].peer_id();
    let payload = Payload::Digest {
        thread: stranger.to_vec(),
        digest: vec![0; 32],
    };
    let bytes = message::encode(t.key.service(), &t.attacker_id(), &to, &payload);
    assert!(matches!(
        verifier.check_message(t.attacker_id(), bytes),
        Inbound::Raw { .. }
    ));
}

/// Two hosts with `cfg` (seeds `seed`, `seed + 1`): host 0 holds a thread of 37 records and
/// host 1 has just joined it through host 0 (its first messages not yet collected).
fn joined_catching_up(
    cfg: &Config,
    seed: u64,
) -> (
    Loopback<MemoryStore, AcceptAll>,
    threads_protocol::engine::ThreadInfo,
) {
    let hosts = (0..2)
        .map(|i| host(MemoryStore::new(), AcceptAll, seed + i, cfg.clone()))
        .collect();
    let mut net = Loopback::new(hosts, Time(0));
    let info = joined_thread_of(&mut net, 37);
    (net, info)
}

/// Host 0 makes a thread of `n` records (its messages dropped) and host 1 joins it.
fn joined_thread_of(
    net: &mut Loopback<MemoryStore, AcceptAll>,
    n: u32,
) -> threads_protocol::engine::ThreadInfo {
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    for i in 0..n {
        net.hosts[0]
            .create_record(Time(0), &info.id, None, &i.to_be_bytes(), 0)
            .unwrap();
    }
    net.collect();
    net.in_flight.clear();
    let a = addr(net, 0, &info.id);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    info
}

/// Catch-up with several pages in flight, through a verifier, also when pages come back
/// shorter than asked (byte limit): everything arrives once, nothing is reported.
#[test]
fn windowed_catch_up_through_verifiers_completes() {
    for (page_max_bytes, window) in [(4 << 20, 3), (900, 3), (4 << 20, 1)] {
        let cfg = Config {
            page_max_records: 4,
            page_max_bytes,
            pull_window: window,
            ..config()
        };
        let (mut net, info) = joined_catching_up(&cfg, 500);
        // Deliver by hand: messages to host 1 go through its verifier.
        let mut rounds = 0;
        let mut most_pulls = 0;
        let mut received = 0;
        while total(&net, 1, &info.id) < 37 && rounds < 200 {
            rounds += 1;
            net.collect();
            while let Some(m) = net.in_flight.pop_front() {
                let pulls = net
                    .in_flight
                    .iter()
                    .filter(|m| m.from == 1)
                    .filter(|m| {
                        matches!(
                            message::decode(&m.bytes, usize::MAX).map(|d| d.1),
                            Ok(Payload::Pull { .. })
                        )
                    })
                    .count();
                most_pulls = most_pulls.max(pulls + usize::from(m.from == 1));
                let from = *net.hosts[m.from].peer_id();
                if m.to == 1 {
                    if let Ok((_, Payload::Page { records, .. })) =
                        message::decode(&m.bytes, usize::MAX)
                    {
                        received += records.len();
                    }
                    let v = net.hosts[1].verifier(&info.id).unwrap();
                    let inbound = v.check_message(from, m.bytes);
                    net.hosts[1].handle_inbound(net.now, inbound);
                } else {
                    net.hosts[m.to].handle_message(net.now, &from, &m.bytes);
                }
                net.collect();
            }
            let next = net.now.plus(100);
            net.advance(next);
        }
        assert_eq!(
            total(&net, 1, &info.id),
            37,
            "bytes {page_max_bytes} window {window}"
        );
        // The window is used (and never exceeded), also once short pages taught the page size.
        assert_eq!(
            most_pulls, window as usize,
            "bytes {page_max_bytes} window {window}"
        );
        // Pages asked ahead line up with what the peer sends: records are not fetched (and
        // verified) twice, short pages or not.
        assert!(
            received <= 37 + 4,
            "bytes {page_max_bytes} window {window}: {received} records received for 37"
        );
        assert!(
            !net.events[1]
                .iter()
                .any(|e| matches!(e, Event::PeerMisbehaved { .. })),
            "{:?}",
            net.events[1]
        );
        net.hosts[1].check_invariants().unwrap();
    }
}

/// Pages asked for ahead that arrive after their pull expired, past the stored height and out
/// of order, are dropped without blaming the peer that was asked for them; catch-up completes.
#[test]
fn pages_of_an_ended_pull_are_not_blamed() {
    let cfg = Config {
        page_max_records: 4,
        pull_window: 3,
        pull_timeout_ms: 100,
        ..config()
    };
    let (mut net, info) = joined_catching_up(&cfg, 700);
    // Deliver everything but the pages asked for ahead, which are held back.
    let page_at = |bytes: &[u8]| match message::decode(bytes, usize::MAX) {
        Ok((_, Payload::Page { from, .. })) => Some(from),
        _ => None,
    };
    let mut held = Vec::new();
    for _ in 0..1_000 {
        net.collect();
        let Some(m) = net.in_flight.pop_front() else {
            break;
        };
        if m.to == 1 && page_at(&m.bytes).is_some_and(|at| at > 1) {
            held.push(m);
            continue;
        }
        let from = *net.hosts[m.from].peer_id();
        net.hosts[m.to].handle_message(net.now, &from, &m.bytes);
    }
    let starts: Vec<u64> = held.iter().filter_map(|m| page_at(&m.bytes)).collect();
    // The first page asks for an eighth of the page limit (one record); the window after it
    // steps by the page limit (the records are small).
    assert_eq!(
        starts,
        vec![2, 6, 10],
        "the window of pages asked after the first"
    );
    assert_eq!(total(&net, 1, &info.id), 1);
    // The pull expires; then the pages come, the farthest first.
    net.hosts[1].handle_timeout(Time(1_000));
    net.now = Time(1_000);
    net.collect();
    net.in_flight.clear();
    let from = *net.hosts[0].peer_id();
    for m in held.iter().rev() {
        net.hosts[1].handle_message(net.now, &from, &m.bytes);
    }
    net.collect();
    let blamed = |net: &Loopback<MemoryStore, AcceptAll>| -> Vec<String> {
        net.events[1]
            .iter()
            .filter_map(|e| match e {
                Event::PeerMisbehaved { reason, .. } => Some(reason.to_string()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(blamed(&net), Vec::<String>::new());
    assert!(total(&net, 1, &info.id) >= 5, "the page in line was stored");
    assert!(net.run_until(60_000, |n| total(n, 1, &info.id) == 37));
    assert_eq!(blamed(&net), Vec::<String>::new());
}

/// A pull's first page asks for an eighth of the page limit, alone; the pages after it are
/// sized by that page's bytes to fit the byte limit, so none comes back short (none of their
/// records is fetched twice) and they travel as a window.
#[test]
fn pages_after_the_first_are_sized_by_its_bytes() {
    const PAGE_BYTES: usize = 12_000;
    let cfg = Config {
        page_max_records: 64,
        page_max_bytes: PAGE_BYTES,
        pull_window: 3,
        ..config()
    };
    let (mut net, info) = joined_catching_up(&cfg, 900);
    let (pulls, pages) = deliver_recording_pulls(&mut net);
    assert_eq!(total(&net, 1, &info.id), 37);
    assert_eq!(pulls[0], (1, 8), "the first page: an eighth of 64, alone");
    let per_record = pages[0].2.div_ceil(pages[0].1);
    let fitted = u32::try_from((PAGE_BYTES - PAGE_BYTES / 8) / per_record).unwrap();
    assert!(fitted > 8 && fitted < 64, "{fitted}");
    assert!(
        pulls[1..].iter().all(|&(_, max)| max == fitted),
        "{pulls:?} (fitted {fitted})"
    );
    // Every page came back as asked (the last one up to the height), within the byte limit.
    let received: usize = pages.iter().map(|p| p.1).sum();
    assert_eq!(received, 37, "{pages:?}");
    for &(from, n, bytes) in &pages {
        let asked = pulls.iter().find(|p| p.0 == from).unwrap().1 as usize;
        assert!(n == asked || from + n as u64 == 38, "{pages:?} {pulls:?}");
        assert!(bytes <= PAGE_BYTES);
    }
    assert!(
        !net.events[1]
            .iter()
            .any(|e| matches!(e, Event::PeerMisbehaved { .. }))
    );
}

/// Delivers every message until none is left (at most 10,000), recording the pulls host 1 sends
/// (`from`, `max`) and the pages it receives (`from`, records, record bytes).
#[allow(clippy::type_complexity)]
fn deliver_recording_pulls(
    net: &mut Loopback<MemoryStore, AcceptAll>,
) -> (Vec<(u64, u32)>, Vec<(u64, usize, usize)>) {
    let mut pulls = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..10_000 {
        net.collect();
        let Some(m) = net.in_flight.pop_front() else {
            break;
        };
        match message::decode(&m.bytes, usize::MAX).map(|d| d.1) {
            Ok(Payload::Pull { from, max, .. }) if m.from == 1 => pulls.push((from, max)),
            Ok(Payload::Page { from, records, .. }) if m.to == 1 => {
                let bytes = records.iter().map(|r| r.len()).sum();
                pages.push((from, records.len(), bytes));
            }
            _ => {}
        }
        let from = *net.hosts[m.from].peer_id();
        net.hosts[m.to].handle_message(net.now, &from, &m.bytes);
    }
    (pulls, pages)
}

/// Pages are asked for `pull_page_records` records (the first an eighth of that), however
/// many more the page limit allows; the page limit still caps a larger asked size. The peer
/// serves what is asked, and the whole log arrives once.
#[test]
fn pages_are_asked_at_the_pull_page_size() {
    for (page_max_records, pull_page_records, asked) in [(64, 16, 16u32), (8, 16, 8), (64, 1, 1)] {
        let cfg = Config {
            page_max_records,
            pull_page_records,
            pull_window: 3,
            ..config()
        };
        let (mut net, info) = joined_catching_up(&cfg, 910);
        let (pulls, pages) = deliver_recording_pulls(&mut net);
        let case = format!("limit {page_max_records}, asked {pull_page_records}: {pulls:?}");
        assert_eq!(total(&net, 1, &info.id), 37, "{case}");
        assert_eq!(pulls[0], (1, asked.div_ceil(8)), "first page alone, {case}");
        assert!(pulls[1..].iter().all(|&(_, max)| max == asked), "{case}");
        let received: usize = pages.iter().map(|p| p.1).sum();
        assert_eq!(received, 37, "every record once, {case}");
        assert!(pulls.len() >= 37usize.div_ceil(asked as usize), "{case}");
        assert!(
            !net.events[1]
                .iter()
                .any(|e| matches!(e, Event::PeerMisbehaved { .. })),
            "{case}"
        );
    }
}

/// How a test spreads a page's record checks: split over threads, or handed back wrong.
enum TestSpread {
    /// Split in `n` chunks, each on its own thread.
    Threads(usize),
    /// The last record left out.
    DropLast,
    /// The first two records swapped.
    Swap,
    /// The first record twice.
    Duplicate,
}

impl Spread for TestSpread {
    fn spread(&self, n: usize, check: &CheckRange<'_>) -> Vec<CheckedRecord> {
        match self {
            TestSpread::Threads(k) => {
                let chunk = n.div_ceil(*k).max(1);
                std::thread::scope(|s| {
                    let parts: Vec<_> = (0..n)
                        .step_by(chunk)
                        .map(|start| s.spawn(move || check(start..(start + chunk).min(n))))
                        .collect();
                    parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
                })
            }
            TestSpread::DropLast => check(0..n.saturating_sub(1)),
            TestSpread::Swap => {
                let mut all = check(0..n);
                all.swap(0, 1);
                all
            }
            TestSpread::Duplicate => {
                let mut all = check(0..1);
                all.extend(check(0..n));
                all
            }
        }
    }
}

/// A page's record checks split over threads give exactly what checking them in order gives;
/// a spread that leaves out, reorders or repeats a record leaves the message to the engine.
#[test]
fn spread_checks_match_in_order_or_stay_raw() {
    let (mut net, _) = net(2, 31);
    let info = joined_thread_of(&mut net, 300);
    let log = info.logs[0].id;
    let mut records = net.hosts[0]
        .records(&info.id, &log, LogCounter::FIRST, 300, usize::MAX)
        .unwrap();
    // One record damaged, so refusals travel in their place too.
    records[150][20] ^= 1;
    let payload = Payload::Page {
        thread: info.id.to_vec(),
        log: log.as_bytes().to_vec(),
        from: 1,
        records: records.into_iter().map(ByteBuf::from).collect(),
        height: 300,
    };
    let from = *net.hosts[0].peer_id();
    let bytes = message::encode(info.key.service(), &from, net.hosts[1].peer_id(), &payload);
    let v = net.hosts[1].verifier(&info.id).unwrap();
    let check = |spread: &dyn Spread| {
        Inbound::check_spread(from, bytes.clone(), usize::MAX, |_| Some(&v), spread)
    };
    let in_order = format!("{:?}", check(&InOrder));
    assert!(matches!(check(&InOrder), Inbound::Checked(_)));
    for k in [1, 2, 3, 7] {
        assert_eq!(
            format!("{:?}", check(&TestSpread::Threads(k))),
            in_order,
            "{k} threads"
        );
    }
    for bad in [
        TestSpread::DropLast,
        TestSpread::Swap,
        TestSpread::Duplicate,
    ] {
        assert!(matches!(check(&bad), Inbound::Raw { .. }));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any damage to a push message ends the same way checked or not, and never panics.
    #[test]
    fn damaged_pushes_end_as_they_do_unchecked(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut t = twin();
        let log_key = PrivateKey::from_seed([3; 32]);
        let log = log_key.public().peer_id();
        let mut bytes = t.push_message(&log, t.chain(&log_key, 3));
        for (at, x) in edits {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        t.send_raw(&bytes);
    }
}
