//! A misbehaving peer. It holds the thread's service key (it is a member that turned hostile)
//! but not the read key, sees honest traffic on the network, and sends forged, tampered,
//! replayed, oversized and garbage messages to honest hosts.

use crate::world::World;
use serde_bytes::ByteBuf;
use std::collections::VecDeque;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::engine::ThreadInfo;
use threads_protocol::engine::message::{self, Payload};
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::{ReadKey, ThreadKey};
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordBundle, RecordDraft};
use threads_protocol::rng::{Rng, seeded};

/// Most captured messages kept for replay.
const CAPTURE: usize = 16;

/// The adversary's state.
pub(crate) struct Adversary {
    pub index: usize,
    pub key: PrivateKey,
    /// The service key with a read key of its own invention (it has no real one).
    pub fake_key: ThreadKey,
    /// Its own log, signed with its own key: valid at the service level, unreadable to readers.
    pub own_height: u64,
    pub own_head: Option<threads_protocol::Cid>,
    /// A log id of an honest writer, to forge records for.
    pub victim: Option<LogId>,
    /// The thread under attack.
    pub thread: threads_protocol::id::ThreadId,
    captured: VecDeque<Vec<u8>>,
}

impl Adversary {
    pub fn new(index: usize, info: &ThreadInfo) -> Self {
        let key = PrivateKey::from_seed([index as u8; 32]);
        let fake_read = ReadKey::from_bytes([0xee; 32]);
        Adversary {
            index,
            key,
            fake_key: ThreadKey::new(info.key.service().clone(), Some(fake_read)),
            own_height: 0,
            own_head: None,
            victim: info.logs.first().map(|l| l.id),
            thread: info.id,
            captured: VecDeque::new(),
        }
    }

    pub fn capture(&mut self, bytes: Vec<u8>) {
        if self.captured.len() == CAPTURE {
            self.captured.pop_front();
        }
        self.captured.push_back(bytes);
    }

    fn record(
        &self,
        log_key: &PrivateKey,
        counter: u64,
        prev: Option<threads_protocol::Cid>,
        seed: u64,
    ) -> RecordBundle {
        let author = log_key.public();
        let draft = RecordDraft {
            thread: &self.thread,
            author: &author,
            prev,
            counter: LogCounter::new(counter).unwrap_or(LogCounter::FIRST),
            clock: LamportClock(counter + 1_000_000),
            time: 0,
            body: b"adversary",
        };
        record::create(&draft, log_key, &self.fake_key, &mut seeded(seed))
            .map(|r| r.into_record().into_bundle())
            .unwrap_or_else(|_| RecordBundle {
                record: vec![],
                event: vec![],
                header: vec![],
                body: vec![],
            })
    }
}

/// One attack on a random honest host.
pub(crate) fn attack(w: &mut World) {
    let Some(mut adv) = w.adversary.take() else {
        return;
    };
    let honest: Vec<usize> = (0..w.hosts.len()).filter(|&i| i != adv.index).collect();
    let target = honest[(w.rng.next_u64() % honest.len() as u64) as usize];
    let to = w.hosts[target].peer;
    let me = adv.key.public().peer_id();
    let service = w.key.service().clone();
    let frame = |payload: &Payload| message::encode(&service, &me, &to, payload);
    let thread = w.thread.to_vec();
    let kind = w.rng.next_u64() % 7;
    let (what, bytes): (&str, Vec<u8>) = match kind {
        0 => {
            let len = 1 + (w.rng.next_u64() % 300) as usize;
            let mut b = vec![0u8; len];
            w.rng.fill_bytes(&mut b);
            ("garbage", b)
        }
        1 => ("oversized", vec![0u8; (1 << 20) + 1]),
        2 => {
            // The next record of an honest writer's log (learned from captured traffic: the
            // adversary can open envelopes), signed with the adversary's key.
            let mut next = None;
            for m in adv.captured.iter().rev() {
                let Ok((
                    _,
                    Payload::Push { log, records, .. } | Payload::Page { log, records, .. },
                )) = message::decode(m, usize::MAX)
                else {
                    continue;
                };
                let (Ok(log), Some(last)) = (LogId::from_bytes(&log), records.last()) else {
                    continue;
                };
                if let Ok(v) = RecordBundle::decode(last)
                    .and_then(|b| record::verify(b, &adv.thread, &log, &service))
                {
                    next = Some((log, v.counter().get() + 1, Some(v.cid())));
                    break;
                }
            }
            let (log, counter, prev) = next.unwrap_or((adv.victim.unwrap_or(me), 1, None));
            let seed = w.rng.next_u64();
            let forged = adv.record(&adv.key, counter, prev, seed);
            let p = Payload::Push {
                thread,
                log: log.as_bytes().to_vec(),
                records: vec![ByteBuf::from(forged.encode())],
            };
            ("forged record", frame(&p))
        }
        3 => {
            // The next record of its own log: validly signed, but its header is sealed with a
            // read key nobody has, so readers must reject it, the same way everywhere.
            let seed = w.rng.next_u64();
            let rec = adv.record(&adv.key, adv.own_height + 1, adv.own_head, seed);
            adv.own_height += 1;
            adv.own_head = Some(rec.cid());
            let p = Payload::Push {
                thread,
                log: me.as_bytes().to_vec(),
                records: vec![ByteBuf::from(rec.encode())],
            };
            ("unreadable own record", frame(&p))
        }
        4 => {
            // A captured honest record with one byte flipped, under a valid proof.
            let mut picked = None;
            for m in adv.captured.iter().rev() {
                if let Ok((
                    _,
                    Payload::Push { log, records, .. } | Payload::Page { log, records, .. },
                )) = message::decode(m, usize::MAX)
                    && let Some(r) = records.first()
                {
                    picked = Some((log, r.to_vec()));
                    break;
                }
            }
            match picked {
                Some((log, mut r)) => {
                    let i = (w.rng.next_u64() % r.len() as u64) as usize;
                    r[i] ^= 1 << (w.rng.next_u64() % 8);
                    let p = Payload::Push {
                        thread,
                        log,
                        records: vec![ByteBuf::from(r)],
                    };
                    ("tampered record", frame(&p))
                }
                None => ("garbage", vec![0xff]),
            }
        }
        5 => {
            // A captured message replayed as is: its proof names another sender.
            let n = adv.captured.len().max(1) as u64;
            let m = adv
                .captured
                .get((w.rng.next_u64() % n) as usize)
                .cloned()
                .unwrap_or_default();
            ("replayed message", m)
        }
        _ => {
            // A captured message's payload re-framed under the adversary's own identity: the
            // proof is valid, the content is old: it must be harmless.
            let n = adv.captured.len().max(1) as u64;
            let m = adv.captured.get((w.rng.next_u64() % n) as usize).cloned();
            match m.and_then(|m| message::decode(&m, usize::MAX).ok()) {
                Some((_, p)) if !matches!(p, Payload::Invite { .. }) => {
                    ("replayed payload", frame(&p))
                }
                _ => ("garbage", vec![0x00]),
            }
        }
    };
    let len = bytes.len();
    w.log(|| format!("adversary sends {what} ({len} bytes) to host {target}"));
    let index = adv.index;
    w.adversary = Some(adv);
    w.send(index, target, bytes);
}
