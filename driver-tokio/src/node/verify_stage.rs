//! The verification stage between the swarm and the engine thread: sync messages are decoded,
//! their membership proofs checked and their records verified on tokio's blocking pool, several
//! at a time, and handed to the engine already checked ([`Inbound::Checked`]), in the order
//! they arrived. The engine thread then only stores records, so catch-up uses every core.
//!
//! The verifiers (keys cloned from the engine) are kept by the engine thread in a shared map
//! ([`Verifiers`]); a message about a thread the map lacks goes to the engine unchecked and is
//! verified there, as before. Nothing unverified can be stored either way: the engine accepts
//! only records `record::verify` made, and re-checks that a checked message is bound to the
//! keys it holds.

use crate::net::NetInput;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use threads_protocol::engine::{CheckRange, CheckedRecord, Inbound, RecordVerifier, Spread};
use threads_protocol::id::ThreadId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The verifiers of the threads the engine holds, shared with the stage's workers.
pub(crate) type Verifiers = Arc<RwLock<HashMap<ThreadId, RecordVerifier>>>;

/// An input waiting for its turn: ready now, or a message being checked.
enum Pending {
    Ready(Box<NetInput>),
    Checking(JoinHandle<NetInput>),
}

/// Fewest records each thread gets when a page's checks are split. A record check costs ~35 µs
/// here and a thread start a few tens of µs; smaller pages are better served by the stage
/// checking several messages at once than by more threads than cores.
const MIN_RECORDS_PER_THREAD: usize = 512;

/// Splits the record checks of one page or push across up to `threads` scoped threads (the
/// caller's among them), so a large page (threadsd pulls up to 10,000 records a page) is
/// verified on every core instead of one. Each thread gets at least 512 records, so pages of
/// fewer than 1,024 stay on the calling thread.
#[derive(Clone, Copy, Debug)]
pub struct AcrossCores {
    threads: usize,
}

impl AcrossCores {
    /// Up to `threads` threads per page (at least one).
    pub fn new(threads: usize) -> Self {
        AcrossCores {
            threads: threads.max(1),
        }
    }

    /// One thread per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

impl Spread for AcrossCores {
    fn spread(&self, n: usize, check: &CheckRange<'_>) -> Vec<CheckedRecord> {
        let threads = self.threads.min(n / MIN_RECORDS_PER_THREAD).max(1);
        if threads == 1 {
            return check(0..n);
        }
        let chunk = n.div_ceil(threads);
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads)
                .map(|t| {
                    let (start, end) = (t * chunk, ((t + 1) * chunk).min(n));
                    std::thread::Builder::new()
                        .name("threads-verify".into())
                        .spawn_scoped(scope, move || check(start..end))
                        .map_err(|_| start..end)
                })
                .collect();
            let mut all = check(0..chunk.min(n));
            for other in others {
                match other {
                    Ok(handle) => match handle.join() {
                        Ok(part) => all.extend(part),
                        // A check that panicked (it never should): the verifier sees a record
                        // missing and leaves the message to the engine.
                        Err(_) => return Vec::new(),
                    },
                    // No thread to be had: check that part here.
                    Err(range) => all.extend(check(range)),
                }
            }
            all
        })
    }
}

/// How many messages are checked at once: two per core, so a core never waits for the next.
pub(crate) fn depth() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// Runs the stage until the swarm's side closes, then hands on what is left.
pub(crate) async fn run(
    mut input: mpsc::Receiver<NetInput>,
    output: mpsc::Sender<NetInput>,
    verifiers: Verifiers,
    max_message_len: usize,
    depth: usize,
) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut open = true;
    loop {
        // Hand on everything at the front that is ready, in order.
        while let Some(Pending::Ready(_)) = pending.front() {
            if let Some(Pending::Ready(item)) = pending.pop_front()
                && output.send(*item).await.is_err()
            {
                return;
            }
        }
        let can_take = open && pending.len() < depth.max(1);
        let step = match pending.front_mut() {
            None if !open => return,
            None => Step::New(input.recv().await),
            Some(Pending::Checking(job)) => tokio::select! {
                done = job => Step::Done(done),
                item = input.recv(), if can_take => Step::New(item),
            },
            // Ready items were handed on above.
            Some(Pending::Ready(_)) => continue,
        };
        match step {
            Step::New(None) => open = false,
            Step::New(Some(item)) => pending.push_back(start(item, &verifiers, max_message_len)),
            Step::Done(result) => {
                pending.pop_front();
                match result {
                    Ok(item) => pending.push_front(Pending::Ready(Box::new(item))),
                    // A check that panicked (it never should: input from outside never
                    // panics) loses only that message; sync fetches its records again.
                    Err(e) => tracing::warn!(error = %e, "checking a sync message failed"),
                }
            }
        }
    }
}

enum Step {
    New(Option<NetInput>),
    Done(Result<NetInput, tokio::task::JoinError>),
}

/// Starts checking a message on the blocking pool; other inputs wait their turn unchanged.
fn start(item: NetInput, verifiers: &Verifiers, max_message_len: usize) -> Pending {
    match item {
        NetInput::Message { from, bytes } => {
            let verifiers = verifiers.clone();
            Pending::Checking(tokio::task::spawn_blocking(move || {
                let len = bytes.len();
                let inbound = match verifiers.read() {
                    Ok(map) => Inbound::check_spread(
                        from,
                        bytes,
                        max_message_len,
                        |t| map.get(t),
                        &AcrossCores::per_core(),
                    ),
                    // A poisoned map: let the engine check the message itself.
                    Err(_) => Inbound::Raw { from, bytes },
                };
                NetInput::Checked {
                    len,
                    inbound: Box::new(inbound),
                }
            }))
        }
        other => Pending::Ready(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;
    use threads_protocol::counter::LogCounter;
    use threads_protocol::engine::message::{self, Payload};
    use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, Time};
    use threads_protocol::rng::seeded;
    use threads_protocol::store::memory::MemoryStore;

    fn open(seed: u64) -> Host<MemoryStore, AcceptAll> {
        let store = MemoryStore::new();
        Host::open(
            Config::default(),
            store,
            AcceptAll,
            seeded(seed),
            None,
            Time(0),
        )
        .unwrap()
    }

    /// A writer host (seed `seed`) with one thread of `records` records, and a reader host
    /// (seed `seed + 1`) that joined it.
    fn writer_and_reader(
        seed: u64,
        records: u32,
    ) -> (
        Host<MemoryStore, AcceptAll>,
        Host<MemoryStore, AcceptAll>,
        threads_protocol::engine::ThreadInfo,
    ) {
        let mut writer = open(seed);
        let info = writer.create_thread(Time(0), NewThread::default()).unwrap();
        for i in 0..records {
            writer
                .create_record(Time(0), &info.id, None, &i.to_be_bytes(), 0)
                .unwrap();
        }
        let mut reader = open(seed + 1);
        let addr = format!(
            "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
            writer.peer_id(),
            info.id
        )
        .parse()
        .unwrap();
        reader
            .join_thread(Time(0), &addr, info.key.clone())
            .unwrap();
        (writer, reader, info)
    }

    /// Messages leave the stage checked (or raw when they cannot be), each in its place among
    /// the other inputs, whatever order the checks finish in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inputs_leave_checked_and_in_order() {
        let (writer, mut reader, info) = writer_and_reader(1, 40);
        let verifiers = Verifiers::default();
        verifiers
            .write()
            .unwrap()
            .insert(info.id, reader.verifier(&info.id).unwrap());
        let log = info.logs[0].id;
        let all = writer
            .records(&info.id, &log, LogCounter::FIRST, 40, usize::MAX)
            .unwrap();
        let from = *writer.peer_id();
        let (in_tx, in_rx) = mpsc::channel(64);
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let stage = tokio::spawn(run(in_rx, out_tx, verifiers, 8 << 20, 4));
        let mut sent = 0;
        let mut expected = Vec::new();
        for (i, chunk) in all.chunks(4).enumerate() {
            let payload = Payload::Push {
                thread: info.id.to_vec(),
                log: log.as_bytes().to_vec(),
                records: chunk.iter().cloned().map(ByteBuf::from).collect(),
            };
            let bytes = message::encode(info.key.service(), &from, reader.peer_id(), &payload);
            in_tx.send(NetInput::Message { from, bytes }).await.unwrap();
            expected.push('M');
            if i % 3 == 0 {
                in_tx.send(NetInput::Connected(from)).await.unwrap();
                expected.push('C');
            }
            sent += 1;
        }
        in_tx
            .send(NetInput::Message {
                from,
                bytes: vec![0xff; 3],
            })
            .await
            .unwrap();
        expected.push('R');
        drop(in_tx);
        let mut pushes = 0;
        let mut seen = Vec::new();
        while let Some(item) = out_rx.recv().await {
            match item {
                NetInput::Checked { inbound, .. } => match *inbound {
                    Inbound::Checked(m) => {
                        assert_eq!(m.batch().map(|b| b.len()), Some(4));
                        pushes += 1;
                        seen.push('M');
                        reader.handle_inbound(Time(1), Inbound::Checked(m));
                    }
                    Inbound::Raw { bytes, .. } => {
                        assert_eq!(bytes, vec![0xff; 3]);
                        seen.push('R');
                    }
                },
                NetInput::Connected(_) => seen.push('C'),
                other => panic!("unexpected input {:?}", std::mem::discriminant(&other)),
            }
        }
        stage.await.unwrap();
        assert_eq!(pushes, sent);
        assert_eq!(seen, expected);
        // In order: every record was stored, none refused.
        let heads = reader.heads(&info.id).unwrap();
        assert_eq!(heads.iter().map(|(_, h, _)| h.0).sum::<u64>(), 40);
    }

    /// A page split across threads is checked exactly as on one thread, whatever the split
    /// (fewer records than a thread's share, an uneven last chunk, more threads than cores).
    #[test]
    fn across_cores_checks_as_in_order() {
        use threads_protocol::engine::InOrder;
        let (writer, reader, info) = writer_and_reader(3, 2_500);
        let verifier = reader.verifier(&info.id).unwrap();
        let log = info.logs[0].id;
        let from = *writer.peer_id();
        for n in [1usize, 1_023, 1_024, 2_500] {
            let records = writer
                .records(&info.id, &log, LogCounter::FIRST, n, usize::MAX)
                .unwrap();
            let payload = Payload::Push {
                thread: info.id.to_vec(),
                log: log.as_bytes().to_vec(),
                records: records.into_iter().map(ByteBuf::from).collect(),
            };
            let bytes = message::encode(info.key.service(), &from, reader.peer_id(), &payload);
            let check = |spread: &dyn Spread| {
                let inbound = Inbound::check_spread(
                    from,
                    bytes.clone(),
                    8 << 20,
                    |_| Some(&verifier),
                    spread,
                );
                assert!(matches!(inbound, Inbound::Checked(_)), "{n} records");
                format!("{inbound:?}")
            };
            let in_order = check(&InOrder);
            for threads in [1, 2, 3, 16] {
                assert_eq!(
                    check(&AcrossCores::new(threads)),
                    in_order,
                    "{n} records on {threads} threads"
                );
            }
        }
    }
}
