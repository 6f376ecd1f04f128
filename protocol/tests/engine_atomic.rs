//! The application hook runs in the transaction that stores the record: both commit or neither.

mod common;

use common::*;
use std::cell::RefCell;
use std::rc::Rc;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::signing::{Pending, Signer, SigningJob};
use threads_protocol::engine::{
    Application, ApplyError, EngineError, Event, NewThread, Time, Verdict,
};
use threads_protocol::id::ThreadId;
use threads_protocol::record::RecordView;
use threads_protocol::store::WriteTxn;
use threads_protocol::store::memory::{FaultOp, FaultyStore, MemoryStore};

/// Test application: writes one key per applied record, rejects bodies starting with "bad",
/// and fails with an error while `fail` is set.
#[derive(Clone, Default)]
struct Recorder {
    fail: Rc<RefCell<bool>>,
    rollbacks: Rc<RefCell<u32>>,
    /// `finish_batch` fails while set.
    fail_finish: Rc<RefCell<bool>>,
    /// Records applied since the last `finish_batch`.
    open: Rc<RefCell<usize>>,
    /// Sizes of the finished batches.
    batches: Rc<RefCell<Vec<usize>>>,
}

impl Application for Recorder {
    fn apply(
        &mut self,
        txn: &mut dyn WriteTxn,
        record: &RecordView<'_>,
    ) -> Result<Verdict, ApplyError> {
        if *self.fail.borrow() {
            return Err(ApplyError::Component {
                component: "recorder",
                reason: "application is down".into(),
            });
        }
        if record.body.starts_with(b"bad") {
            return Ok(Verdict::Reject("bodies may not start with bad".into()));
        }
        let mut key = vec![0x20];
        key.extend_from_slice(record.body);
        txn.put(&key, b"applied")?;
        *self.open.borrow_mut() += 1;
        Ok(Verdict::Accept)
    }

    fn finish_batch(&mut self, txn: &mut dyn WriteTxn) -> Result<(), ApplyError> {
        if *self.fail_finish.borrow() {
            return Err(ApplyError::Component {
                component: "test application",
                reason: "cannot finish".into(),
            });
        }
        let n = std::mem::take(&mut *self.open.borrow_mut());
        self.batches.borrow_mut().push(n);
        Ok(txn.put(&[0x20, b'#'], &(n as u64).to_be_bytes())?)
    }

    fn rolled_back(&mut self) {
        *self.rollbacks.borrow_mut() += 1;
        *self.open.borrow_mut() = 0;
    }
}

type Net = Loopback<FaultyStore<MemoryStore>, Recorder>;

fn pair() -> (Net, Vec<FaultyStore<MemoryStore>>, Vec<Recorder>) {
    let stores: Vec<_> = (0..2)
        .map(|_| FaultyStore::new(MemoryStore::new()))
        .collect();
    let apps: Vec<Recorder> = (0..2).map(|_| Recorder::default()).collect();
    let hosts = (0..2)
        .map(|i| host(stores[i].clone(), apps[i].clone(), 50 + i as u64, config()))
        .collect();
    (Loopback::new(hosts, Time(0)), stores, apps)
}

fn joined(net: &mut Net) -> threads_protocol::id::ThreadId {
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let a = addr(net, 0, &info.id);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    net.flush(100);
    info.id
}

fn applied(store: &FaultyStore<MemoryStore>, body: &[u8]) -> bool {
    use threads_protocol::store::{ReadTxn, Store};
    let mut key = vec![0x20];
    key.extend_from_slice(body);
    store.inner().read().unwrap().get(&key).unwrap().is_some()
}

#[test]
fn a_local_write_the_hook_rejects_stores_and_sends_nothing() {
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    let before = stores[0].inner().digest();
    let err = net.hosts[0]
        .create_record(Time(0), &t, None, b"bad write", 0)
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Rejected("bodies may not start with bad".into())
    );
    assert_eq!(stores[0].inner().digest(), before);
    net.collect();
    assert!(
        net.in_flight.is_empty(),
        "a rejected write is not published"
    );
}

#[test]
fn a_remote_record_the_hook_rejects_is_kept_without_effect() {
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    // Host 1 writes directly with the engine's record API, bypassing its own hook's verdict,
    // by disabling the check: a writer that does not run validators.
    let rec = {
        let info = net.hosts[1].thread_info(&t).unwrap();
        let log_key = threads_protocol::identity::PrivateKey::from_seed([5; 32]);
        let author = log_key.public();
        let draft = threads_protocol::record::RecordDraft {
            thread: &t,
            author: &author,
            prev: None,
            counter: threads_protocol::counter::LogCounter::FIRST,
            clock: threads_protocol::counter::LamportClock(1),
            time: 0,
            body: b"bad but signed",
        };
        let r = threads_protocol::record::create(
            &draft,
            &log_key,
            &info.key,
            &mut threads_protocol::rng::seeded(3),
        )
        .unwrap();
        net.hosts[0]
            .add_log(&t, &log_key.public().peer_id())
            .unwrap();
        r.into_record()
    };
    let log = *rec.log();
    // Offered through add_record (the Net API's AddRecord): stored with its verdict, as from a
    // peer, so the log does not stall on it.
    let before_events = net.events[0].len();
    assert_eq!(
        net.hosts[0].add_record(Time(0), &t, &log, rec.bundle().clone()),
        Ok(true)
    );
    let heads = net.hosts[0].heads(&t).unwrap();
    assert!(heads.iter().any(|(l, h, _)| *l == log && h.0 == 1));
    assert_eq!(
        net.hosts[0]
            .rejection(&t, &log, rec.counter())
            .unwrap()
            .as_deref(),
        Some("bodies may not start with bad")
    );
    assert!(!applied(&stores[0], b"bad but signed"));
    net.collect();
    assert!(
        net.events[0][before_events..]
            .iter()
            .any(|e| matches!(e, Event::RecordRejected { .. }))
    );
    // Offering it again is a no-op.
    assert_eq!(
        net.hosts[0].add_record(Time(0), &t, &log, rec.bundle().clone()),
        Ok(false)
    );
    // The same record arriving from a peer is stored, the head advances, the verdict is kept.
    net.hosts[1].add_log(&t, &log).unwrap();
    let peer0 = *net.hosts[0].peer_id();
    let msg = threads_protocol::engine::message::encode(
        net.hosts[1].thread_info(&t).unwrap().key.service(),
        &peer0,
        net.hosts[1].peer_id(),
        &threads_protocol::engine::message::Payload::Push {
            thread: t.to_vec(),
            log: log.as_bytes().to_vec(),
            records: vec![serde_bytes::ByteBuf::from(rec.bundle().encode())],
        },
    );
    net.hosts[1].handle_message(Time(0), &peer0, &msg);
    net.collect();
    let heads = net.hosts[1].heads(&t).unwrap();
    assert!(heads.iter().any(|(l, h, _)| *l == log && h.0 == 1));
    let reason = net.hosts[1].rejection(&t, &log, rec.counter()).unwrap();
    assert_eq!(reason.as_deref(), Some("bodies may not start with bad"));
    assert!(!applied(&stores[1], b"bad but signed"));
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::RecordRejected { .. }))
    );
}

#[test]
fn a_failing_hook_leaves_no_trace_and_the_record_is_retried() {
    let (mut net, stores, apps) = pair();
    let t = joined(&mut net);
    *apps[1].fail.borrow_mut() = true;
    let before = stores[1].inner().digest();
    net.hosts[0]
        .create_record(Time(0), &t, None, b"hello", 0)
        .unwrap();
    net.flush(1000);
    assert_eq!(
        stores[1].inner().digest(),
        before,
        "nothing of the record was stored"
    );
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::ApplyFailed { .. }))
    );
    assert!(*apps[1].rollbacks.borrow() >= 1);
    // The application recovers; anti-entropy brings the record again.
    *apps[1].fail.borrow_mut() = false;
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 1, &t) == 1));
    assert!(applied(&stores[1], b"hello"));
}

#[test]
fn an_injected_storage_failure_leaves_no_trace_and_the_record_is_retried() {
    for op in [FaultOp::Put, FaultOp::Commit, FaultOp::Write] {
        let (mut net, stores, _) = pair();
        let t = joined(&mut net);
        let before = stores[1].inner().digest();
        stores[1].fail_nth(op, 1);
        net.hosts[0]
            .create_record(Time(0), &t, None, b"hello", 0)
            .unwrap();
        net.flush(1000);
        assert_eq!(
            stores[1].inner().digest(),
            before,
            "{op:?}: nothing was stored"
        );
        assert!(
            net.hosts[1].heads(&t).unwrap().is_empty(),
            "{op:?}: head did not move"
        );
        assert!(
            net.run_until(60_000, |n| converged(n, &[0, 1], &t)
                && total(n, 1, &t) == 1),
            "{op:?}"
        );
        assert!(applied(&stores[1], b"hello"), "{op:?}");
    }
}

#[test]
fn a_failure_mid_page_keeps_the_records_before_it() {
    let (mut net, stores, apps) = pair();
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for k in 0..10u8 {
        net.hosts[0]
            .create_record(Time(0), &t, None, &[b'r', k], 0)
            .unwrap();
    }
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    // The 7th put of the page's transaction fails, in the middle of its records (each has a
    // record put and a hook put; the CID entries follow the records).
    stores[1].fail_nth(FaultOp::Put, 7);
    let _ = &apps;
    assert!(net.run_until(60_000, |n| total(n, 1, &t) == 10));
    for k in 0..10u8 {
        assert!(applied(&stores[1], &[b'r', k]));
    }
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::ApplyFailed { .. }))
    );
}

/// Write transactions a store saw, and how many of them committed.
fn txns(store: &FaultyStore<MemoryStore>) -> (u64, u64) {
    (store.calls(FaultOp::Write), store.calls(FaultOp::Commit))
}

#[test]
fn a_rejected_first_write_of_a_new_log_stores_nothing() {
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    net.collect();
    // Host 1 has no log of its own yet: its first write would create one.
    let logs_before = net.hosts[1].thread_info(&t).unwrap().logs;
    let before = stores[1].inner().digest();
    let err = net.hosts[1]
        .create_record(Time(0), &t, None, b"bad first write", 0)
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Rejected("bodies may not start with bad".into())
    );
    assert_eq!(
        stores[1].inner().digest(),
        before,
        "the new log must not be stored"
    );
    assert_eq!(net.hosts[1].thread_info(&t).unwrap().logs, logs_before);
    // A later good write creates the log and the record together, in one transaction.
    let (w, c) = txns(&stores[1]);
    net.hosts[1]
        .create_record(Time(0), &t, None, b"good", 0)
        .unwrap();
    assert_eq!(txns(&stores[1]), (w + 1, c + 1));
    assert_eq!(net.hosts[1].thread_info(&t).unwrap().logs.len(), 1);
}

#[test]
fn a_failed_first_write_of_a_new_log_stores_nothing_and_can_be_retried() {
    // The third put is the record's (after the identity row, or after the log's own rows
    // when they were stored apart).
    for (op, n) in [(FaultOp::Put, 3), (FaultOp::Commit, 1)] {
        let (mut net, stores, _) = pair();
        let t = joined(&mut net);
        net.collect();
        let before = stores[1].inner().digest();
        stores[1].fail_nth(op, n);
        assert!(
            net.hosts[1]
                .create_record(Time(0), &t, None, b"first", 0)
                .is_err()
        );
        assert_eq!(stores[1].inner().digest(), before, "{op:?}");
        assert!(net.hosts[1].thread_info(&t).unwrap().logs.is_empty());
        let rec = net.hosts[1]
            .create_record(Time(0), &t, None, b"first", 0)
            .unwrap();
        assert_eq!(rec.counter().get(), 1, "{op:?}");
        assert!(applied(&stores[1], b"first"));
    }
}

#[test]
fn create_thread_is_one_transaction() {
    let (mut net, stores, _) = pair();
    let (w, c) = txns(&stores[0]);
    net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    assert_eq!(txns(&stores[0]), (w + 1, c + 1));
    // A failure at any put or at the commit leaves nothing, and the host still holds nothing.
    for (op, n) in [
        (FaultOp::Put, 1),
        (FaultOp::Put, 2),
        (FaultOp::Put, 3),
        (FaultOp::Commit, 1),
    ] {
        let before = stores[1].inner().digest();
        let threads = net.hosts[1].thread_ids();
        stores[1].fail_nth(op, n);
        assert!(
            net.hosts[1]
                .create_thread(Time(0), NewThread::default())
                .is_err(),
            "{op:?} #{n}"
        );
        assert_eq!(stores[1].inner().digest(), before, "{op:?} #{n}");
        assert_eq!(net.hosts[1].thread_ids(), threads, "{op:?} #{n}");
        stores[1].clear();
    }
}

#[test]
fn a_message_is_stored_in_one_transaction() {
    let (mut net, stores, _) = pair();
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    let a = addr(&net, 0, &t);
    // Host 1 joins and writes; host 0 has not heard of it yet.
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    net.hosts[1]
        .create_record(Time(0), &t, None, b"from one", 0)
        .unwrap();
    let mut push = None;
    while let Some(o) = net.hosts[1].poll_output() {
        if let threads_protocol::engine::Output::Transmit { bytes, .. } = o {
            let (_, p) = threads_protocol::engine::message::decode(&bytes, usize::MAX).unwrap();
            if p.kind() == "push" {
                push = Some(bytes);
            }
        }
    }
    let push = push.expect("the write is pushed to host 0");
    let peer1 = *net.hosts[1].peer_id();
    let (w, c) = txns(&stores[0]);
    net.hosts[0].handle_message(Time(0), &peer1, &push);
    // New peer, new log and record: one transaction.
    assert_eq!(txns(&stores[0]), (w + 1, c + 1));
    assert!(applied(&stores[0], b"from one"));
    assert!(net.hosts[0].thread_info(&t).unwrap().peers.contains(&peer1));
    // The peer is stored with the record: a restart remembers it.
    let reopened = host(
        stores[0].inner().reopen(),
        Recorder::default(),
        99,
        config(),
    );
    assert!(reopened.thread_info(&t).unwrap().peers.contains(&peer1));
}

#[test]
fn a_store_failure_serving_a_page_is_reported_and_sync_recovers() {
    let (mut net, stores, _) = pair();
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    net.hosts[0]
        .create_record(Time(0), &t, None, b"served", 0)
        .unwrap();
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    // The next read transaction of host 0 is the one serving host 1's pull.
    stores[0].fail_nth(FaultOp::Read, 1);
    net.flush(100);
    assert!(
        net.events[0].iter().any(|e| matches!(
            e,
            Event::StoreFailed { thread: Some(th), during: "reading a page", .. } if *th == t
        )),
        "{:?}",
        net.events[0]
    );
    assert_eq!(total(&net, 1, &t), 0, "no page was served");
    // The pull expires and is asked again.
    assert!(net.run_until(60_000, |n| total(n, 1, &t) == 1));
    assert!(applied(&stores[1], b"served"));
}

#[test]
fn check_invariants_sees_a_store_that_disagrees_with_memory() {
    use threads_protocol::engine::layout;
    use threads_protocol::store::{Store, WriteTxn};
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    let rec = net.hosts[0]
        .create_record(Time(0), &t, None, b"kept", 0)
        .unwrap();
    net.flush(1000);
    for h in &net.hosts {
        assert_eq!(h.check_invariants(), Ok(()));
    }
    // Remove the head record behind the engine's back.
    let mut txn = stores[0].inner().write().unwrap();
    txn.delete(&layout::record(&t, rec.log(), rec.counter()))
        .unwrap();
    txn.commit().unwrap();
    let err = net.hosts[0].check_invariants().unwrap_err();
    assert!(err.contains("not the head"), "{err}");
    assert_eq!(net.hosts[1].check_invariants(), Ok(()));
}

#[test]
fn check_invariants_sees_a_cid_journal_that_disagrees_with_memory() {
    use threads_protocol::engine::layout;
    use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store, WriteTxn};
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    net.hosts[0]
        .create_record(Time(0), &t, None, b"journaled", 0)
        .unwrap();
    net.flush(1000);
    assert_eq!(net.hosts[0].check_invariants(), Ok(()));
    let journal = |store: &FaultyStore<MemoryStore>| {
        let mut out = Vec::new();
        let txn = store.inner().read().unwrap();
        let prefix = [layout::TAG_CID_JOURNAL];
        txn.scan(
            KeyRange::prefix(&prefix),
            Direction::Forward,
            &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
        out
    };
    let entries = journal(&stores[0]);
    assert!(!entries.is_empty(), "the record is in the journal");
    let (key, value) = entries.last().unwrap().clone();
    // The same entry stored twice (under a later sequence number): one too many.
    let mut txn = stores[0].inner().write().unwrap();
    txn.put(&layout::cid_journal(1 << 40), &value).unwrap();
    txn.commit().unwrap();
    let err = net.hosts[0].check_invariants().unwrap_err();
    assert!(err.contains("CID journal"), "{err}");
    // Gone from the store, still in memory.
    let mut txn = stores[0].inner().write().unwrap();
    txn.delete(&layout::cid_journal(1 << 40)).unwrap();
    txn.delete(&key).unwrap();
    txn.commit().unwrap();
    let err = net.hosts[0].check_invariants().unwrap_err();
    assert!(err.contains("CID journal"), "{err}");
    // Put back as it was: the check passes again.
    let mut txn = stores[0].inner().write().unwrap();
    txn.put(&key, &value).unwrap();
    txn.commit().unwrap();
    assert_eq!(net.hosts[0].check_invariants(), Ok(()));
}

#[test]
fn the_records_of_one_page_are_finished_as_one_batch_before_commit() {
    let (mut net, stores, apps) = pair();
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for k in 0..10u8 {
        net.hosts[0]
            .create_record(Time(0), &t, None, &[b'p', k], 0)
            .unwrap();
    }
    // Local writes are batches of one.
    assert_eq!(*apps[0].batches.borrow(), vec![1; 10]);
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    assert!(net.run_until(60_000, |n| total(n, 1, &t) == 10));
    let batches = apps[1].batches.borrow().clone();
    assert_eq!(batches.iter().sum::<usize>(), 10);
    assert!(
        batches.len() < 10,
        "a page is one batch, not one per record: {batches:?}"
    );
    // What `finish_batch` wrote was committed with the batch.
    use threads_protocol::store::{ReadTxn, Store};
    let marker = stores[1]
        .inner()
        .read()
        .unwrap()
        .get(&[0x20, b'#'])
        .unwrap();
    let last = *batches.last().unwrap() as u64;
    assert_eq!(marker, Some(last.to_be_bytes().to_vec()));
}

#[test]
fn a_failing_finish_leaves_no_trace_and_the_batch_is_retried() {
    let (mut net, stores, apps) = pair();
    let t = joined(&mut net);
    *apps[1].fail_finish.borrow_mut() = true;
    let before = stores[1].inner().digest();
    net.hosts[0]
        .create_record(Time(0), &t, None, b"later", 0)
        .unwrap();
    net.flush(1000);
    assert_eq!(stores[1].inner().digest(), before, "nothing was stored");
    assert!(net.hosts[1].heads(&t).unwrap().is_empty());
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::ApplyFailed { .. }))
    );
    *apps[1].fail_finish.borrow_mut() = false;
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 1, &t) == 1));
    assert!(applied(&stores[1], b"later"));
}

/// Builds each job on a thread of its own, or (`Lose`) drops it unanswered, or (`Short`) answers
/// with one record fewer than asked for.
#[derive(Clone, Copy)]
enum TestSigner {
    Thread,
    Lose,
    Short,
}

impl Signer for TestSigner {
    fn start(&self, job: SigningJob) -> Pending {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let kind = *self;
        std::thread::spawn(move || match kind {
            TestSigner::Thread => {
                let _ = tx.send(job.run());
            }
            TestSigner::Lose => drop((job, tx)),
            TestSigner::Short => {
                let _ = tx.send(job.run().map(|mut r| {
                    r.pop();
                    r
                }));
            }
        });
        Pending::Elsewhere(rx)
    }
}

/// One host with a thread and its first record, signing with `signer` from then on.
fn writer(signer: Option<TestSigner>) -> (Net, FaultyStore<MemoryStore>, Recorder, ThreadId) {
    let (mut net, stores, apps) = pair();
    let t = joined(&mut net);
    net.hosts[0]
        .create_record(Time(0), &t, None, b"first", 1)
        .unwrap();
    net.flush(100);
    if let Some(s) = signer {
        net.hosts[0].set_signer(Box::new(s));
    }
    (net, stores[0].clone(), apps[0].clone(), t)
}

fn bodies(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| n.as_bytes().to_vec()).collect()
}

#[test]
fn records_signed_on_another_thread_are_the_ones_signed_inline() {
    let (mut inline, inline_store, _, t) = writer(None);
    let (mut other, other_store, apps, t2) = writer(Some(TestSigner::Thread));
    assert_eq!(t, t2, "same seeds, same thread");
    let group = bodies(&["one", "two", "three"]);
    let a = inline.hosts[0]
        .create_records(Time(0), &t, None, &group, 2)
        .unwrap();
    let b = other.hosts[0]
        .create_records(Time(0), &t, None, &group, 2)
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(inline_store.inner().digest(), other_store.inner().digest());
    for body in &group {
        assert!(applied(&other_store, body));
    }
    assert_eq!(apps.batches.borrow().last(), Some(&3));
    // The records reach the peer, which folds them like any other.
    other.flush(100);
    for body in &group {
        assert!(applied(&stores_of(&other)[1], body));
    }
}

fn stores_of(net: &Net) -> Vec<FaultyStore<MemoryStore>> {
    net.hosts.iter().map(|h| h.store().clone()).collect()
}

#[test]
fn a_refused_body_stores_nothing_whichever_signer_builds_the_records() {
    for signer in [None, Some(TestSigner::Thread)] {
        let (mut net, store, apps, t) = writer(signer);
        let before = store.inner().digest();
        let group = bodies(&["fine", "bad one", "also fine"]);
        let err = net.hosts[0]
            .create_records(Time(0), &t, None, &group, 2)
            .unwrap_err();
        assert_eq!(
            err,
            EngineError::Rejected("bodies may not start with bad".into())
        );
        assert_eq!(store.inner().digest(), before);
        assert_eq!(*apps.rollbacks.borrow(), 1);
        net.collect();
        assert!(net.in_flight.is_empty());
        // The log's position is unchanged: the next group follows the first record.
        let recs = net.hosts[0]
            .create_records(Time(0), &t, None, &bodies(&["fine", "also fine"]), 3)
            .unwrap();
        assert_eq!(recs[0].counter().get(), 2);
    }
}

#[test]
fn a_signer_that_fails_its_job_fails_the_write_and_stores_nothing() {
    for signer in [TestSigner::Lose, TestSigner::Short] {
        let (mut net, store, apps, t) = writer(Some(signer));
        let before = store.inner().digest();
        let err = net.hosts[0]
            .create_records(Time(0), &t, None, &bodies(&["one", "two"]), 2)
            .unwrap_err();
        assert!(matches!(err, EngineError::Signer(_)), "{err:?}");
        assert_eq!(store.inner().digest(), before);
        assert_eq!(*apps.rollbacks.borrow(), 1);
        net.collect();
        assert!(net.in_flight.is_empty());
        net.hosts[0].set_signer(Box::new(TestSigner::Thread));
        net.hosts[0]
            .create_records(Time(0), &t, None, &bodies(&["one", "two"]), 2)
            .unwrap();
        assert!(applied(&store, b"two"));
    }
}
