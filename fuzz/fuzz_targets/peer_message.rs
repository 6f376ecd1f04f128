//! Peer messages as whole exchanges: whatever a peer sends, the engine must not panic and must
//! keep its invariants.
//!
//! The input is read with `arbitrary` as a scenario of up to [`MAX_STEPS`] steps against a host
//! that holds the fuzz context's thread (its own log with two records, and the context's log
//! known to the harness, whose valid records the harness can send). Each step is a message of
//! one kind (digest, heights, pull, page, push, invite) encoded and proved like a real peer's,
//! carrying valid records of the known log, a fork of it, the host's own records, or mutations
//! of them (bit flips, truncations, swapped blocks, random bytes), with real or made-up logs,
//! counters and heights; or raw bytes (as a whole message, or as a payload under a valid
//! proof), a bad frame, a timer or a new connection.
//!
//! After every step the harness checks what must hold for any input: the host's invariants
//! ([`Host::check_invariants`]); its heads only move forward; the known log holds a prefix of
//! the chain (or the fork at counter 3), so no mutated record is ever stored; the host's own
//! log is never changed by a peer; and every message the host sends decodes, is about the
//! thread and proves membership to its receiver.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use threads_fuzz::{CHAIN_LEN, chain, context};
use threads_protocol::Cid;
use threads_protocol::engine::message::{self, LogHeightEntry, Payload};
use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, Output, Time};
use threads_protocol::identity::PrivateKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::RecordBundle;
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;

/// Most steps read from one input.
const MAX_STEPS: usize = 32;
/// Records the host writes to its own log before the scenario starts.
const OWN_RECORDS: usize = 2;

/// Which log a message names.
#[derive(Arbitrary, Debug)]
enum LogRef {
    /// The context's log, whose records the harness holds.
    Known,
    /// The host's own log.
    Own,
    /// A valid log id the host does not know (one of a few).
    Unknown(u8),
    /// Any bytes.
    Bytes(Vec<u8>),
}

/// Which record bundle a message carries.
#[derive(Arbitrary, Debug)]
enum Rec {
    /// Record `i % CHAIN_LEN` of the known chain.
    Valid(u8),
    /// The fork of the known log at counter 3.
    Fork,
    /// One of the host's own records.
    Own(u8),
    /// A chain record with one bit flipped.
    BitFlip { index: u8, at: u16, bit: u8 },
    /// A chain record cut short.
    Truncated { index: u8, len: u16 },
    /// A chain record with one of its blocks taken from another record.
    Swap { index: u8, block: u8, with: u8 },
    /// Any bytes.
    Bytes(Vec<u8>),
}

/// Who sends a step.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Sender {
    /// The first peer.
    A,
    /// Another peer.
    B,
    /// The known log's own key, as a peer id.
    LogOwner,
}

/// Which service key an invitation carries.
#[derive(Arbitrary, Debug)]
enum InviteKey {
    /// The thread's own service key.
    Same,
    /// The thread key with its read key (refused: invitations carry the service key only).
    WithRead,
    /// Another service key.
    Other,
    /// Any bytes.
    Bytes(Vec<u8>),
}

/// One step of a scenario.
#[derive(Arbitrary, Debug)]
enum Step {
    /// New records of a log.
    Push {
        from: Sender,
        log: LogRef,
        records: Vec<Rec>,
    },
    /// An answer to a pull (asked for or not).
    Page {
        from: Sender,
        log: LogRef,
        at: u8,
        records: Vec<Rec>,
        height: u8,
    },
    /// A pull of a log from a counter.
    Pull {
        from: Sender,
        log: LogRef,
        at: u8,
        max: u8,
    },
    /// Log heights and peers.
    Heights {
        from: Sender,
        logs: Vec<(LogRef, u8)>,
        peers: Vec<Sender>,
        reply: bool,
    },
    /// A digest: the host's own, or any bytes.
    Digest {
        from: Sender,
        own: bool,
        bytes: Vec<u8>,
    },
    /// An invitation to the thread.
    Invite { from: Sender, key: InviteKey },
    /// A valid push with a broken frame: wrong proof, version or thread.
    BadFrame {
        from: Sender,
        flaw: u8,
        version: u64,
    },
    /// Any bytes as a payload under a valid proof.
    Framed { from: Sender, payload: Vec<u8> },
    /// Any bytes as a whole message.
    Raw { from: Sender, bytes: Vec<u8> },
    /// Time passes and the timers run.
    Timeout { ms: u16 },
    /// A connection to a peer came up.
    Connected { peer: Sender },
}

/// The fixed cast of a scenario.
struct Cast {
    peer_a: LogId,
    peer_b: LogId,
    unknown: Vec<LogId>,
    other_key: threads_protocol::key::ThreadKey,
}

fn cast() -> &'static Cast {
    static CAST: std::sync::OnceLock<Cast> = std::sync::OnceLock::new();
    CAST.get_or_init(|| Cast {
        peer_a: PrivateKey::from_seed([7; 32]).public().peer_id(),
        peer_b: PrivateKey::from_seed([8; 32]).public().peer_id(),
        unknown: (0u8..3)
            .map(|i| PrivateKey::from_seed([0x50 + i; 32]).public().peer_id())
            .collect(),
        other_key: threads_protocol::key::ThreadKey::random(&mut seeded(9), false),
    })
}

impl Sender {
    fn id(self) -> LogId {
        match self {
            Sender::A => cast().peer_a,
            Sender::B => cast().peer_b,
            Sender::LogOwner => context().log,
        }
    }
}

fn log_bytes(log: &LogRef, own: &LogId) -> Vec<u8> {
    match log {
        LogRef::Known => context().log.as_bytes().to_vec(),
        LogRef::Own => own.as_bytes().to_vec(),
        LogRef::Unknown(i) => {
            let u = &cast().unknown;
            u[*i as usize % u.len()].as_bytes().to_vec()
        }
        LogRef::Bytes(b) => b.clone(),
    }
}

fn record_bytes(rec: &Rec, own: &[RecordBundle]) -> Vec<u8> {
    let chain = &chain().records;
    let pick = |i: &u8| &chain[*i as usize % CHAIN_LEN];
    match rec {
        Rec::Valid(i) => pick(i).encode(),
        Rec::Fork => chain_fork().encode(),
        Rec::Own(i) => own[*i as usize % own.len()].encode(),
        Rec::BitFlip { index, at, bit } => {
            let mut b = pick(index).encode();
            let at = *at as usize % b.len();
            b[at] ^= 1 << (bit % 8);
            b
        }
        Rec::Truncated { index, len } => {
            let mut b = pick(index).encode();
            b.truncate(*len as usize % b.len());
            b
        }
        Rec::Swap { index, block, with } => {
            let mut r = pick(index).clone();
            let w = pick(with);
            match block % 4 {
                0 => r.record = w.record.clone(),
                1 => r.event = w.event.clone(),
                2 => r.header = w.header.clone(),
                _ => r.body = w.body.clone(),
            }
            r.encode()
        }
        Rec::Bytes(b) => b.clone(),
    }
}

fn chain_fork() -> &'static RecordBundle {
    &chain().fork
}

fn bundles(records: &[Rec], own: &[RecordBundle]) -> Vec<serde_bytes::ByteBuf> {
    records
        .iter()
        .take(2 * CHAIN_LEN)
        .map(|r| serde_bytes::ByteBuf::from(record_bytes(r, own)))
        .collect()
}

/// Heads of the thread by log: (height, head CID).
type Heads = BTreeMap<LogId, (u64, Cid)>;

fn heads(host: &Host<MemoryStore, AcceptAll>) -> Heads {
    host.heads(&context().thread)
        .expect("the host holds its thread")
        .into_iter()
        .map(|(log, h, cid)| (log, (h.0, cid)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let ctx = context();
    let config = Config {
        max_message_len: 1 << 16,
        page_max_records: 3,
        page_max_bytes: 2_048,
        max_logs_per_thread: 4,
        max_peers_per_thread: 4,
        ..Config::default()
    };
    let mut host = Host::open(
        config,
        MemoryStore::new(),
        AcceptAll,
        seeded(1),
        None,
        Time(0),
    )
    .expect("a host opens on an empty store");
    let thread = ctx.thread;
    host.create_thread(
        Time(0),
        NewThread {
            id: Some(thread),
            key: Some(ctx.key.clone()),
            ..NewThread::default()
        },
    )
    .expect("a thread is created");
    let own: Vec<RecordBundle> = (0..OWN_RECORDS)
        .map(|i| {
            host.create_record(Time(0), &thread, None, &[i as u8; 16], 0)
                .expect("a record is written")
                .bundle()
                .clone()
        })
        .collect();
    while host.poll_output().is_some() {}
    let own_log = host.heads(&thread).expect("the thread")[0].0;
    let own_heads = heads(&host);
    let me = *host.peer_id();
    let service = ctx.key.service().clone();
    let encode =
        |from: Sender, payload: &Payload| message::encode(&service, &from.id(), &me, payload);

    let mut u = Unstructured::new(data);
    let mut now = 1u64;
    let mut before = heads(&host);
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        now += 1;
        let t = Time(now);
        let tid = thread.to_vec();
        let deliver = |host: &mut Host<MemoryStore, AcceptAll>, from: Sender, bytes: &[u8]| {
            host.handle_message(t, &from.id(), bytes)
        };
        match step {
            Step::Push { from, log, records } => {
                let payload = Payload::Push {
                    thread: tid,
                    log: log_bytes(&log, &own_log),
                    records: bundles(&records, &own),
                };
                deliver(&mut host, from, &encode(from, &payload));
            }
            Step::Page {
                from,
                log,
                at,
                records,
                height,
            } => {
                let payload = Payload::Page {
                    thread: tid,
                    log: log_bytes(&log, &own_log),
                    from: u64::from(at % (CHAIN_LEN as u8 + 2)),
                    records: bundles(&records, &own),
                    height: u64::from(height),
                };
                deliver(&mut host, from, &encode(from, &payload));
            }
            Step::Pull { from, log, at, max } => {
                let payload = Payload::Pull {
                    thread: tid,
                    log: log_bytes(&log, &own_log),
                    from: u64::from(at),
                    max: u32::from(max),
                };
                deliver(&mut host, from, &encode(from, &payload));
            }
            Step::Heights {
                from,
                logs,
                peers,
                reply,
            } => {
                let payload = Payload::Heights {
                    thread: tid,
                    logs: logs
                        .iter()
                        .take(8)
                        .map(|(log, h)| LogHeightEntry {
                            height: u64::from(*h),
                            log: log_bytes(log, &own_log),
                        })
                        .collect(),
                    peers: peers
                        .iter()
                        .take(8)
                        .map(|p| serde_bytes::ByteBuf::from(p.id().as_bytes().to_vec()))
                        .collect(),
                    reply,
                };
                deliver(&mut host, from, &encode(from, &payload));
            }
            Step::Digest { from, own, bytes } => {
                let digest = if own {
                    host.digest(&thread).expect("the thread").to_vec()
                } else {
                    bytes
                };
                let payload = Payload::Digest {
                    thread: tid,
                    digest,
                };
                deliver(&mut host, from, &encode(from, &payload));
            }
            Step::Invite { from, key } => {
                let service_key = match key {
                    InviteKey::Same => ctx.key.without_read().to_bytes(),
                    InviteKey::WithRead => ctx.key.to_bytes(),
                    InviteKey::Other => cast().other_key.to_bytes(),
                    InviteKey::Bytes(b) => b,
                };
                let payload = Payload::Invite {
                    thread: tid,
                    service_key,
                };
                deliver(&mut host, from, &encode(from, &payload));
            }
            Step::BadFrame {
                from,
                flaw,
                version,
            } => {
                let mut payload = Payload::Push {
                    thread: tid,
                    log: ctx.log.as_bytes().to_vec(),
                    records: vec![serde_bytes::ByteBuf::from(chain().records[0].encode())],
                };
                let mut frame = message::Frame {
                    payload: Vec::new(),
                    proof: Vec::new(),
                    version: message::PROTOCOL_VERSION,
                };
                match flaw % 3 {
                    0 => {
                        // A proof made for another receiver.
                        frame.payload = threads_protocol::record::wire::encode(&payload);
                        frame.proof =
                            message::proof(&service, &from.id(), &from.id(), &frame.payload)
                                .to_vec();
                    }
                    1 => {
                        frame.payload = threads_protocol::record::wire::encode(&payload);
                        frame.proof =
                            message::proof(&service, &from.id(), &me, &frame.payload).to_vec();
                        frame.version = version;
                    }
                    _ => {
                        // A thread the host does not hold.
                        if let Payload::Push { thread, .. } = &mut payload {
                            thread[2] ^= 1;
                        }
                        frame.payload = threads_protocol::record::wire::encode(&payload);
                        frame.proof =
                            message::proof(&service, &from.id(), &me, &frame.payload).to_vec();
                    }
                }
                let bytes = threads_protocol::record::wire::encode(&frame);
                deliver(&mut host, from, &bytes);
            }
            Step::Framed { from, payload } => {
                let proof = message::proof(&service, &from.id(), &me, &payload);
                let bytes = threads_protocol::record::wire::encode(&message::Frame {
                    payload,
                    proof: proof.to_vec(),
                    version: message::PROTOCOL_VERSION,
                });
                deliver(&mut host, from, &bytes);
            }
            Step::Raw { from, bytes } => deliver(&mut host, from, &bytes),
            Step::Timeout { ms } => {
                now += u64::from(ms) * 16;
                host.handle_timeout(Time(now));
            }
            Step::Connected { peer } => host.handle_connected(t, &peer.id()),
        }
        check(&mut host, &mut before, &own_heads, &service, &me);
    }
    host.handle_timeout(Time(now + 100_000));
    check(&mut host, &mut before, &own_heads, &service, &me);
});

/// Checks what must hold after any input, and drains the host's outputs.
fn check(
    host: &mut Host<MemoryStore, AcceptAll>,
    before: &mut Heads,
    own_heads: &Heads,
    service: &threads_protocol::key::ServiceKey,
    me: &LogId,
) {
    let ctx = context();
    if let Err(what) = host.check_invariants() {
        panic!("engine invariant broken: {what}");
    }
    let after = heads(host);
    for (log, (h, head)) in before.iter() {
        let Some((h2, head2)) = after.get(log) else {
            panic!("log {log} disappeared");
        };
        assert!(h2 >= h, "log {log} went back from {h} to {h2}");
        if h2 == h {
            assert_eq!(head, head2, "log {log} changed its head at height {h}");
        }
    }
    for (log, (h, head)) in own_heads {
        assert_eq!(
            after.get(log),
            Some(&(*h, *head)),
            "a peer changed the host's own log"
        );
    }
    if let Some((h, head)) = after.get(&ctx.log) {
        let h = *h as usize;
        assert!((1..=CHAIN_LEN).contains(&h), "known log at height {h}");
        let on_chain = chain().records[h - 1].cid() == *head;
        let on_fork = h == 3 && chain().fork.cid() == *head;
        assert!(
            on_chain || on_fork,
            "known log's head at {h} is no record of the log"
        );
    }
    *before = after;
    let max = host.config().max_message_len;
    while let Some(out) = host.poll_output() {
        if let Output::Transmit { to, bytes } = out {
            let (frame, payload) = message::decode(&bytes, usize::MAX)
                .unwrap_or_else(|e| panic!("the host sent an undecodable message: {e}"));
            assert_eq!(
                payload.thread_bytes(),
                ctx.thread.to_vec(),
                "a message of our thread"
            );
            assert!(
                message::proof_is_valid(service, me, &to, &frame.payload, &frame.proof),
                "the host's message proves membership to its receiver"
            );
            if let Payload::Page { records, .. } | Payload::Push { records, .. } = &payload {
                assert!(
                    records.len() <= host.config().page_max_records as usize,
                    "pages and pushes stay within page_max_records"
                );
            }
            assert!(
                bytes.len() <= 2 * max,
                "replies stay near the message limit"
            );
        }
    }
}
